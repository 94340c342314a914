"""Opening a data directory: lost or corrupt metadata, failed opens, bad paths, limits.

Each test stands for a defect of issue 11 that was reproducible on main: topics vanishing
with meta/data.mdb (and the next auto-create deleting their data), a failed open leaking
its LMDB environment (so a repair=True retry failed), untyped errors for a file path or a
corrupt LMDB, ``partitions=True``, names with a trailing newline, negative timestamps.
"""

from __future__ import annotations

import logging
import os
import shutil

import pytest

import logmq
from logmq.codec.records import encode_batch
from logmq.errors import (
    ConfigError,
    CorruptRecordError,
    DataDirError,
    InvalidTimestampError,
    InvalidTopicError,
    PartitionLimitError,
)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _values(log: logmq.Broker, topic: str) -> list[bytes]:
    c = log.consumer(topic, auto_offset_reset="earliest")
    out: list[bytes] = []
    want = sum(log.end_offset((topic, p)) for p in range(log.partitions_for(topic)))
    for _ in range(100):
        out += [r.value for r in c.poll(timeout=0.05)]
        if len(out) >= want:
            break
    c.close()
    return sorted(out)


def _dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs
               if f.endswith(".log"))


def test_lost_metadata_rebuilds_topics_from_their_directories(data_dir, caplog):
    with logmq.open(data_dir, cleaner=False) as log:
        log.create_topic("orders", partitions=3, config={"retention.ms": 12345})
        with log.producer(idempotent=True) as p:
            for i in range(30):
                p.send("orders", b"o%02d" % i, partition=i % 3)
            old_pid = p.producer_id
    before = _dir_bytes(data_dir)
    os.unlink(os.path.join(data_dir, "meta", "data.mdb"))
    with caplog.at_level(logging.WARNING, logger="logmq.storage"):
        log = logmq.open(data_dir, cleaner=False)
    try:
        warned = [r.getMessage() for r in caplog.records if "no metadata" in r.getMessage()]
        assert len(warned) == 1 and "'orders'" in warned[0] and "default configs" in warned[0]
        assert log.list_topics() == ["orders"]
        assert log.partitions_for("orders") == 3
        assert log.topic_config("orders")["retention.ms"] == 7 * 24 * 3600 * 1000
        assert _values(log, "orders") == sorted(b"o%02d" % i for i in range(30))
        # producing to the same name appends to the old data instead of replacing it
        with log.producer(idempotent=True) as p:
            p.send("orders", b"new", partition=0).result(timeout=10)
            # a new producer id: the partitions still remember the old one's sequences
            assert p.producer_id > old_pid
        assert _dir_bytes(data_dir) > before
        assert len(_values(log, "orders")) == 31
    finally:
        log.close()


def test_interrupted_topic_deletion_does_not_resurrect_the_topic(data_dir):
    with logmq.open(data_dir, cleaner=False) as log:
        log.create_topic("gone", partitions=2)
        log.create_topic("kept", partitions=1)
        with log.producer() as p:
            p.send("gone", b"x", partition=1)
        log.delete_topic("gone")
        assert not any(n.startswith("gone") for n in os.listdir(data_dir))
    # a crash between the metadata delete and the rmtree leaves a renamed directory
    os.makedirs(os.path.join(data_dir, "gone-0.0123abcd-delete"))
    with logmq.open(data_dir, cleaner=False) as log:
        assert log.list_topics() == ["kept"]
    assert not any(n.startswith("gone") for n in os.listdir(data_dir))


def test_create_topic_never_deletes_records_it_did_not_write(data_dir):
    with logmq.open(data_dir, cleaner=False) as log:
        # records appear for a topic the metadata does not know (copied in while open)
        stray = os.path.join(data_dir, "ghost-0")
        os.makedirs(stray)
        with open(os.path.join(stray, "00000000000000000000.log"), "wb") as f:
            f.write(encode_batch([(None, b"precious")]))
        size = os.path.getsize(os.path.join(stray, "00000000000000000000.log"))
        with pytest.raises(DataDirError, match="already holds records"):
            log.create_topic("ghost", partitions=1)
        with pytest.raises(DataDirError), log.producer() as p:  # auto-create: same refusal
            p.send("ghost", b"x").result(timeout=10)
        assert os.path.getsize(os.path.join(stray, "00000000000000000000.log")) == size
        assert "ghost" not in log.list_topics()
        # an empty leftover directory (crash before the commit) is fine to reuse
        os.makedirs(os.path.join(data_dir, "fresh-0"))
        log.create_topic("fresh", partitions=1)
    with logmq.open(data_dir, cleaner=False) as log:  # and the next open adopts the records
        assert "ghost" in log.list_topics() and _values(log, "ghost") == [b"precious"]


