"""A bounded fuzz of the SASL exchange: hostile tokens and orders of requests on a SASL
listener. Whatever arrives, the server answers or closes that one connection, never raises in
a handler, never lets a connection through without the password, and keeps serving a
well-behaved client."""

from __future__ import annotations

import socket
import struct

import pytest
import scramp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import logmq
from logmq.broker.users import UserStore
from logmq.protocol import encode_request
from tests.test_sasl_wire import scram
from tests.tls_util import SecureServer
from tests.wire_util import RawClient

MECHS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "", "plain"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    b = logmq.open(str(tmp_path_factory.mktemp("fz") / "d"), cleaner=False)
    UserStore(b.meta.env).set_password("alice", "wonderland", iterations=4096)
    with SecureServer(b, ["SASL_PLAINTEXT://127.0.0.1:0"], connections_max_reauth_ms=60_000,
                      auth_failures_per_minute=1_000_000) as s:
        yield s
    b.close()


def _scram_first(user: str) -> bytes:
    return scramp.ScramClient(["SCRAM-SHA-256"], user, "pw").get_client_first().encode()


token = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda a, b, c: b"\0".join((a, b, c)), st.binary(max_size=20),
              st.sampled_from([b"alice", b"", b"\xff", b"alice\0"]), st.binary(max_size=20)),
    st.sampled_from([b"n,,n=alice,r=", b"n,,n=alice,r=a,b", b"y,,n=alice,r=abc",
                     b"p=tls-unique,,n=alice,r=abc", b"c=biws,r=x,p=AAAA", b"n,,n=,r=x",
                     b"n,,n=alice,r=abc,m=ext", b"\x00" * 40]),
    st.builds(_scram_first, st.sampled_from(["alice", "a=2Cb", "a=3D", "=", "x" * 500])),
)
step = st.one_of(
    st.tuples(st.just(17), st.integers(0, 1), st.sampled_from(MECHS)),
    st.tuples(st.just(36), st.integers(0, 2), token),
    st.tuples(st.sampled_from([3, 18, 0, 50]), st.just(0), st.none()),
    st.tuples(st.just(-1), st.just(0), token),  # raw bytes as a frame (v0 framing, junk)
)


def _send(sock: socket.socket, api: int, v: int, arg: object, corr: int) -> bytes | None:
    """Send one step; the response frame, or None if the server closed the connection."""
    if api == -1:
        assert isinstance(arg, bytes)
        sock.sendall(struct.pack(">i", len(arg)) + arg)
    elif api == 17:
        sock.sendall(encode_request(17, v, corr, "fz", {"mechanism": arg}))
    elif api == 36:
        sock.sendall(encode_request(36, v, corr, "fz", {"auth_bytes": arg}))
    elif api == 18:
        sock.sendall(encode_request(18, 2, corr, "fz", {}))
    elif api == 50:
        sock.sendall(encode_request(50, 0, corr, "fz", {"users": None}))
    else:
        sock.sendall(encode_request(3, 1, corr, "fz", {"topics": None}) if api == 3 else
                     encode_request(0, 3, corr, "fz", {"transactional_id": None, "acks": 1,
                                                       "timeout_ms": 100, "topic_data": []}))
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    size = struct.unpack(">i", head)[0]
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            return None
        body += chunk
    return body


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=6))
def test_hostile_sasl_exchanges(srv, steps):
    host, port = srv.server.addresses["SASL_PLAINTEXT"]
    with socket.create_connection((host, port), timeout=10) as sock:
        for corr, (api, v, arg) in enumerate(steps, 1):
            try:
                frame = _send(sock, api, v, arg, corr)
            except (ConnectionError, TimeoutError):
                frame = None
            if frame is None:
                break
            if api in (3, 0, 50):
                # answered after authentication only, which needs the password: never here
                raise AssertionError(f"api {api} answered without authentication")
            if api in (17, 36):
                assert struct.unpack(">i", frame[:4])[0] == corr  # an answer to this request

    async def stats() -> int:
        return srv.server.stats["handler_errors"]
    assert srv.run(stats()) == 0
    good = RawClient(host, port)
    assert scram(good, "SCRAM-SHA-256", "alice", "wonderland")["error_code"] == 0
    good.close()
