"""One injected clock drives storage, the cleaner and the queue engine: no sleeping for time."""

from __future__ import annotations

import logmq
from logmq.clock import SYSTEM_CLOCK, ManualClock


def test_system_clock_is_the_builtin():
    import time

    assert SYSTEM_CLOCK.time is time.time and SYSTEM_CLOCK.monotonic is time.monotonic


def test_delayed_and_retried_records_follow_the_manual_clock(tmp_path):
    clock = ManualClock()
    with logmq.open(tmp_path, cleaner=False, clock=clock) as log:
        log.create_topic("jobs")
        p = log.producer(linger_ms=0)
        sent = p.send("jobs", b"later", delay_ms=60_000).result()
        assert sent.timestamp == int(clock.time() * 1000)  # producer stamps with the clock
        q = log.queue("jobs", group="g", backoff_base_ms=0)
        assert q.receive(1, timeout=0.05) == []  # due in a minute of *this* clock
        clock.advance(61)
        (r,) = q.receive(1, timeout=5)
        assert r.value == b"later"
        r.nack(delay=3600)
        assert q.receive(1, timeout=0.05) == []
        clock.advance(3601)
        (again,) = q.receive(1, timeout=5)
        assert again.value == b"later" and again.delivery_count == 2
        again.ack()


def test_cleaner_and_topic_metadata_use_the_clock(tmp_path):
    clock = ManualClock(start=2_000_000_000.0)
    with logmq.open(tmp_path, clock=clock, cleaner_check_interval_ms=3_600_000) as log:
        log.create_topic("t", config={"retention.ms": 10_000, "segment.bytes": 1024})
        p = log.producer(linger_ms=0)
        for i in range(60):
            p.send("t", b"x" * 100, key=b"%d" % i).result()
        p.flush()
        segs = log.describe_topic("t").partitions[0].segments
        assert segs > 2
        cleaner = log.cleaner  # the facade's, wired with the same clock
        assert cleaner is not None
        assert cleaner.run_once()["segments_deleted"] == 0  # nothing is 10 s old yet
        clock.advance(11)
        assert cleaner.run_once()["segments_deleted"] == segs - 1  # all but the active one
        assert log.logs.meta.topics()["t"]["created_ms"] == 2_000_000_000_000
