"""SCRAM credentials: what is stored (never the password), ``logmq users``, and
Describe/AlterUserScramCredentials from an AdminClient and on the raw wire."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

import logmq
from logmq.broker.users import UserStore, keys_from_salted, salt_password
from logmq.cli import cli
from logmq.kafka_codes import ErrorCode
from tests.test_sasl_wire import plain, scram
from tests.tls_util import SecureServer
from tests.wire_util import RawClient


@pytest.fixture
def broker(tmp_path):
    b = logmq.open(str(tmp_path / "d"), cleaner=False)
    yield b
    b.close()


def test_password_is_never_stored(tmp_path, broker):
    password = "correct horse battery staple"
    store = UserStore(broker.meta.env)
    store.set_password("alice", password, iterations=4096)
    broker.meta.env.sync(True)
    blob = b"".join(open(os.path.join(tmp_path, "d", "meta", n), "rb").read()
                    for n in os.listdir(tmp_path / "d" / "meta"))
    assert password.encode() not in blob
    cred = store.get("alice", "SCRAM-SHA-256")
    assert cred is not None and cred.iterations == 4096 and len(cred.salt) == 32
    assert cred.salt != store.get("alice", "SCRAM-SHA-512").salt  # a salt per credential
    # RFC 5802: StoredKey = H(HMAC(Hi(password), "Client Key")), no password needed to check
    assert keys_from_salted("SCRAM-SHA-256", hashlib.pbkdf2_hmac(
        "sha256", password.encode(), cred.salt, 4096))[0] == cred.stored_key
    assert store.check_plain("alice", password) and not store.check_plain("alice", "x")
    assert not store.check_plain("nobody", password)


def test_users_cli_add_list_remove(tmp_path):
    data = str(tmp_path / "d")
    r = CliRunner().invoke(cli, ["users", "add", "alice", "--password-stdin", "--data", data],
                           input="s3cret\n")
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["users", "add", "bob", "--password-stdin", "--mechanism",
                                 "SCRAM-SHA-512", "--iterations", "4096", "--data", data],
                           input="pw\n")
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["users", "list", "--data", data])
    rows = [line.split() for line in r.output.splitlines()[1:] if line.strip()]
    assert ["alice", "SCRAM-SHA-256,SCRAM-SHA-512", "8192,8192"] in rows
    assert ["bob", "SCRAM-SHA-512", "4096"] in rows
    with logmq.open(data, cleaner=False) as b:
        assert UserStore(b.meta.env).check_plain("alice", "s3cret")
    r = CliRunner().invoke(cli, ["users", "remove", "alice", "--data", data])
    assert r.exit_code == 0 and "removed 2" in r.output
    r = CliRunner().invoke(cli, ["users", "remove", "alice", "--data", data])
    assert r.exit_code == 1 and "no such user" in r.output
    r = CliRunner().invoke(cli, ["users", "add", "x", "--password-stdin", "--data", data],
                           input="\n")
    assert r.exit_code == 1 and "must not be empty" in r.output


def test_users_cli_while_serving_is_seen_by_the_server(tmp_path, broker):
    with SecureServer(broker, ["SASL_PLAINTEXT://127.0.0.1:0"]) as s:
        host, port = s.server.addresses["SASL_PLAINTEXT"]
        assert plain(RawClient(host, port), "dave", "pw")["error_code"] != 0
        r = subprocess.run([sys.executable, "-m", "logmq.cli", "users", "add", "dave",
                            "--password-stdin", "--data", str(tmp_path / "d")],
                           input="pw\n", capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr  # another process: LMDB is multi-process safe
        assert plain(RawClient(host, port), "dave", "pw")["error_code"] == 0


def test_admin_client_alters_and_describes_scram_credentials(broker):
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )

    with SecureServer(broker, ["PLAINTEXT://127.0.0.1:0", "SASL_PLAINTEXT://127.0.0.1:0"]) as s:
        admin = AdminClient({"bootstrap.servers": s.address("PLAINTEXT")})
        up = UserScramCredentialUpsertion(
            "erin", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"pa55word")
        for fut in admin.alter_user_scram_credentials([up]).values():
            assert fut.result(15) is None
        desc = admin.describe_user_scram_credentials(["erin"])
        info = desc["erin"].result(15)
        assert [(i.mechanism, i.iterations) for i in info.scram_credential_infos] == [
            (ScramMechanism.SCRAM_SHA_256, 8192)]
        host, port = s.server.addresses["SASL_PLAINTEXT"]
        assert scram(RawClient(host, port), "SCRAM-SHA-256", "erin",
                     "pa55word")["error_code"] == 0
        assert plain(RawClient(host, port), "erin", "pa55word")["error_code"] == 0
        gone = UserScramCredentialDeletion("erin", ScramMechanism.SCRAM_SHA_256)
        for fut in admin.alter_user_scram_credentials([gone]).values():
            assert fut.result(15) is None
        assert scram(RawClient(host, port), "SCRAM-SHA-256", "erin",
                     "pa55word")["error_code"] == int(ErrorCode.SASL_AUTHENTICATION_FAILED)


def test_scram_credential_errors_on_the_wire(broker):
    UserStore(broker.meta.env).set_password("frank", "pw", ["SCRAM-SHA-512"], 4096)
    salted = salt_password("SCRAM-SHA-256", "x", b"s" * 16, 4096)
    with SecureServer(broker, ["PLAINTEXT://127.0.0.1:0"]) as s:
        host, port = s.server.addresses["PLAINTEXT"]
        c = RawClient(host, port)
        up = {"name": "g", "mechanism": 1, "iterations": 4096, "salt": b"s" * 16,
              "salted_password": salted}
        resp = c.call(51, 0, {"deletions": [
            {"name": "nobody", "mechanism": 1}, {"name": "frank", "mechanism": 0}],
            "upsertions": [{**up, "iterations": 100}, {**up, "name": "h", "mechanism": 3},
                           {**up, "name": "dup"}, {**up, "name": "dup"}, {**up, "name": ""},
                           {**up, "name": "ok"}]})
        codes = {r["user"]: r["error_code"] for r in resp["results"]}
        assert codes == {"nobody": ErrorCode.RESOURCE_NOT_FOUND,
                         "frank": ErrorCode.UNSUPPORTED_SASL_MECHANISM,
                         "g": ErrorCode.UNACCEPTABLE_CREDENTIAL,
                         "h": ErrorCode.UNSUPPORTED_SASL_MECHANISM,
                         "dup": ErrorCode.DUPLICATE_RESOURCE,
                         "": ErrorCode.UNACCEPTABLE_CREDENTIAL, "ok": 0}
        resp = c.call(50, 0, {"users": [{"name": "ok"}, {"name": "nobody"}]})
        codes = {r["user"]: (r["error_code"], [(i["mechanism"], i["iterations"])
                                               for i in r["credential_infos"]])
                 for r in resp["results"]}
        assert codes == {"ok": (0, [(1, 4096)]),
                         "nobody": (ErrorCode.RESOURCE_NOT_FOUND, [])}
        every = c.call(50, 0, {"users": None})
        assert [r["user"] for r in every["results"]] == ["frank", "ok"]
