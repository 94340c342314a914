"""Real Kafka clients over SASL_SSL and SSL with client certificates: confluent-kafka,
kafka-python, aiokafka and kcat. Each: the right credentials produce and consume, a wrong
password is refused with the authentication error, and a plaintext client on the TLS port gets
nothing while the server goes on serving."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time

import pytest

import logmq
from logmq.broker.users import UserStore
from logmq.protocol import encode_request
from tests.tls_util import SecureServer, make_pki

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture(scope="module")
def sasl_srv(tmp_path_factory, pki):
    b = logmq.open(str(tmp_path_factory.mktemp("sasl") / "d"), cleaner=False)
    UserStore(b.meta.env).set_password("alice", "wonderland", iterations=4096)
    with SecureServer(b, ["PLAINTEXT://127.0.0.1:0", "SASL_SSL://127.0.0.1:0",
                          "SSL://127.0.0.1:0"], pki) as s:
        yield s
    b.close()


@pytest.fixture(scope="module")
def mtls_srv(tmp_path_factory, pki):
    b = logmq.open(str(tmp_path_factory.mktemp("mtls") / "d"), cleaner=False)
    with SecureServer(b, ["SSL://127.0.0.1:0"], pki, mtls=True) as s:
        yield s
    b.close()


def _ck_conf(srv: SecureServer, pki, mech: str, password: str) -> dict:
    return {"bootstrap.servers": srv.address("SASL_SSL"), "security.protocol": "SASL_SSL",
            "sasl.mechanisms": mech, "sasl.username": "alice", "sasl.password": password,
            "ssl.ca.location": pki.ca}


def _roundtrip_ck(conf: dict, topic: str) -> list[bytes]:
    import confluent_kafka as ck

    p = ck.Producer({**conf, "message.timeout.ms": 10_000})
    errors: list = []
    for i in range(3):
        p.produce(topic, b"m%d" % i, on_delivery=lambda e, m: errors.append(e))
    assert p.flush(15) == 0 and errors == [None] * 3
    c = ck.Consumer({**conf, "group.id": "g-" + topic, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 20
    while len(got) < 3 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    return got


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_confluent_kafka_over_sasl_ssl(sasl_srv, pki, mech):
    topic = "ck-" + mech.lower()
    assert _roundtrip_ck(_ck_conf(sasl_srv, pki, mech, "wonderland"), topic) == [
        b"m0", b"m1", b"m2"]


def test_confluent_kafka_wrong_password_gets_the_auth_error(sasl_srv, pki):
    import confluent_kafka as ck

    errors: list = []
    conf = {**_ck_conf(sasl_srv, pki, "SCRAM-SHA-256", "wrong"), "error_cb": errors.append}
    p = ck.Producer(conf)
    deadline = time.monotonic() + 15
    while not errors and time.monotonic() < deadline:
        p.poll(0.2)
    assert errors and errors[0].code() == ck.KafkaError._AUTHENTICATION
    assert "invalid credentials" in errors[0].str()


def test_confluent_kafka_ssl_with_client_certificate(mtls_srv, pki):
    cert, key = pki.client("alice", ou="eng")
    conf = {"bootstrap.servers": mtls_srv.address("SSL"), "security.protocol": "SSL",
            "ssl.ca.location": pki.ca, "ssl.certificate.location": cert,
            "ssl.key.location": key}
    assert _roundtrip_ck(conf, "mtls") == [b"m0", b"m1", b"m2"]

    async def who() -> set[str]:
        return {c.principal for c in mtls_srv.server._conns.values()}
    # what Kafka's default principal builder gives: the subject DN, most specific first
    assert mtls_srv.run(who()) <= {"User:CN=alice,OU=eng,O=logmq tests"}


def test_ssl_without_client_certificate_is_refused(mtls_srv, pki):
    import ssl

    ctx = ssl.create_default_context(cafile=pki.ca)
    host, port = mtls_srv.server.addresses["SSL"]
    with socket.create_connection((host, port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(encode_request(18, 2, 1, "t", {}))
                if not s.recv(4):  # TLS 1.3 reports the missing certificate at first read
                    raise ConnectionError("closed")


def test_plaintext_client_on_tls_port_gets_nothing(sasl_srv, pki):
    host, port = sasl_srv.server.addresses["SASL_SSL"]
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(encode_request(18, 2, 1, "plain", {}))
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except (TimeoutError, ConnectionError):
            pass
    # nothing a Kafka client could read: at most a TLS alert record (content type 21)
    assert data == b"" or data[0] == 0x15
    # and the server is fine
    conf = _ck_conf(sasl_srv, pki, "SCRAM-SHA-256", "wonderland")
    assert _roundtrip_ck(conf, "after-plain") == [b"m0", b"m1", b"m2"]


def test_kafka_python_over_sasl_ssl(sasl_srv, pki, caplog):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.errors import KafkaTimeoutError

    kw = dict(bootstrap_servers=sasl_srv.address("SASL_SSL"), security_protocol="SASL_SSL",
              sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice",
              ssl_cafile=pki.ca)
    p = KafkaProducer(sasl_plain_password="wonderland", **kw)
    assert p.send("kp", b"hello").get(15).offset == 0
    p.close()
    c = KafkaConsumer("kp", sasl_plain_password="wonderland", auto_offset_reset="earliest",
                      consumer_timeout_ms=10_000, **kw)
    assert next(iter(c)).value == b"hello"  # stops at the first record, not the timeout
    c.close()
    start = len(sasl_srv.auth_events)
    with pytest.raises(KafkaTimeoutError):  # never connected: the password was refused
        KafkaProducer(sasl_plain_password="wrong", bootstrap_timeout_ms=2000, **kw)
    # the server refused alice's wrong password (kafka-python's own log line about it races
    # its 2 s bootstrap timeout, so the server's record of the refusal is what is checked)
    assert any(not e[4] and str(e[2]).endswith("alice") for e in sasl_srv.auth_events[start:])


def test_aiokafka_over_sasl_ssl(sasl_srv, pki):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError
    from aiokafka.helpers import create_ssl_context

    def kw(password: str) -> dict:
        return dict(bootstrap_servers=sasl_srv.address("SASL_SSL"),
                    security_protocol="SASL_SSL", sasl_mechanism="PLAIN",
                    sasl_plain_username="alice", sasl_plain_password=password,
                    ssl_context=create_ssl_context(cafile=pki.ca))

    async def main() -> None:
        p = AIOKafkaProducer(**kw("wonderland"))
        await p.start()
        try:
            await p.send_and_wait("aio", b"x")
        finally:
            await p.stop()
        c = AIOKafkaConsumer("aio", auto_offset_reset="earliest", **kw("wonderland"))
        await c.start()
        try:
            m = await asyncio.wait_for(c.getone(), 15)
            assert m.value == b"x"
        finally:
            await c.stop()
        bad = AIOKafkaProducer(**kw("wrong"))
        with pytest.raises(KafkaConnectionError):
            await bad.start()
        await bad.stop()

    asyncio.run(main())
    assert sasl_srv.auth_events[-1][3:5] == ("PLAIN", False)


@pytest.mark.skipif(shutil.which("kcat") is None and not os.environ.get("CI"),
                    reason="kcat is not installed (CI has it)")
def test_kcat_over_sasl_ssl(sasl_srv, pki):
    def kcat(password: str, *args: str, stdin: str | None = None
             ) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["kcat", "-b", sasl_srv.address("SASL_SSL"), "-X", "security.protocol=SASL_SSL",
             "-X", "sasl.mechanisms=PLAIN", "-X", "sasl.username=alice",
             "-X", f"sasl.password={password}", "-X", f"ssl.ca.location={pki.ca}", *args],
            input=stdin, capture_output=True, text=True, timeout=60)

    r = kcat("wonderland", "-P", "-t", "kc", stdin="one\ntwo\n")
    assert r.returncode == 0, r.stderr
    r = kcat("wonderland", "-C", "-t", "kc", "-o", "beginning", "-c", "2", "-e")
    assert r.stdout.split() == ["one", "two"], r.stderr
    r = kcat("wrong", "-L", "-m", "3")
    assert r.returncode != 0 and "Invalid username or password" in r.stderr
    # (SCRAM: kcat 1.7's librdkafka 2.0 repeats its nonce; Kafka 4.4 and logmq refuse it,
    # tests/oracle/test_sasl_oracle.py)


def test_fetch_over_tls_sends_the_segment_bytes(tmp_path, pki):
    """Fetch on a TLS listener reads the segment ranges instead of sendfile (records written
    through the plaintext listener, read through TLS)."""
    import confluent_kafka as ck

    with logmq.open(str(tmp_path / "d"), cleaner=False) as b, SecureServer(
            b, ["PLAINTEXT://127.0.0.1:0", "SSL://127.0.0.1:0"], pki) as srv:
        p = ck.Producer({"bootstrap.servers": srv.address("PLAINTEXT"), "linger.ms": 5})
        for i in range(2000):
            p.produce("across", b"r%d" % i)
        assert p.flush(15) == 0
        c = ck.Consumer({"bootstrap.servers": srv.address("SSL"), "security.protocol": "SSL",
                         "ssl.ca.location": pki.ca, "group.id": "across",
                         "auto.offset.reset": "earliest"})
        c.subscribe(["across"])
        got: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(got) < 2000 and time.monotonic() < deadline:
            got += [m.value() for m in c.consume(1000, 0.5) if not m.error()]
        c.close()
    assert got == [b"r%d" % i for i in range(2000)]


def test_logmq_serve_with_sasl_ssl_from_the_command_line(tmp_path, pki):
    """The whole path of `logmq serve`: flags -> config table -> listeners -> TLS + SASL."""
    import re
    import subprocess
    import sys

    from tests.server_util import ServerProcess

    data = str(tmp_path / "d")
    subprocess.run([sys.executable, "-m", "logmq.cli", "users", "add", "alice",
                    "--password-stdin", "--iterations", "4096", "--data", data],
                   input="wonderland\n", text=True, check=True, capture_output=True)
    with ServerProcess(data, "--listen", "SASL_SSL://127.0.0.1:0", "--ssl-certfile",
                       pki.server_cert, "--ssl-keyfile", pki.server_key,
                       "--sasl-mechanisms", "SCRAM-SHA-512") as srv:
        deadline = time.monotonic() + 30
        port = None
        while port is None and time.monotonic() < deadline:  # lines the drain thread reads
            for line in list(srv.lines):
                if m := re.search(r"listening on [\d.]+:(\d+) \(SASL_SSL;", line):
                    port = int(m.group(1))
            time.sleep(0.02)
        assert port is not None, "".join(srv.lines)
        conf = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_SSL",
                "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "alice",
                "sasl.password": "wonderland", "ssl.ca.location": pki.ca}
        assert _roundtrip_ck(conf, "cli") == [b"m0", b"m1", b"m2"]
        assert srv.stop() == 0


def test_confluent_kafka_reauthenticates_before_the_session_ends(tmp_path, pki):
    """KIP-368 with a real client: librdkafka re-authenticates on the same connection when
    SaslAuthenticate tells it the session lifetime, and keeps producing throughout."""
    import confluent_kafka as ck

    with logmq.open(str(tmp_path / "d"), cleaner=False) as b:
        UserStore(b.meta.env).set_password("alice", "wonderland", iterations=4096)
        with SecureServer(b, ["SASL_SSL://127.0.0.1:0"], pki,
                          connections_max_reauth_ms=1000) as srv:
            p = ck.Producer({**_ck_conf(srv, pki, "SCRAM-SHA-256", "wonderland"),
                             "linger.ms": 0})
            errors: list = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(
                    e[5] == "re-authenticated" for e in srv.auth_events):
                p.produce("reauth", b"x", on_delivery=lambda e, m: e and errors.append(e))
                p.poll(0.05)
            assert p.flush(15) == 0 and errors == []
            assert any(e[5] == "re-authenticated" and e[2] == "User:alice"
                       for e in srv.auth_events)
            assert srv.run(_expired(srv)) == 0  # re-authenticated in time: nothing closed


async def _expired(srv: SecureServer) -> int:
    return srv.server.stats["sasl_session_expired"]