def test_failed_open_releases_everything_so_repair_works_in_the_same_process(data_dir):
    with logmq.open(data_dir, cleaner=False) as log:
        log.create_topic("t", partitions=1)
        with log.producer() as p:
            for i in range(20):
                p.send("t", b"v%d" % i).result(timeout=10)  # one batch each
    seg = os.path.join(data_dir, "t-0", "00000000000000000000.log")
    with open(seg, "r+b") as f:  # damage the 11th batch's length: the segment no longer parses
        pos = 0
        for _ in range(10):
            f.seek(pos + 8)
            pos += 12 + int.from_bytes(f.read(4), "big")
        f.seek(pos + 8)
        f.write(b"\x7f")
    fds = _fds()
    for _ in range(3):
        with pytest.raises(CorruptRecordError):
            logmq.open(data_dir, cleaner=False)
    assert _fds() == fds, "a failed open leaked descriptors"
    with logmq.open(data_dir, cleaner=False, repair=True) as log:
        assert log.end_offset(("t", 0)) == 10


def test_paths_and_metadata_that_cannot_be_opened_are_typed_errors(tmp_path):
    f = tmp_path / "file"
    f.write_bytes(b"not a directory")
    with pytest.raises(DataDirError, match="not a directory"):
        logmq.open(str(f))
    with pytest.raises(DataDirError):
        logmq.open(str(f / "below"))
    d = str(tmp_path / "data")
    logmq.open(d, cleaner=False).close()
    with open(os.path.join(d, "meta", "data.mdb"), "r+b") as fh:
        fh.write(b"\x13" * 4096)
    fds = _fds()
    with pytest.raises(DataDirError, match="metadata store"):
        logmq.open(d, cleaner=False)
    assert _fds() == fds
    shutil.rmtree(os.path.join(d, "meta"))
    logmq.open(d, cleaner=False).close()  # the lock was released; a fresh store opens


def test_bad_arguments_are_refused(log):
    with pytest.raises(ConfigError):
        log.create_topic("t", partitions=True)
    for name in ("md\n", "a\nb", "x" * 250):
        with pytest.raises(InvalidTopicError):
            log.create_topic(name)
    with log.producer() as p:
        with pytest.raises(InvalidTimestampError):
            p.send("t", b"v", timestamp=-5)
        with pytest.raises(InvalidTimestampError):
            p.send_batch("t", [(None, b"v")], timestamp=-5)
    with pytest.raises(InvalidTimestampError):  # raw batches are checked by the storage layer
        log.append_batches(("t", 0), encode_batch([(None, b"v")], timestamp=-5))
    assert "md\n" not in log.list_topics()


def test_partition_caps_are_checked_before_the_topic_is_committed(data_dir):
    with logmq.open(data_dir, cleaner=False, max_partitions=6,
                    max_partitions_per_topic=4) as log:
        with pytest.raises(PartitionLimitError, match="max_partitions_per_topic"):
            log.create_topic("big", partitions=5)
        log.create_topic("a", partitions=4)
        with pytest.raises(PartitionLimitError, match="max_partitions"):
            log.create_topic("b", partitions=3)
        log.create_topic("b", partitions=2)
        with pytest.raises(PartitionLimitError):
            log.create_partitions("b", 3)
        assert log.list_topics() == ["a", "b"] and log.partitions_for("b") == 2
        assert not any(n.startswith("big") for n in os.listdir(data_dir))
    with logmq.open(data_dir, cleaner=False) as log:
        assert log.list_topics() == ["a", "b"]
