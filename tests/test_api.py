"""The embedded Python API: topics, producer, consumer, errors."""

from __future__ import annotations

import os
import threading

import pytest

import logmq
from logmq.broker.partitioner import key_partition, murmur2
from logmq.errors import (
    BrokerClosedError,
    BufferFullError,
    ConfigError,
    CorruptRecordError,
    DirectoryLockedError,
    InvalidPartitionError,
    InvalidTopicError,
    NoOffsetError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    TopicExistsError,
    UnknownTopicError,
)
from logmq.types import TopicPartition


def drain(consumer, n, timeout=5.0):
    out = []
    while len(out) < n:
        got = consumer.poll(timeout=timeout)
        if not got:
            break
        out.extend(got)
    return out


def test_topic_admin(log):
    d = log.create_topic("orders", partitions=3, config={"retention.ms": 1000})
    assert [p.partition for p in d.partitions] == [0, 1, 2]
    assert d.config["retention.ms"] == 1000 and d.overrides == {"retention.ms": 1000}
    assert log.list_topics() == ["orders"]
    with pytest.raises(TopicExistsError):
        log.create_topic("orders")
    with pytest.raises(InvalidTopicError):
        log.create_topic("bad name")
    with pytest.raises(ConfigError):
        log.create_topic("x", config={"no.such.config": 1})
    with pytest.raises(ConfigError):
        log.create_topic("x", config={"retention.ms": "soon"})
    log.alter_topic_config("orders", {"segment_bytes": 4096})
    assert log.topic_config("orders")["segment.bytes"] == 4096
    assert log.partition_log("orders", 0).config.segment_bytes == 4096
    log.create_partitions("orders", 5)
    assert log.partitions_for("orders") == 5
    log.delete_topic("orders")
    assert log.list_topics() == []
    assert not os.path.exists(os.path.join(log.path, "orders-0"))
    with pytest.raises(UnknownTopicError):
        log.describe_topic("orders")


def test_topics_and_data_survive_reopen(data_dir):
    with logmq.open(data_dir) as lg:
        lg.create_topic("t", partitions=2, config={"cleanup.policy": "compact"})
        lg.producer().send_batch("t", [(b"a", b"1"), (b"b", b"2")])
    with logmq.open(data_dir) as lg:
        assert lg.opened_clean
        assert lg.partitions_for("t") == 2
        assert lg.topic_config("t")["cleanup.policy"] == "compact"
        c = lg.consumer("t", auto_offset_reset="earliest")
        assert sorted(r.value for r in drain(c, 2)) == [b"1", b"2"]


def test_send_roundtrip_keeps_key_value_headers_timestamp(log):
    log.create_topic("t", partitions=1)
    with log.producer() as p:
        futs = [
            p.send("t", b"v0", key=b"k", headers=[("h", b"x"), ("n", None)], timestamp=1234),
            p.send("t", None, key=b"k"),  # tombstone
            p.send("t", b"", key=None),  # empty value, null key
            p.send("t", "text", key="str-key", headers={"a": "b"}),
        ]
        metas = [f.result(timeout=5) for f in futs]
    assert [m.offset for m in metas] == [0, 1, 2, 3]
    assert metas[0].timestamp == 1234
    c = log.consumer("t", auto_offset_reset="earliest")
    recs = drain(c, 4)
    assert [(r.key, r.value) for r in recs] == [
        (b"k", b"v0"), (b"k", None), (None, b""), (b"str-key", b"text")]
    assert recs[0].headers == [("h", b"x"), ("n", None)]
    assert recs[0].timestamp == 1234
    assert recs[3].headers == [("a", b"b")]
    assert recs[0].tp == TopicPartition("t", 0)


def test_key_partitioning_is_xxh3_and_stable(log):
    log.create_topic("t", partitions=8)
    p = log.producer(linger_ms=0)
    for i in range(50):
        key = b"user-%d" % i
        md = p.send("t", b"x", key=key).result()
        assert md.partition == key_partition(key, 8)
    metas = p.send_batch("t", [(b"user-7", b"y")])
    assert metas[0].partition == key_partition(b"user-7", 8)
    # Kafka's murmur2 matches the Java client's known vectors
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    p.close()


def test_null_keys_stick_to_a_partition_per_batch_then_move(log):
    log.create_topic("t", partitions=4)
    p = log.producer(linger_ms=10_000, batch_size=1000)
    parts = [p.send("t", b"x" * 100) for _ in range(30)]
    p.flush()
    used = [f.result().partition for f in parts]
    # records of one batch share a partition; more than one partition used over time
    runs = [used[0]]
    for u in used[1:]:
        if u != runs[-1]:
            runs.append(u)
    assert len(set(used)) > 1
    assert len(runs) == len(set(runs)) or len(runs) <= 4 * 3
    first_batch = [u for u in used[:5]]
    assert len(set(first_batch)) == 1
    p.close()


