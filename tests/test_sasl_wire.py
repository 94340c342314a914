"""SASL on the wire, request by request: SaslHandshake/SaslAuthenticate v0-v2, PLAIN and SCRAM,
what is refused before authentication, KIP-368 session lifetime and re-authentication, the
per-IP failure limit, and the principal the connection ends up with."""

from __future__ import annotations

import time

import pytest
import scramp

import logmq
from logmq.broker.users import UserStore
from logmq.kafka_codes import ErrorCode
from logmq.protocol import encode_request
from tests.tls_util import SecureServer
from tests.wire_util import RawClient

FAILED = int(ErrorCode.SASL_AUTHENTICATION_FAILED)
ILLEGAL = int(ErrorCode.ILLEGAL_SASL_STATE)
META = {"topics": None, "allow_auto_topic_creation": False,
        "include_topic_authorized_operations": False}


@pytest.fixture
def broker(tmp_path):
    b = logmq.open(str(tmp_path / "d"), cleaner=False)
    UserStore(b.meta.env).set_password("alice", "wonderland", iterations=4096)
    UserStore(b.meta.env).set_password("bob", "builder", iterations=4096)
    yield b
    b.close()


@pytest.fixture
def srv(broker):
    with SecureServer(broker, ["PLAINTEXT://127.0.0.1:0", "SASL_PLAINTEXT://127.0.0.1:0"],
                      connections_max_reauth_ms=60_000) as s:
        yield s


def _client(srv: SecureServer, name: str = "SASL_PLAINTEXT") -> RawClient:
    host, port = srv.server.addresses[name]
    return RawClient(host, port, timeout=10)


def closed(c: RawClient) -> bool:
    """True once the server has closed the connection (EOF), bounded by the socket timeout."""
    try:
        return c.sock.recv(1) == b""
    except (TimeoutError, ConnectionError):
        return True


def plain(c: RawClient, user: str, password: str, v: int = 2) -> dict:
    hs = c.call(17, 1, {"mechanism": "PLAIN"})
    assert hs["error_code"] == 0 and "PLAIN" in hs["mechanisms"]
    return c.call(36, v, {"auth_bytes": f"\0{user}\0{password}".encode()})


def scram(c: RawClient, mech: str, user: str, password: str, v: int = 2) -> dict:
    assert c.call(17, 1, {"mechanism": mech})["error_code"] == 0
    client = scramp.ScramClient([mech], user, password)
    first = c.call(36, v, {"auth_bytes": client.get_client_first().encode()})
    if first["error_code"]:
        return first
    client.set_server_first(first["auth_bytes"].decode())
    final = c.call(36, v, {"auth_bytes": client.get_client_final().encode()})
    if final["error_code"] == 0:
        client.set_server_final(final["auth_bytes"].decode())  # the server proved itself
    return final


def principals(srv: SecureServer) -> list[tuple[str, str]]:
    async def read() -> list[tuple[str, str]]:
        return sorted((c.principal, c.listener) for c in srv.server._conns.values())
    return srv.run(read())


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_authenticates_and_sets_the_principal(srv, mech):
    c = _client(srv)
    resp = scram(c, mech, "alice", "wonderland")
    assert resp["error_code"] == 0
    assert resp["session_lifetime_ms"] == 60_000  # KIP-368: connections_max_reauth_ms
    assert c.call(3, 8, META)["brokers"]  # now anything goes
    assert ("User:alice", "SASL_PLAINTEXT") in principals(srv)
    c.close()


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_wrong_password_fails_with_the_auth_code_and_closes(srv, mech):
    c = _client(srv)
    resp = (plain(c, "alice", "nope") if mech == "PLAIN"
            else scram(c, mech, "alice", "nope"))
    assert resp["error_code"] == FAILED and resp["error_message"]
    assert closed(c)
    events = [e for e in srv.auth_events if not e[4]]
    assert events and events[-1][0] == "127.0.0.1" and events[-1][3] == mech


