"""SIGTERM is honoured within a bound whatever clients do, and the data closes cleanly.

``logmq serve`` once took 54 s to exit after one Metadata request auto-creating 10,000
topics: the work runs in a worker thread, which asyncio.run's exit waited for. Here that
request runs while slowloris connections hold partial frames, a client never reads its
responses, a long poll waits and a flood of malformed frames goes on; the server must exit
within its ``shutdown_timeout_ms`` (plus the close of the data directory), exit 0, log no
error, and the data directory must reopen without recovery.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import sys
import threading
import time

import logmq
from logmq.protocol import encode_request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_util import ServerProcess  # noqa: E402
from wire_util import wait_until  # noqa: E402

BOUND_S = 2.0  # the server's shutdown_timeout_ms below
CLOSE_S = 8.0  # closing the data directory (thousands of partitions on a slow CI disk)


def _auto_create(n: int) -> bytes:
    return encode_request(3, 12, 1, "many", {
        "topics": [{"name": f"auto{i}", "topic_id": b"\0" * 16} for i in range(n)],
        "allow_auto_topic_creation": True, "include_topic_authorized_operations": False})


def _long_poll() -> bytes:
    return encode_request(1, 11, 2, "poll", {
        "replica_id": -1, "max_wait_ms": 30_000, "min_bytes": 1 << 20, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1, "topics": [{
            "topic": "filled", "partitions": [{"partition": 0, "fetch_offset": 0,
                                               "partition_max_bytes": 1 << 20,
                                               "current_leader_epoch": -1,
                                               "log_start_offset": -1,
                                               "last_fetched_epoch": -1}]}],
        "forgotten_topics_data": [], "rack_id": ""})


def _flood(host: str, port: int, stop: threading.Event, sent: list[int]) -> None:
    """Malformed frames over fresh connections until told to stop (the server may be gone)."""
    bad = struct.pack(">i", 12) + b"\x00\x03\x00\x0c\xff\xff\xff\xff\x7f\xff\x00\x00"
    while not stop.is_set():
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                for _ in range(20):
                    s.sendall(bad)
                    sent[0] += 1
        except OSError:
            if stop.wait(0.01):
                return


def test_sigterm_under_hostile_clients_exits_in_bound_and_reopens_clean(tmp_path):
    data = str(tmp_path / "data")
    with logmq.open(data) as b:  # a topic with data, for the client that does not read
        b.create_topic("filled")
        p = b.producer()
        for i in range(64):
            p.send("filled", b"x" * 60_000, key=b"%d" % i)
        p.flush()
    srv = ServerProcess(data, "--limit", f"shutdown_timeout_ms={int(BOUND_S * 1000)}")
    socks: list[socket.socket] = []
    stop = threading.Event()
    sent = [0]
    with srv:
        addr = (srv.host, srv.port)
        # 1. a Metadata request whose auto-creation runs for tens of seconds in a thread
        many = socket.create_connection(addr)
        many.sendall(_auto_create(10_000))
        socks.append(many)
        # 2. slowloris: partial frames
        for _ in range(50):
            s = socket.create_connection(addr)
            s.sendall(struct.pack(">i", 1000) + b"\x00\x03")
            socks.append(s)
        # 3. a client that asks for 3.8 MB and never reads it
        lazy = socket.create_connection(addr)
        lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        fetch = encode_request(1, 4, 3, "lazy", {
            "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 26,
            "isolation_level": 0, "topics": [{"topic": "filled", "partitions": [
                {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 26}]}]})
        for _ in range(8):
            lazy.sendall(fetch)
        socks.append(lazy)
        # 4. a long poll
        poll = socket.create_connection(addr)
        poll.sendall(_long_poll())
        socks.append(poll)
        # 5. a flood of malformed frames
        flood = threading.Thread(target=_flood, args=(srv.host, srv.port, stop, sent),
                                 daemon=True)
        flood.start()
        wait_until(lambda: os.path.isdir(os.path.join(data, "auto20-0")), 30,
                   "the auto-creation to be under way")
        wait_until(lambda: sent[0] > 100, 30, "the flood to be under way")
        assert srv.alive()
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        rc = srv.proc.wait(60)  # type: ignore[union-attr]
        took = time.monotonic() - t0
        stop.set()
        flood.join(10)
    for s in socks:
        s.close()
    log = "".join(srv.lines)
    assert rc == 0, log[-3000:]
    assert took < BOUND_S + CLOSE_S, f"exit took {took:.1f} s\n{log[-3000:]}"
    assert "data directory closed cleanly" in log
    assert " ERROR " not in log and "Traceback" not in log, log[-3000:]
    assert "auto9999-0" not in os.listdir(data)  # the request was cut short, not waited for
    b = logmq.open(data)
    try:
        assert b.logs.opened_clean  # no recovery needed
        assert all(b.partition_log(t, 0).recovered_bytes_truncated == 0
                   for t in ("filled", "auto0"))
        assert b.partition_log("filled", 0).next_offset == 64
        b.create_topic("after")  # and it is writable as before
        b.producer().send("after", b"v").result(timeout=10)
    finally:
        b.close()