def test_explicit_and_custom_partitioner(log):
    log.create_topic("t", partitions=3)
    p = log.producer(linger_ms=0, partitioner=lambda key, n: n - 1)
    assert p.send("t", b"x", key=b"a").result().partition == 2
    assert p.send("t", b"x", key=b"a", partition=0).result().partition == 0
    with pytest.raises(InvalidPartitionError):
        p.send("t", b"x", partition=7)
    p.close()


def test_send_batch_is_partitioned_and_ordered(log):
    log.create_topic("t", partitions=4)
    p = log.producer()
    recs = [(b"k%d" % (i % 10), b"%d" % i) for i in range(5000)]
    p.send_batch("t", recs)
    c = log.consumer("t", auto_offset_reset="earliest", max_poll_records=100_000)
    got = drain(c, 5000)
    assert len(got) == 5000
    per_key: dict[bytes, list[int]] = {}
    for r in got:
        per_key.setdefault(r.key, []).append(int(r.value))
        assert r.partition == key_partition(r.key, 4)
    for k, vals in per_key.items():
        assert vals == sorted(vals), k


def test_seek_and_timestamps(log):
    log.create_topic("t", partitions=1)
    p = log.producer(linger_ms=0)
    for i in range(100):
        p.send("t", b"%d" % i, timestamp=1_000_000 + i * 10)
    p.flush()
    c = log.consumer(auto_offset_reset="earliest")
    tp = ("t", 0)
    c.assign([tp])
    c.seek(tp, 42)
    assert drain(c, 1)[0].offset == 42
    found = c.offsets_for_times({tp: 1_000_000 + 555})
    assert found[TopicPartition("t", 0)].offset == 56
    assert found[TopicPartition("t", 0)].timestamp == 1_000_000 + 560
    assert c.offsets_for_times({tp: 2_000_000})[TopicPartition("t", 0)] is None
    c.seek_to_timestamp(1_000_000 + 200)
    assert c.poll(timeout=1, max_records=1)[0].offset == 20
    c.seek_to_end()
    assert c.position(tp) == 100
    assert c.poll(timeout=0) == []
    c.seek_to_beginning()
    assert c.position(tp) == 0
    assert log.offsets(tp) == (0, 100)


def test_poll_waits_for_appends_without_polling(log):
    log.create_topic("t", partitions=1)
    c = log.consumer("t", auto_offset_reset="latest")
    assert c.poll(timeout=0) == []
    ready = threading.Event()

    def produce():
        ready.wait()
        log.producer(linger_ms=0).send("t", b"late").result()

    th = threading.Thread(target=produce)
    th.start()
    ready.set()
    got = c.poll(timeout=30)  # returns as soon as the record is appended
    th.join()
    assert [r.value for r in got] == [b"late"]


def test_offset_reset_policies(log):
    log.create_topic("t", partitions=1)
    p = log.producer(linger_ms=0)
    for i in range(10):
        p.send("t", b"%d" % i)
    p.flush()
    assert log.consumer("t", auto_offset_reset="latest").position(("t", 0)) == 10
    assert log.consumer("t", auto_offset_reset="earliest").position(("t", 0)) == 0
    with pytest.raises(NoOffsetError):
        log.consumer("t", auto_offset_reset="none").position(("t", 0))
    log.delete_records(("t", 0), 5)
    c = log.consumer("t", auto_offset_reset="earliest")
    c.seek(("t", 0), 2)  # below the log start now
    assert drain(c, 5)[0].offset == 5
    strict = log.consumer(auto_offset_reset="none")
    strict.assign([("t", 0)])
    strict.seek(("t", 0), 1)
    with pytest.raises(OffsetOutOfRangeError):
        strict.poll()


def test_raw_batches(log):
    from logmq.codec.records import encode_batch

    log.create_topic("t", partitions=1)
    data = encode_batch([(b"a", b"1"), (b"b", b"2")], timestamp=5) + encode_batch(
        [(None, b"3")], timestamp=6)
    assert log.append_batches(("t", 0), data) == 0
    assert log.append_batches(("t", 0), data) == 3
    raw = log.read_batches(("t", 0), 4, max_bytes=1 << 20)
    from logmq.codec.records import iter_records

    assert [r[0] for r in iter_records(raw)] == [3, 4, 5]
    bad = bytearray(data)
    bad[30] ^= 1
    with pytest.raises(CorruptRecordError):
        log.append_batches(("t", 0), bytes(bad))
    with pytest.raises(CorruptRecordError):
        log.append_batches(("t", 0), data[:-1])
    assert log.end_offset(("t", 0)) == 6


