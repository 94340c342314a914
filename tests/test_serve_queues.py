"""``logmq serve --queue-listen``: Kafka clients produce, worker processes share the records.

The serving process owns the data directory, so it is where RemoteQueue members connect;
these tests run the real server as a subprocess and a real Kafka client against it.
"""

from __future__ import annotations

import os
import re
import sys
import threading

import confluent_kafka
import pytest

import logmq
from logmq.errors import AuthenticationError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_util import ServerProcess  # noqa: E402


def _queue_address(server: ServerProcess) -> tuple[str, int]:
    for line in server.lines:
        m = re.search(r"queue members \(RemoteQueue\) at ([\d.]+):(\d+)", line)
        if m:
            return m.group(1), int(m.group(2))
    raise AssertionError("no queue address in the server log:\n" + "".join(server.lines))


def test_kafka_produced_records_are_shared_by_remote_workers_and_acks_survive_restart(data_dir):
    with ServerProcess(data_dir, "--queue-listen", "127.0.0.1:0") as server:
        keyfile = os.path.join(data_dir, "queue.authkey")
        assert os.stat(keyfile).st_mode & 0o777 == 0o600
        key = bytes.fromhex(open(keyfile).read())
        p = confluent_kafka.Producer({"bootstrap.servers": server.bootstrap, "acks": "all"})
        for i in range(50):
            p.produce("jobs", b"job-%d" % i, key=b"k%d" % (i % 7))
        assert p.flush(30) == 0
        addr = _queue_address(server)
        a = logmq.RemoteQueue(addr, "jobs", group="workers", authkey=key)
        b = logmq.RemoteQueue(addr, "jobs", group="workers", authkey=key)
        seen: list[bytes] = []
        while len(seen) < 40:
            for q in (a, b):
                recs = q.receive(min(7, 40 - len(seen)), timeout=5) if len(seen) < 40 else []
                seen += [r.value for r in recs]
                q.ack_many(recs)
        held = a.receive(100, timeout=5)  # the last 10, never acked
        assert len(held) == 10 and len(set(seen)) == 40
        with pytest.raises(AuthenticationError):  # a wrong key is refused before anything is read
            logmq.RemoteQueue(addr, "jobs", group="workers", authkey=b"\x00" * 32)
        b.close()
        assert server.stop() == 0  # SIGTERM: members leave, held records are released
        a.close()
    with logmq.open(data_dir) as log:
        q = log.queue("jobs", group="workers")
        rest = q.receive(100, timeout=1)
        assert sorted(r.value for r in rest) == sorted(r.value for r in held)
        assert all(r.delivery_count == 2 for r in rest)
        assert {r.value for r in rest}.isdisjoint(seen)  # acked ones never come back


def test_garbage_and_wrong_keys_do_not_stop_the_queue_server(log):
    import socket

    from logmq.broker.queues.remote import QueueServer

    log.create_topic("jobs")
    log.producer().send("jobs", b"x").result()
    with QueueServer(log) as server:
        for junk in (b"\xff" * 64, b"\x00\x00\x00\x05hello", b""):
            with socket.create_connection(server.address) as s:
                s.settimeout(10)
                try:  # the server sends its challenge, then hangs up (maybe with a reset)
                    s.sendall(junk)
                    s.shutdown(socket.SHUT_WR)
                    while s.recv(4096):
                        pass
                except (ConnectionResetError, BrokenPipeError, OSError) as e:
                    assert not isinstance(e, TimeoutError), "the server kept the connection"
        with pytest.raises(AuthenticationError):
            logmq.RemoteQueue(server.address, "jobs", authkey=b"wrong key, wrong key")
        got: list = []

        def member() -> None:  # in a thread: a dead accept loop would leave it waiting
            q = logmq.RemoteQueue(server.address, "jobs", authkey=server.authkey)
            got.extend(r.value for r in q.receive(1, timeout=5))
            q.close()

        t = threading.Thread(target=member, daemon=True)
        t.start()
        t.join(30)
        assert got == [b"x"]