def test_unknown_user_fails_like_a_wrong_password(srv):
    c = _client(srv)
    assert scram(c, "SCRAM-SHA-256", "mallory", "x")["error_code"] == FAILED
    c2 = _client(srv)
    assert plain(c2, "mallory", "x")["error_code"] == FAILED


def test_plain_checks_the_stored_scram_credential(srv):
    c = _client(srv)
    resp = plain(c, "bob", "builder", v=0)
    assert resp["error_code"] == 0
    assert c.call(3, 1, META)["brokers"]
    assert ("User:bob", "SASL_PLAINTEXT") in principals(srv)


def test_before_authentication_only_sasl_and_api_versions(srv):
    c = _client(srv)
    versions = c.call(18, 2, {})
    keys = {k["api_key"] for k in versions["api_keys"]}
    assert {17, 36, 50, 51} <= keys
    c.sock.sendall(encode_request(3, 8, 99, "raw", META))
    assert closed(c)  # Kafka closes: unexpected request during the SASL handshake
    assert srv.run(_stat(srv, "sasl_unauthenticated")) == 1


async def _stat(srv: SecureServer, name: str) -> int:
    return srv.server.stats[name]


def test_authenticate_without_handshake_is_illegal(srv):
    c = _client(srv)
    resp = c.call(36, 1, {"auth_bytes": b"\0alice\0wonderland"})
    assert resp["error_code"] == ILLEGAL
    assert closed(c)


def test_unsupported_mechanism_lists_the_enabled_ones(broker):
    with SecureServer(broker, ["SASL_PLAINTEXT://127.0.0.1:0"],
                      mechanisms="SCRAM-SHA-512") as s:
        c = _client(s)
        resp = c.call(17, 1, {"mechanism": "PLAIN"})
        assert resp["error_code"] == int(ErrorCode.UNSUPPORTED_SASL_MECHANISM)
        assert resp["mechanisms"] == ["SCRAM-SHA-512"]
        assert closed(c)


def test_sasl_requests_on_a_plaintext_listener_are_illegal_state(srv):
    c = _client(srv, "PLAINTEXT")
    assert c.call(17, 1, {"mechanism": "PLAIN"})["error_code"] == ILLEGAL
    assert c.call(36, 2, {"auth_bytes": b""})["error_code"] == ILLEGAL
    assert c.call(3, 8, META)["brokers"]  # and the connection goes on
    assert ("User:ANONYMOUS", "PLAINTEXT") in principals(srv)


def test_handshake_v0_uses_bare_token_frames(srv):
    c = _client(srv)
    assert c.call(17, 0, {"mechanism": "PLAIN"})["error_code"] == 0
    token = b"\0alice\0wonderland"
    c.sock.sendall(len(token).to_bytes(4, "big") + token)
    assert c.read_frame() == b""  # PLAIN's (empty) server token, unframed
    assert c.call(3, 8, META)["brokers"]
    c2 = _client(srv)
    c2.call(17, 0, {"mechanism": "PLAIN"})
    bad = b"\0alice\0x"
    c2.sock.sendall(len(bad).to_bytes(4, "big") + bad)
    assert closed(c2)  # v0 has no error response: the connection is closed


def test_reauthentication_keeps_the_connection(srv):
    c = _client(srv)
    assert scram(c, "SCRAM-SHA-256", "alice", "wonderland")["error_code"] == 0
    again = scram(c, "SCRAM-SHA-256", "alice", "wonderland")
    assert again["error_code"] == 0 and again["session_lifetime_ms"] == 60_000
    assert c.call(3, 8, META)["brokers"]


def test_reauthentication_cannot_change_principal_or_mechanism(srv):
    c = _client(srv)
    assert scram(c, "SCRAM-SHA-256", "alice", "wonderland")["error_code"] == 0
    resp = scram(c, "SCRAM-SHA-256", "bob", "builder")
    assert resp["error_code"] == FAILED and "principal" in resp["error_message"]
    assert closed(c)
    c2 = _client(srv)
    assert scram(c2, "SCRAM-SHA-256", "alice", "wonderland")["error_code"] == 0
    assert c2.call(17, 1, {"mechanism": "PLAIN"})["error_code"] != 0
    assert closed(c2)


