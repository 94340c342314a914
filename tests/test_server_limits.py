"""The server against hostile clients: spinning long polls, huge arrays, slowloris, floods.

Each test reproduces a defect of issue 11 that froze, bloated or crashed the old server, and
checks a well-behaved client is still served within a bound while it happens.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import struct
import sys
import time

import pytest

import logmq
from logmq.protocol import encode_request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_util import ServerProcess  # noqa: E402
from wire_util import RawClient, ThreadServer, wait_until  # noqa: E402


def _served(host: str, port: int, timeout: float = 2.0) -> float:
    """Seconds a fresh client needs for a Metadata round trip (fails beyond ``timeout``)."""
    t0 = time.monotonic()
    c = RawClient(host, port, timeout=timeout)
    try:
        c.call(3, 1, {"topics": None})
    finally:
        c.close()
    return time.monotonic() - t0


def _empty_fetch(max_wait_ms: int) -> bytes:
    return encode_request(1, 11, 1, "spin", {
        "replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": 1, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1, "topics": [],
        "forgotten_topics_data": [], "rack_id": ""})


@pytest.fixture
def broker(tmp_path):
    b = logmq.open(str(tmp_path / "data"))
    yield b
    b.close()


@pytest.fixture
def tserver(broker, request):
    s = ThreadServer(broker, **getattr(request, "param", {}))
    yield s
    s.close()


# ---------------------------------------------------------------------- defect 1
def test_empty_fetch_with_huge_wait_does_not_starve_others_and_sigterm_exits(tmp_path):
    with ServerProcess(str(tmp_path / "data")) as srv:
        spinners = []
        for _ in range(3):
            s = socket.create_connection((srv.host, srv.port))
            s.sendall(_empty_fetch(2**31 - 1))  # ~24 days, no partitions to wake it
            spinners.append(s)
        time.sleep(0.2)  # let the server take them up (not a synchronization: a load step)
        for _ in range(5):
            assert _served(srv.host, srv.port) < 1.0
        t0 = time.monotonic()
        assert srv.stop(signal.SIGTERM, timeout=10) == 0
        assert time.monotonic() - t0 < 6.0
        for s in spinners:
            s.close()
        assert "data directory closed cleanly" in "".join(srv.lines)


def test_empty_fetch_returns_after_its_wait(tserver):
    c = RawClient(tserver.host, tserver.port)
    t0 = time.monotonic()
    resp = c.call(1, 11, {"max_wait_ms": 300, "min_bytes": 1, "max_bytes": 1000, "topics": [],
                          "session_epoch": -1})
    assert 0.25 < time.monotonic() - t0 < 3
    assert resp["error_code"] == 0 and resp["responses"] == []
    c.close()


def test_long_poll_on_a_partition_ends_promptly_at_stop(broker):
    broker.create_topic("lp", partitions=1)
    s = ThreadServer(broker)
    c = RawClient(s.host, s.port)
    c.sock.sendall(encode_request(1, 11, 1, "lp", {
        "max_wait_ms": 2**31 - 1, "min_bytes": 1, "max_bytes": 1000, "session_epoch": -1,
        "topics": [{"topic": "lp", "partitions": [{"partition": 0, "fetch_offset": 0,
                                                   "partition_max_bytes": 1000}]}]}))
    wait_until(lambda: s.state(lambda: any(x.busy for x in s.server._conns.values())), 5,
               "the fetch to be in progress")
    t0 = time.monotonic()
    s.close()
    assert time.monotonic() - t0 < 3
    c.close()


# ---------------------------------------------------------------------- defect 4
def test_metadata_of_a_million_empty_names_is_refused_fast(tserver):
    body = struct.pack(">hhih", 3, 1, 1, 3) + b"big" + struct.pack(">i", 1_000_000)
    body += b"\x00\x00" * 1_000_000
    s = socket.create_connection((tserver.host, tserver.port), timeout=10)
    t0 = time.monotonic()
    s.sendall(struct.pack(">i", len(body)) + body)
    assert s.recv(10) == b""  # closed: more array elements than Metadata may carry
    assert time.monotonic() - t0 < 2.0
    s.close()
    assert _served(tserver.host, tserver.port) < 1.0
    assert tserver.state(lambda: tserver.server.stats["malformed_frames"]) == 1


def test_metadata_within_bounds_still_answers(tserver):
    c = RawClient(tserver.host, tserver.port)
    resp = c.call(3, 4, {"topics": [{"name": f"t{i}"} for i in range(500)],
                         "allow_auto_topic_creation": False})
    assert len(resp["topics"]) == 500
    assert {t["error_code"] for t in resp["topics"]} == {3}
    c.close()


def test_create_topics_partition_cap(tserver, broker):
    c = RawClient(tserver.host, tserver.port)
    resp = c.call(19, 4, {"topics": [
        {"name": "huge", "num_partitions": 30_000, "replication_factor": 1},
        {"name": "ok", "num_partitions": 2, "replication_factor": 1}], "timeout_ms": 5000})
    codes = {t["name"]: t["error_code"] for t in resp["topics"]}
    assert codes == {"huge": 37, "ok": 0}  # INVALID_PARTITIONS
    assert "huge" not in broker.list_topics() and broker.partitions_for("ok") == 2
    c.close()


@pytest.mark.parametrize("tserver", [{"max_request_size": 1 << 20,
                                      "queued_max_request_bytes": 2 * ((1 << 20) + 4),
                                      "request_arrival_timeout_ms": 3000}], indirect=True)
def test_unfinished_frames_share_one_byte_budget(tserver):
    """12 clients announce 1 MiB frames and stall: only 2 MiB is ever reserved for them."""
    socks = []
    for _ in range(12):
        s = socket.create_connection((tserver.host, tserver.port))
        s.sendall(struct.pack(">i", 1 << 20) + b"\x00" * (200 << 10))
        socks.append(s)
    wait_until(lambda: tserver.state(lambda: tserver.server.pool.used) == 2 * ((1 << 20) + 4),
               5, "two reservations (frame and size prefix)")
    wait_until(lambda: tserver.state(lambda: len(tserver.server.pool._waiters)) == 10,
               5, "the other ten to wait for budget")  # a loaded box accepts them late
    assert _served(tserver.host, tserver.port) < 1.0  # small requests need no reservation
    wait_until(lambda: tserver.state(lambda: tserver.server.connection_count) == 0, 10,
               "the stalled connections to be closed")
    assert tserver.state(lambda: tserver.server.pool.used) == 0
    for s in socks:
        s.close()


# ---------------------------------------------------------------------- defect 5
@pytest.mark.parametrize("tserver", [{"request_arrival_timeout_ms": 400}], indirect=True)
def test_slowloris_connections_are_closed(tserver):
    socks = []
    for _ in range(200):
        s = socket.create_connection((tserver.host, tserver.port))
        s.sendall(struct.pack(">i", 1000) + b"\x00\x03")  # a frame that never completes
        socks.append(s)
    wait_until(lambda: tserver.state(lambda: tserver.server.stats["slow_closed"]) == 200, 10,
               "every slowloris connection to be closed")
    assert tserver.state(lambda: tserver.server.connection_count) == 0
    for s in socks:
        s.settimeout(2)
        assert s.recv(10) == b""
        s.close()
    assert _served(tserver.host, tserver.port) < 1.0


@pytest.mark.parametrize("tserver", [{"request_arrival_timeout_ms": 500}], indirect=True)
def test_byte_a_second_trickle_is_still_closed(tserver):
    s = socket.create_connection((tserver.host, tserver.port))
    s.sendall(struct.pack(">i", 100))
    t0 = time.monotonic()
    closed = False
    while time.monotonic() - t0 < 5 and not closed:
        try:
            s.sendall(b"\x00")  # activity, but the request never arrives whole
        except OSError:
            closed = True
        time.sleep(0.05)  # the trickle's pace (not a synchronization)
    assert closed
    assert time.monotonic() - t0 < 3
    s.close()


@pytest.mark.parametrize("tserver", [{"connections_max_idle_ms": 300}], indirect=True)
def test_idle_connections_are_closed(tserver):
    c = RawClient(tserver.host, tserver.port)
    c.call(18, 2, {})
    c.sock.settimeout(5)
    t0 = time.monotonic()
    assert c.sock.recv(10) == b""
    assert 0.25 < time.monotonic() - t0 < 3
    assert tserver.state(lambda: tserver.server.stats["idle_closed"]) == 1
    c.close()


@pytest.mark.parametrize("tserver", [{"max_connections_per_ip": 5, "max_connections": 8}],
                         indirect=True)
def test_connection_caps(tserver):
    held = [RawClient(tserver.host, tserver.port) for _ in range(5)]
    for c in held:
        c.call(18, 2, {})
    extra = socket.create_connection((tserver.host, tserver.port), timeout=5)
    try:
        assert extra.recv(10) == b""
    except ConnectionResetError:
        pass
    extra.close()
    assert tserver.state(lambda: tserver.server.stats["refused_connections"]) == 1
    held.pop().close()
    wait_until(lambda: tserver.state(lambda: tserver.server.connection_count) == 4, 5,
               "the closed connection to be released")
    assert _served(tserver.host, tserver.port) < 1.0
    for c in held:
        c.close()


# ---------------------------------------------------------------------- defect 10
def test_topic_names_with_newline_refused_everywhere(tserver, broker):
    with pytest.raises(logmq.errors.InvalidTopicError):
        broker.create_topic("md\n", partitions=1)
    c = RawClient(tserver.host, tserver.port)
    resp = c.call(19, 4, {"topics": [{"name": "ct\n", "num_partitions": 1,
                                      "replication_factor": 1}], "timeout_ms": 1000})
    assert resp["topics"][0]["error_code"] == 17
    resp = c.call(3, 4, {"topics": [{"name": "md\n"}], "allow_auto_topic_creation": True})
    assert resp["topics"][0]["error_code"] == 17
    c.close()
    assert broker.list_topics() == []
    assert not [n for n in os.listdir(broker.path) if "\n" in n]


def test_offset_fetch_with_nul_in_name_gets_an_error_not_a_dropped_connection(tserver):
    c = RawClient(tserver.host, tserver.port)
    resp = c.call(9, 5, {"group_id": "g", "topics": [{"name": "a\x00b",
                                                      "partition_indexes": [0]}]})
    assert resp["topics"][0]["partitions"][0]["error_code"] == 17
    resp = c.call(9, 5, {"group_id": "g\x00", "topics": None})
    assert resp["error_code"] == 24  # INVALID_GROUP_ID
    assert c.call(18, 2, {})["error_code"] == 0  # same connection still served
    c.close()


def test_cluster_id_survives_restart(tmp_path):
    ids = []
    for _ in range(2):
        with logmq.open(str(tmp_path / "d")) as b:
            s = ThreadServer(b)
            c = RawClient(s.host, s.port)
            ids.append(c.call(3, 8, {"topics": None})["cluster_id"])
            c.close()
            s.close()
    assert ids[0] == ids[1] and len(ids[0]) == 22


def test_disconnects_at_debug_and_malformed_frames_rate_limited(tserver, caplog):
    caplog.set_level(logging.DEBUG, logger="logmq.server")
    for _ in range(20):  # clients that vanish mid-request
        s = socket.create_connection((tserver.host, tserver.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(struct.pack(">i", 50) + b"\x00\x12")
        s.close()  # RST
    for _ in range(60):  # garbage headers
        s = socket.create_connection((tserver.host, tserver.port))
        s.sendall(struct.pack(">i", 3) + b"abc")
        s.settimeout(5)
        s.recv(10)
        s.close()
    wait_until(lambda: tserver.state(lambda: tserver.server.stats["malformed_frames"]) == 60,
               5, "60 malformed frames counted")
    wait_until(lambda: tserver.state(lambda: tserver.server.connection_count) == 0, 5,
               "all connections closed")
    recs = [r for r in caplog.records if r.name == "logmq.server"]
    assert not [r for r in recs if r.levelno >= logging.ERROR]
    assert not [r for r in recs if r.exc_info]
    warnings = [r for r in recs if r.levelno == logging.WARNING]
    assert len(warnings) <= tserver.server.limits.malformed_log_per_minute


def test_limits_reject_nonsense_and_name_kafka_keys():
    from logmq.errors import ConfigError
    from logmq.server.limits import ServerLimits, parse_limit

    assert parse_limit("connections.max.idle.ms=1_000") == ("connections_max_idle_ms", 1000)
    with pytest.raises(ConfigError):
        ServerLimits(max_connections=0)
    with pytest.raises(ConfigError):
        ServerLimits().replace(no_such_limit=1)
    assert ServerLimits().replace(max_request_size=1 << 30).queued_max_request_bytes == 1 << 30


def test_serve_limit_flag_reaches_the_server(tmp_path):
    with ServerProcess(str(tmp_path / "data"), "--limit", "max_connections_per_ip=2") as srv:
        held = [RawClient(srv.host, srv.port) for _ in range(2)]
        for c in held:
            c.call(18, 2, {})
        extra = socket.create_connection((srv.host, srv.port), timeout=5)
        try:
            assert extra.recv(10) == b""
        except ConnectionResetError:
            pass
        extra.close()
        for c in held:
            c.close()
    bad = ServerProcess(str(tmp_path / "data2"), "--limit", "nonsense=1")
    with pytest.raises(RuntimeError, match="nonsense"):
        bad.start()


def test_large_produce_is_handled_off_the_event_loop_and_lands(tserver, broker):
    from logmq.codec.records import encode_batch

    broker.create_topic("big", partitions=1)
    batch = encode_batch([(b"k", b"x" * 1000)] * 300, timestamp=int(time.time() * 1000))
    assert len(batch) > tserver.server.limits.offload_request_bytes
    c = RawClient(tserver.host, tserver.port)
    assert c.produce("big", batch)["base_offset"] == 0
    assert c.produce("big", batch)["base_offset"] == 300
    c.close()
    assert broker.end_offset(("big", 0)) == 600


def _join(c: RawClient, rebalance_ms: int) -> None:
    c.corr += 1
    c.sock.sendall(encode_request(11, 3, c.corr, "j", {
        "group_id": "g", "session_timeout_ms": 30_000, "rebalance_timeout_ms": rebalance_ms,
        "member_id": "", "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": b""}]}))


def test_long_poll_of_a_client_that_went_away_frees_its_connection(tserver):
    """A join left waiting (24 days asked) by a vanished client must not hold its slot."""
    a = RawClient(tserver.host, tserver.port)
    _join(a, 2**31 - 1)
    a.read_frame()  # member A is in the group (generation 1) and will never rejoin
    b = RawClient(tserver.host, tserver.port)
    _join(b, 2**31 - 1)  # waits for A to rejoin
    wait_until(lambda: tserver.state(lambda: sum(c.busy for c in tserver.server._conns.values()))
               == 1, 10, "B's join to be waiting")
    b.close()  # a plain FIN: the server sees EOF while it is not reading
    wait_until(lambda: tserver.state(lambda: tserver.server.connection_count) == 1, 5,
               "B's connection to be released")
    assert tserver.state(lambda: tserver.server.stats["client_gone"]) == 1
    a.close()


@pytest.mark.parametrize("tserver", [{"max_group_members": 3}], indirect=True)
def test_group_size_cap_and_repeated_describe(tserver):
    """Members pile up from joins of vanished v0 clients; the cap bounds what each answer holds."""
    codes = []
    for _ in range(5):
        c = RawClient(tserver.host, tserver.port)
        c.corr += 1
        c.sock.sendall(encode_request(11, 0, c.corr, "j", {
            "group_id": "big", "session_timeout_ms": 30_000, "member_id": "",
            "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": b""}]}))
        c.sock.settimeout(0.3)
        try:
            codes.append(struct.unpack(">ih", c.read_frame()[:6])[1])
        except OSError:
            codes.append(None)  # still waiting in the rebalance: a member all the same
        c.close()
    assert codes[3:] == [81, 81]  # GROUP_MAX_SIZE_REACHED
    c = RawClient(tserver.host, tserver.port)
    resp = c.call(15, 0, {"groups": ["big"] * 200})
    assert len(resp["groups"]) == 200 and len(resp["groups"][0]["members"]) == 3
    c.close()


@pytest.mark.parametrize("tserver", [{"max_group_member_metadata_bytes": 1000}], indirect=True)
def test_member_metadata_and_assignment_caps(tserver):
    """A member's metadata past the cap is refused before the coordinator keeps it."""
    c = RawClient(tserver.host, tserver.port)
    join = {"group_id": "meta", "session_timeout_ms": 30_000, "rebalance_timeout_ms": 5_000,
            "member_id": "", "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b"x" * 600},
                          {"name": "roundrobin", "metadata": b"y" * 600}]}
    r = c.call(11, 2, join)
    assert r["error_code"] == 42 and r["member_id"] == ""  # INVALID_REQUEST, nothing kept
    assert tserver.state(lambda: tserver.server.handlers._group_size("meta")) == 0
    join["protocols"] = [{"name": "range", "metadata": b"x" * 1000}]  # at the cap: fine
    r = c.call(11, 2, join)
    assert r["error_code"] == 0, r
    big = {"group_id": "meta", "generation_id": r["generation_id"], "member_id": r["member_id"],
           "assignments": [{"member_id": r["member_id"], "assignment": b"z" * 1001}]}
    assert c.call(14, 1, big)["error_code"] == 42
    big["assignments"][0]["assignment"] = b"z" * 10
    s = c.call(14, 1, big)
    assert s["error_code"] == 0 and s["assignment"] == b"z" * 10
    c.close()
