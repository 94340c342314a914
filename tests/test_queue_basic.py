"""Share groups: receive under a lock, ack / nack / reject / renew, many members, stats."""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time

import pytest

import logmq
from logmq.errors import ConfigError, RecordStateError


def fill(log, topic: str, n: int, partitions: int = 1) -> None:
    log.create_topic(topic, partitions=partitions)
    log.producer().send_batch(topic, [(b"k%d" % i, b"%d" % i) for i in range(n)])


def test_receive_ack_nack_renew_and_acks_are_durable(data_dir):
    with logmq.open(data_dir) as log:
        fill(log, "jobs", 10)
        q = log.queue("jobs", group="w", lock_ms=10_000, backoff_base_ms=0)
        recs = q.receive(4, timeout=1)
        assert [r.value for r in recs] == [b"0", b"1", b"2", b"3"]
        assert all(r.delivery_count == 1 for r in recs)
        assert q.stats().in_flight == 4
        recs[0].ack()
        q.ack(recs[1], recs[2])
        old = recs[3].lock_deadline_ms
        assert recs[3].renew(60_000) > old
        recs[3].nack(delay=0)  # back at once: the oldest available record again
        again = q.receive(1, timeout=1)
        assert again[0].offset == 3 and again[0].delivery_count == 2
        with pytest.raises(RecordStateError):
            recs[3].ack()  # that acquisition is over; the new one is `again[0]`
        with pytest.raises(RecordStateError):
            recs[0].ack()  # already acknowledged
        q.close()  # again[0] is released: available at once
    with logmq.open(data_dir) as log:  # acked records are never delivered again
        q = log.queue("jobs", group="w")
        got = q.receive(100, timeout=1)
        assert [r.offset for r in got] == list(range(3, 10))
        assert got[0].delivery_count == 3  # counts survive a restart
        q.ack_many(got)
        assert q.stats().depth == 0


def test_lock_expiry_makes_the_record_available_again(log):
    fill(log, "jobs", 1)
    slow = log.queue("jobs", group="w", lock_ms=300, backoff_base_ms=0)
    fast = log.queue("jobs", group="w", lock_ms=300, backoff_base_ms=0)
    first = slow.receive(1, timeout=1)[0]
    t0 = time.monotonic()
    assert fast.receive(1, timeout=0) == []  # locked by `slow`
    again = fast.receive(1, timeout=5)  # woken by the lock deadline, not by polling
    waited = time.monotonic() - t0
    assert again and again[0].offset == first.offset and again[0].delivery_count == 2
    assert 0.25 <= waited < 1.5
    with pytest.raises(RecordStateError):
        first.ack()  # too late: the lock is gone
    again[0].ack()


def test_ack_after_deadline_fails_even_if_nobody_noticed(log):
    fill(log, "jobs", 1)
    q = log.queue("jobs", group="w", lock_ms=50, backoff_base_ms=0)
    rec = q.receive(1, timeout=1)[0]
    other = log.queue("jobs", group="w")
    assert other.receive(1, timeout=5)  # blocks until the lock expired
    with pytest.raises(RecordStateError):
        rec.ack()


def test_members_in_threads_share_records_each_acked_once(log):
    n = 4000
    fill(log, "jobs", n, partitions=3)
    acked: list[bytes] = []
    deliveries: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def member(seed: int) -> None:
        rng = random.Random(seed)
        q = log.queue("jobs", group="workers", backoff_base_ms=0)
        try:
            while True:
                recs = q.receive(rng.randint(1, 50), timeout=0.5)
                if not recs:
                    return
                keep = [r for r in recs if rng.random() < 0.9 or r.delivery_count > 2]
                for r in recs:
                    if r not in keep:
                        r.nack(delay=0)
                q.ack_many(keep)
                with lock:
                    acked.extend(r.value for r in keep)
                    deliveries.extend(r.delivery_count for r in recs)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            q.close()

    threads = [threading.Thread(target=member, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(int(v) for v in acked) == list(range(n))  # each acked exactly once
    assert max(deliveries) >= 2
    # a consumer group reads the same log by offset, untouched by the share group
    c = log.consumer("jobs", group="audit", auto_offset_reset="earliest")
    seen = []
    while len(seen) < n:
        got = c.poll(timeout=5)
        assert got
        seen.extend(got)
    assert sorted(int(r.value) for r in seen) == list(range(n))
    c.close()
    stats = log.queue("jobs", group="workers").stats()
    assert stats.depth == 0 and stats.in_flight == 0 and stats.acked == n


def test_stats_depth_in_flight_oldest_age_and_dlq(log):
    log.create_topic("jobs", partitions=2)
    p = log.producer()
    old = int(time.time() * 1000) - 5000
    p.send_batch("jobs", [(b"k%d" % i, b"x") for i in range(20)], timestamp=old)
    q = log.queue("jobs", group="w", backoff_base_ms=0)
    s = q.stats()
    assert (s.depth, s.in_flight, s.dlq_size) == (20, 0, 0)
    assert s.oldest_unacked_age_ms >= 5000
    recs = q.receive(5, timeout=1)
    recs[0].reject("bad input")
    q.ack(*recs[1:3])
    s = q.stats()
    assert s.depth == 17 and s.in_flight == 2 and s.dlq_size == 1 and s.acked == 2
    assert s.dead_lettered == 1 and s.members == 1


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


FILL_BIG = """
import sys, logmq
with logmq.open(sys.argv[1]) as log:
    log.create_topic("big", partitions=2)
    log.producer().send_batch("big", [(b"k%d" % (i % 1000), b"v") for i in range(1_000_000)])
"""


def test_window_stays_bounded_with_a_million_pending_records(data_dir, python_exe):
    # written by another process, so this one's memory has never held the backlog
    subprocess.run([python_exe, "-c", FILL_BIG, data_dir], check=True)
    n = 1_000_000
    with logmq.open(data_dir) as log:
        before = rss()
        q = log.queue("big", group="w", max_inflight=500)
        for _ in range(40):
            q.ack_many(q.receive(100, timeout=1))
        grown = rss() - before
        for win, out, span in q._share.window_sizes():
            assert win <= 500 and span <= 500 and out == 0
        # the window plus one decoded batch per partition, not the backlog (~100 MB as tuples)
        assert grown < 40 << 20
        s = q.stats()
        assert s.depth == n - 4000 and s.acked == 4000


def test_config_errors(log):
    log.create_topic("jobs")
    with pytest.raises(ConfigError):
        log.queue("jobs", lock_ms=0)
    with pytest.raises(ConfigError):
        log.queue("jobs", no_such_option=1)
    log.queue("jobs", group="g", max_attempts=3)
    with pytest.raises(ConfigError):  # group settings must agree among members
        log.queue("jobs", group="g", max_attempts=4)
    log.queue("jobs", group="g", max_attempts=3)