def test_expired_session_is_closed_at_the_next_request(broker):
    with SecureServer(broker, ["SASL_PLAINTEXT://127.0.0.1:0"],
                      connections_max_reauth_ms=200) as s:
        c = _client(s)
        resp = scram(c, "SCRAM-SHA-512", "alice", "wonderland", v=1)
        assert resp["error_code"] == 0 and resp["session_lifetime_ms"] == 200
        deadline = time.monotonic() + 10
        gone = False
        while time.monotonic() < deadline:  # poll until the lifetime is over (bounded)
            try:
                c.call(3, 8, META)
            except (ConnectionError, OSError):
                gone = True
                break
            time.sleep(0.05)
        assert gone
        assert s.run(_stat(s, "sasl_session_expired")) == 1


def test_session_lifetime_is_zero_without_reauth_limit(broker):
    with SecureServer(broker, ["SASL_PLAINTEXT://127.0.0.1:0"]) as s:
        c = _client(s)
        assert scram(c, "SCRAM-SHA-256", "alice", "wonderland")["session_lifetime_ms"] == 0


def test_failures_are_rate_limited_per_ip(broker):
    with SecureServer(broker, ["SASL_PLAINTEXT://127.0.0.1:0"],
                      auth_failures_per_minute=2) as s:
        for _ in range(2):
            assert plain(_client(s), "alice", "bad")["error_code"] == FAILED
        resp = plain(_client(s), "alice", "wonderland")  # right, but too late this minute
        assert resp["error_code"] == FAILED and "too many" in resp["error_message"]


def test_failure_is_delayed(broker):
    with SecureServer(broker, ["SASL_PLAINTEXT://127.0.0.1:0"], failed_auth_delay_ms=300) as s:
        c = _client(s)
        t0 = time.monotonic()
        assert plain(c, "alice", "bad")["error_code"] == FAILED
        assert time.monotonic() - t0 >= 0.3


def test_users_added_while_serving_authenticate(srv, broker):
    c = _client(srv)
    assert plain(c, "carol", "pw")["error_code"] == FAILED
    UserStore(broker.meta.env).set_password("carol", "pw", ["SCRAM-SHA-256"], 4096)
    assert plain(_client(srv), "carol", "pw")["error_code"] == 0
    assert scram(_client(srv), "SCRAM-SHA-256", "carol", "pw")["error_code"] == 0
    UserStore(broker.meta.env).remove("carol")
    assert scram(_client(srv), "SCRAM-SHA-256", "carol", "pw")["error_code"] == FAILED


def test_authentications_are_audited_with_the_authorizer_on(tmp_path):
    """Each SASL outcome is one audit entry (principal, peer, outcome): the authorizer's
    audit log, on by default with it."""
    import json

    b = logmq.open(str(tmp_path / "d"), cleaner=False, authorizer=True,
                   super_users="User:alice")
    try:
        UserStore(b.meta.env).set_password("alice", "wonderland", iterations=4096)
        with SecureServer(b, ["SASL_PLAINTEXT://127.0.0.1:0"]) as s:
            c = _client(s)
            assert plain(c, "alice", "wonderland")["error_code"] == 0
            c.close()
            c = _client(s)
            assert plain(c, "alice", "nope")["error_code"] == FAILED
            c.close()
        lines = (tmp_path / "d" / "audit.jsonl").read_text().splitlines()
        auth = [json.loads(ln) for ln in lines if '"authenticate"' in ln]
        assert [(e["principal"], e["outcome"], e["mechanism"]) for e in auth] == [
            ("User:alice", "ok", "PLAIN"), ("User:alice", "failed", "PLAIN")]
        assert all(e["peer"].startswith("127.0.0.1:") for e in auth)
    finally:
        b.close()