def test_errors(data_dir):
    lg = logmq.open(data_dir, auto_create_topics=False)
    with pytest.raises(DirectoryLockedError):
        logmq.open(data_dir)
    with pytest.raises(UnknownTopicError):
        lg.producer().send("nope", b"x")
    lg.create_topic("t", config={"max.message.bytes": 1000})
    with pytest.raises(RecordTooLargeError):
        lg.producer().send("t", b"x" * 5000)
    with pytest.raises(InvalidPartitionError):
        lg.end_offset(("t", 3))
    with pytest.raises(ConfigError):
        lg.producer(no_such_option=1)
    with pytest.raises(TypeError):
        lg.producer().send("t", 123)
    lg.close()
    with pytest.raises(BrokerClosedError):
        lg.create_topic("u")
    # the directory can be opened again once closed
    logmq.open(data_dir).close()


def test_auto_create(data_dir):
    with logmq.open(data_dir, num_partitions=3) as lg:
        lg.producer(linger_ms=0).send("fresh", b"x").result()
        assert lg.partitions_for("fresh") == 3


def test_backpressure_blocks_then_raises(log):
    log.create_topic("t", partitions=1)
    p = log.producer(buffer_memory=2000, batch_size=1000, linger_ms=60_000, max_block_ms=200)
    plog = log.partition_log("t", 0)
    entered = threading.Event()
    original = plog.append

    def slow_append(*a, **kw):
        entered.set()
        return original(*a, **kw)

    plog.append = slow_append
    results = []
    with plog._lock:  # appends cannot complete while the test holds the log's lock
        filler = threading.Thread(target=lambda: results.append(p.send("t", b"x" * 1100)))
        filler.start()  # a full batch: sealed and being appended (blocked) by the filler
        entered.wait()
        with pytest.raises(BufferFullError):
            p.send("t", b"y" * 900)  # 1116 + 916 bytes > buffer_memory
    filler.join()
    assert results[0].result(timeout=5).offset == 0
    p.send("t", b"z" * 900)  # space again
    p.flush()
    assert log.end_offset(("t", 0)) == 2


def test_fsync_policies_are_validated(data_dir):
    with pytest.raises(ConfigError):
        logmq.open(data_dir, fsync="sometimes")
    with logmq.open(data_dir, fsync="always") as lg:
        lg.create_topic("a")
        lg.create_topic("b", config={"fsync": "never"})
        assert lg.partition_log("a", 0).config.fsync == "always"
        assert lg.partition_log("b", 0).config.fsync == "never"


def test_producer_sees_new_partitions_and_recreated_topics(log):
    log.create_topic("t", partitions=1)
    p = log.producer(linger_ms=0)
    assert p.send("t", b"x", key=b"a").result().partition == 0
    log.create_partitions("t", 4)
    parts = {p.send("t", b"x", key=b"k%d" % i).result().partition for i in range(40)}
    assert parts == {0, 1, 2, 3}
    log.delete_topic("t")
    log.create_topic("t", partitions=2, config={"max.message.bytes": 100})
    with pytest.raises(RecordTooLargeError):
        p.send("t", b"x" * 500)
    assert p.send("t", b"ok", partition=1).result().offset == 0
    p.close()


def test_consumer_skips_a_compaction_gap_at_the_end_of_the_log(data_dir):
    with logmq.open(data_dir) as lg:
        lg.create_topic("c", config={"cleanup.policy": "compact", "delete.retention.ms": 0,
                                     "min.cleanable.dirty.ratio": 0.0})
        p = lg.producer(linger_ms=0)
        p.send_batch("c", [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")], timestamp=1)
        p.send_batch("c", [(b"x", None), (b"y", None)], timestamp=1)  # tombstones, expired
        lg.partition_log("c", 0).roll()
        lg.cleaner.run_once(force=True)
        assert lg.end_offset(("c", 0)) == 5
        c = lg.consumer("c", auto_offset_reset="earliest")
        got = c.poll(timeout=1)
        assert [r.offset for r in got] == [0, 1, 2]
        c.poll(timeout=0)
        assert c.position(("c", 0)) == 5  # not stuck at 3
        assert c.lag(("c", 0)) == 0
