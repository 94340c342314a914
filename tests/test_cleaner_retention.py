"""Retention by the cleaner: whole closed segments by age and by partition size."""

from __future__ import annotations

import os

import pytest

import logmq
from logmq.broker.cleaner import Cleaner
from logmq.errors import OffsetOutOfRangeError

OLD = 1_000_000_000_000  # ms; explicit producer timestamps, so no test waits for time to pass
NEW = OLD + 10 * 24 * 3600 * 1000
VALUE = b"x" * 100


def _open(tmp_path, **kw) -> logmq.Broker:
    return logmq.open(str(tmp_path / "data"), cleaner=False, **kw)


def _fill(log, topic: str, timestamps: list[int], per_batch: int = 5) -> None:
    """One batch per timestamp; with segment.bytes=1024 each batch ends up in its own segment."""
    p = log.producer(linger_ms=0)
    for i, ts in enumerate(timestamps):
        p.send_batch(topic, [(b"k%d" % (i * per_batch + j), VALUE) for j in range(per_batch)],
                     timestamp=ts)
    p.close()


def _drain(consumer) -> list:
    out = []
    while True:
        got = consumer.poll(timeout=0)
        if not got:
            return out
        out.extend(got)


def test_time_retention_deletes_only_expired_closed_segments(tmp_path):
    log = _open(tmp_path)
    log.create_topic("t", partitions=1, config={
        "cleanup.policy": "delete", "segment.bytes": 1024, "retention.ms": 60_000})
    _fill(log, "t", [OLD + i for i in range(10)] + [NEW] * 3)
    plog = log.partition_log("t", 0)
    assert len(plog.segments) == 13
    c = log.consumer("t", auto_offset_reset="earliest")
    first = c.poll(timeout=0, max_records=1)
    assert [r.offset for r in first] == [0]

    stats = Cleaner(log, max_bytes_per_sec=None).run_once(now_ms=NEW + 1000)

    assert stats["segments_deleted"] == 10
    assert stats["offsets_deleted"] == 50
    assert plog.log_start_offset == 50
    assert [s.base_offset for s in plog.segments] == [50, 55, 60]
    assert log.offsets(("t", 0)) == (50, 65)
    with pytest.raises(OffsetOutOfRangeError):
        plog.read(10, 1000)
    # The consumer's position (1) fell below the log start: earliest reset lands at 50.
    rest = _drain(c)
    assert [r.offset for r in rest] == list(range(50, 65))
    assert not any(n.startswith("00000000000000000000.") for n in os.listdir(plog.directory))
    log.close()
    with logmq.open(str(tmp_path / "data"), cleaner=False) as again:
        assert again.offsets(("t", 0)) == (50, 65)


def test_time_retention_never_deletes_the_active_segment(tmp_path):
    log = _open(tmp_path)
    log.create_topic("t", partitions=1, config={
        "cleanup.policy": "delete", "segment.bytes": 1024, "retention.ms": 1})
    _fill(log, "t", [OLD] * 6)
    plog = log.partition_log("t", 0)
    active = plog.segments[-1]
    Cleaner(log, max_bytes_per_sec=None).run_once(now_ms=NEW)
    assert plog.segments == [active]
    assert plog.log_start_offset == active.base_offset == 25
    c = log.consumer("t", auto_offset_reset="earliest")
    assert [r.offset for r in _drain(c)] == list(range(25, 30))
    log.close()


def test_time_retention_keeps_forever_with_minus_one_and_stops_at_first_young_segment(tmp_path):
    log = _open(tmp_path)
    log.create_topic("t", partitions=1, config={
        "cleanup.policy": "delete", "segment.bytes": 1024, "retention.ms": -1})
    # a young segment in the middle: only the prefix before it may go (log start is one number)
    _fill(log, "t", [OLD, OLD, NEW, OLD, OLD])
    plog = log.partition_log("t", 0)
    cleaner = Cleaner(log, max_bytes_per_sec=None)
    assert cleaner.run_once(now_ms=NEW)["segments_deleted"] == 0
    log.alter_topic_config("t", {"retention.ms": 60_000})
    assert cleaner.run_once(now_ms=NEW)["segments_deleted"] == 2
    assert plog.log_start_offset == 10
    log.close()


def test_size_retention_drops_oldest_until_within_limit(tmp_path):
    log = _open(tmp_path)
    log.create_topic("t", partitions=1, config={
        "cleanup.policy": "delete", "segment.bytes": 1024, "retention.bytes": 2000,
        "retention.ms": -1})
    _fill(log, "t", [NEW + i for i in range(10)])
    plog = log.partition_log("t", 0)
    sizes = [s.size for s in plog.segments]
    expect_gone = 0
    while sum(sizes[expect_gone:]) > 2000 and expect_gone < len(sizes) - 1:
        expect_gone += 1
    assert 0 < expect_gone < 9
    stats = Cleaner(log, max_bytes_per_sec=None).run_once(now_ms=NEW)
    assert stats["segments_deleted"] == expect_gone
    assert sum(s.size for s in plog.segments) <= 2000
    assert plog.log_start_offset == 5 * expect_gone
    c = log.consumer("t", auto_offset_reset="earliest")
    assert _drain(c)[0].offset == 5 * expect_gone
    log.close()


def test_size_retention_zero_leaves_only_the_active_segment(tmp_path):
    log = _open(tmp_path)
    log.create_topic("t", partitions=1, config={
        "cleanup.policy": "delete", "segment.bytes": 1024, "retention.bytes": 0})
    _fill(log, "t", [NEW] * 4)
    plog = log.partition_log("t", 0)
    Cleaner(log, max_bytes_per_sec=None).run_once(now_ms=NEW)
    assert len(plog.segments) == 1 and plog.segments[0].size > 0
    assert plog.log_start_offset == 15
    log.close()


def test_compact_only_topic_is_not_subject_to_retention(tmp_path):
    log = _open(tmp_path)
    log.create_topic("t", partitions=1, config={
        "cleanup.policy": "compact", "segment.bytes": 1024, "retention.ms": 1})
    _fill(log, "t", [OLD] * 4)
    Cleaner(log, max_bytes_per_sec=None).run_once(now_ms=NEW)
    assert log.offsets(("t", 0))[0] == 0
    log.close()


def test_config_change_takes_effect_on_wake_without_restart(tmp_path):
    """The broker's own cleaner thread re-reads topic config at each pass."""
    log = logmq.open(str(tmp_path / "data"), cleaner=True)
    cleaner = log.cleaner
    assert isinstance(cleaner, Cleaner) and cleaner.running
    log.create_topic("t", partitions=1, config={
        "cleanup.policy": "delete", "segment.bytes": 1024, "retention.ms": -1})
    _fill(log, "t", [OLD] * 5)
    done = cleaner.passes
    cleaner.wake()
    assert cleaner.wait_for_passes(done + 1, timeout=30)
    assert log.offsets(("t", 0))[0] == 0
    log.alter_topic_config("t", {"retention.ms": 1000})
    cleaner.wake()
    assert cleaner.wait_for_passes(done + 2, timeout=30)
    assert log.offsets(("t", 0))[0] == 20
    log.close()
    assert not cleaner.running
