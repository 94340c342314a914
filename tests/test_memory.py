"""``logmq.open(":memory:")``: the embedded features on a log that never touches a disk."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT

import logmq
from logmq.broker.cleaner import Cleaner
from logmq.storage import fsutil
from logmq.storage.memory import MemoryDir, memory_root
from logmq.testing import LogMQServer
from logmq.wire_client import WireClient

T0 = 1_000_000_000_000


@pytest.fixture
def mem():
    lg = logmq.open(":memory:")
    yield lg
    lg.close()


def test_lives_in_a_private_memory_directory_removed_on_close():
    log = logmq.open(":memory:")
    path = log.path
    assert log.in_memory and os.path.isdir(path)
    assert os.path.dirname(path) == memory_root()
    if os.path.isdir("/dev/shm"):
        assert path.startswith("/dev/shm/")
    assert os.stat(path).st_mode & 0o777 == 0o700  # nobody else opens it
    log.create_topic("t")
    log.producer().send("t", b"v").result()
    log.close()
    assert not os.path.exists(path)
    assert not fsutil._volatile_roots  # the fsync switch is off again
    log.close()  # idempotent


def test_two_memory_logs_in_one_process_are_independent():
    with logmq.open(":memory:") as a, logmq.open(":memory:") as b:
        assert a.path != b.path
        a.create_topic("t", partitions=2)
        b.create_topic("t", partitions=1)
        a.producer().send("t", b"a", partition=0).result()
        assert a.partitions_for("t") == 2 and b.partitions_for("t") == 1
        assert a.end_offset(("t", 0)) == 1 and b.end_offset(("t", 0)) == 0
        b.delete_topic("t")
        assert a.list_topics() == ["t"] and b.list_topics() == []


def test_produce_consume_and_group_commits(mem):
    mem.create_topic("t", partitions=3)
    p = mem.producer(linger_ms=0)
    p.send_batch("t", [(b"k%d" % i, b"v%d" % i) for i in range(300)])
    p.close()
    c = mem.consumer("t", group="g", auto_offset_reset="earliest")
    got = []
    for _ in range(50):
        got.extend(c.poll(timeout=1))
        if len(got) >= 300:
            break
    assert sorted(r.value for r in got) == sorted(b"v%d" % i for i in range(300))
    c.commit()
    assert sum(c.committed(("t", p)) or 0 for p in range(3)) == 300
    c.close()
    again = mem.consumer("t", group="g", auto_offset_reset="earliest")
    assert again.poll(timeout=0.2) == []  # the group resumes after its commits
    again.close()


def test_queue_ack_nack_and_dead_letters(mem):
    mem.create_topic("jobs")
    mem.producer().send_batch("jobs", [(None, b"%d" % i) for i in range(5)])
    q = mem.queue("jobs", group="w", lock_ms=10_000, backoff_base_ms=0)
    recs = q.receive(5, timeout=1)
    assert [r.value for r in recs] == [b"0", b"1", b"2", b"3", b"4"]
    q.ack(*recs[:3])
    recs[3].nack(delay=0)
    recs[4].reject("bad input")
    again = q.receive(1, timeout=1)
    assert again[0].offset == 3 and again[0].delivery_count == 2
    again[0].ack()
    st = q.stats()
    assert st.in_flight == 0 and st.depth == 0 and st.dlq_size == 1 and st.acked == 4


def test_compaction_keeps_the_latest_value_per_key():
    with logmq.open(":memory:", cleaner=False) as log:
        log.create_topic("c", config={"cleanup.policy": "compact", "segment.bytes": 1024,
                                      "delete.retention.ms": 10**12})
        p = log.producer(linger_ms=0)
        for start in range(0, 400, 10):
            p.send_batch("c", [(b"k%d" % (i % 10), b"v%d" % i) for i in range(start, start + 10)],
                         timestamp=T0)
        p.close()
        log.partition_log("c", 0).roll()
        stats = Cleaner(log, max_bytes_per_sec=None).run_once(now_ms=T0 + 10**7, force=True)
        assert stats["records_removed"] == 390
        c = log.consumer("c", auto_offset_reset="earliest")
        got = []
        while batch := c.poll(timeout=0):
            got.extend(batch)
        assert {r.key: r.value for r in got} == {b"k%d" % k: b"v%d" % (390 + k) for k in range(10)}
        assert len(got) == 10


def test_no_fsync_even_for_fsync_always_but_a_disk_log_still_syncs(tmp_path, monkeypatch):
    calls: list[int] = []
    real_fsync, real_fdatasync = os.fsync, os.fdatasync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append(fd), real_fdatasync(fd))[1])
    with logmq.open(":memory:", cleaner=False) as mem, \
            logmq.open(str(tmp_path / "disk"), cleaner=False) as disk:
        for lg in (mem, disk):
            lg.create_topic("t", config={"fsync": "always"})
        calls.clear()
        mem.producer(linger_ms=0).send("t", b"x").result()
        mem.flush()
        assert calls == []
        disk.producer(linger_ms=0).send("t", b"x").result()
        assert calls, "the disk log's fsync=always must still fsync"


def test_a_directory_left_by_a_killed_process_is_swept(tmp_path):
    root = str(tmp_path)
    script = textwrap.dedent(f"""
        import os, logmq.storage.memory as m
        d = m.MemoryDir(root={root!r})
        open(os.path.join(d.path, ".lock"), "w").close()
        print(d.path, flush=True)
        os._exit(0)  # no finalizer runs: as if killed
    """)
    env = dict(os.environ, PYTHONPATH=ROOT)
    left = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, check=True).stdout.strip()
    assert os.path.isdir(left)
    mine = MemoryDir(root=root)  # a live owner's directory is never swept
    other = MemoryDir(root=root)
    assert not os.path.exists(left)
    assert os.path.isdir(mine.path) and os.path.isdir(other.path)
    mine.remove()
    other.remove()
    assert os.listdir(root) == []


def test_nothing_survives_the_process_without_close():
    script = textwrap.dedent("""
        import logmq
        log = logmq.open(":memory:")
        log.create_topic("t")
        print(log.path, flush=True)
    """)
    env = dict(os.environ, PYTHONPATH=ROOT)
    path = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, check=True, timeout=60).stdout.strip()
    assert path and not os.path.exists(path)


def test_server_on_memory_serves_kafka_clients():
    with LogMQServer(":memory:") as server:
        path = server.broker.path
        client = WireClient(server.bootstrap)
        try:
            client.create_topic("w", partitions=1)
            client.produce("w", 0, [(b"k", b"v")])
            assert server.broker.end_offset(("w", 0)) == 1
        finally:
            client.close()
    assert not os.path.exists(path)
