"""Streams by key: expected versions, indexed reads, metadata, soft delete, the index following
the log (plain producers, raw batches as the Kafka endpoint appends them), recovery."""

from __future__ import annotations

import os
import shutil
import threading

import pytest

import logmq
from logmq.codec.batch import parse_header
from logmq.codec.records import encode_batch
from logmq.errors import (
    ConcurrencyError,
    ConfigError,
    StreamDeletedError,
    WrongExpectedVersionError,
)
from logmq.streams import ANY, NO_STREAM, STREAM_EXISTS, VERSION_HEADER


def versions(evs):
    return [(e.version, e.value) for e in evs]


def test_expected_versions(log):
    s = log.streams
    r = log.append_to_stream("acc", "a", [b"e0", b"e1"], expected_version=NO_STREAM)
    assert (r.first_offset, r.last_offset, r.version) == (0, 1, 1)
    with pytest.raises(WrongExpectedVersionError) as ei:
        log.append_to_stream("acc", "a", [b"x"], expected_version=NO_STREAM)
    assert ei.value.actual_version == 1 and isinstance(ei.value, ConcurrencyError)
    with pytest.raises(WrongExpectedVersionError) as ei:
        s.send("acc", b"x", key="a", expected_version=0)
    assert ei.value.actual_version == 1
    with pytest.raises(WrongExpectedVersionError):
        s.send("acc", b"x", key="new", expected_version=STREAM_EXISTS)
    assert s.send("acc", b"e2", key="a", expected_version=1).version == 2
    assert s.send("acc", b"e3", key="a", expected_version=ANY).version == 3
    assert s.send("acc", b"e4", key="a", expected_version=STREAM_EXISTS).version == 4
    for bad in (-2, "anything", 1.5, True):
        with pytest.raises(ConfigError):
            s.send("acc", b"x", key="a", expected_version=bad)
    with pytest.raises(ConfigError):
        log.append_to_stream("acc", "a", [])
    assert versions(log.read_stream("acc", "a")) == [(i, b"e%d" % i) for i in range(5)]
    assert s.version("acc", "a") == 4 and s.version("acc", "nobody") == -1


def test_versions_are_headers_kafka_clients_see(log):
    log.append_to_stream("t", "k", [b"a", (b"b", [("h", b"1")])])
    recs = log.consumer("t", auto_offset_reset="earliest").poll(timeout=1)
    assert [dict(r.headers)[VERSION_HEADER] for r in recs] == [b"0", b"1"]
    assert dict(recs[1].headers)["h"] == b"1"


def test_read_ranges_backwards_and_limits(log):
    for i in range(10):
        log.append_to_stream("t", "k", [b"%d" % i])
        log.append_to_stream("t", "other", [b"o"])
    assert [e.version for e in log.read_stream("t", "k", 7)] == [7, 8, 9]
    assert [e.version for e in log.read_stream("t", "k", 2, limit=3)] == [2, 3, 4]
    assert [e.version for e in log.read_stream("t", "k", backwards=True, limit=3)] == [9, 8, 7]
    assert [e.version for e in log.read_stream("t", "k", 4, backwards=True)] == [4, 3, 2, 1, 0]
    assert [e.version for e in log.streams.read_range("t", "k", 3, 5)] == [3, 4, 5]
    assert all(e.key == b"k" for e in log.read_stream("t", "k"))
    assert log.read_stream("t", "k", limit=0) == []
    assert log.read_stream("t", "missing") == []
    m = log.streams.metadata("t", "k")
    assert (m.version, m.event_count, m.first_offset, m.last_offset) == (9, 10, 0, 18)


def test_index_follows_plain_producers_and_raw_batches(log):
    log.append_to_stream("t", "k", [b"s0"])
    with log.producer() as p:
        p.send("t", b"p1", key=b"k").result()
        p.send("t", b"x", key=b"unrelated").result()
    # what the Kafka endpoint does with a Produce request: a validated batch, as sent
    log.append_batches(("t", 0), encode_batch([(b"k", b"w2"), (b"k", b"w3")]))
    assert versions(log.read_stream("t", "k")) == [(0, b"s0"), (1, b"p1"), (2, b"w2"),
                                                   (3, b"w3")]
    with pytest.raises(WrongExpectedVersionError) as ei:
        log.append_to_stream("t", "k", [b"late"], expected_version=0)
    assert ei.value.actual_version == 3
    assert log.append_to_stream("t", "k", [b"s4"], expected_version=3).version == 4


def test_appends_of_other_keys_are_retried_not_conflicts(log):
    """The partition moving because of another key is not a conflict on this key."""
    log.create_topic("t", partitions=1)
    errors: list[BaseException] = []
    n = 60

    def writer(key: str) -> None:
        try:
            for i in range(n):
                log.append_to_stream("t", key, [b"%d" % i], expected_version=i - 1)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def plain() -> None:
        with log.producer(linger_ms=0) as p:
            for i in range(n):
                p.send("t", b"p", key=b"plain-%d" % i).result()

    ts = [threading.Thread(target=writer, args=(f"k{i}",)) for i in range(4)]
    ts.append(threading.Thread(target=plain))
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert errors == []
    for i in range(4):
        assert [e.version for e in log.read_stream("t", f"k{i}")] == list(range(n))


def test_competing_writers_on_one_stream(log):
    """Read-decide-append from 4 threads: exactly one wins each version, no lost update."""
    wins: list[int] = []
    conflicts = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(40):
            v = log.streams.version("t", "hot")
            try:
                r = log.streams.send("t", b"x", key="hot", expected_version=v)
            except WrongExpectedVersionError as e:
                assert e.actual_version > v
                with lock:
                    conflicts.append(e)
                continue
            with lock:
                wins.append(r.version)

    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert sorted(wins) == list(range(len(wins)))
    assert log.streams.version("t", "hot") == len(wins) - 1
    assert len(wins) + len(conflicts) == 160


def test_multi_partition_placement_matches_the_producer(log):
    log.create_topic("m", partitions=4)
    with log.producer() as p:
        for i in range(20):
            p.send("m", b"p%d" % i, key=b"key-%d" % (i % 5)).result()
    for j in range(5):
        evs = log.read_stream("m", f"key-{j}")
        assert [e.value for e in evs] == [b"p%d" % i for i in range(20) if i % 5 == j]
        assert {e.partition for e in evs} == {log.streams.partition_for("m", f"key-{j}")}


def test_atomic_multi_stream_append(log):
    s = log.streams
    s.append_to_stream("t", "a", [b"a0"])
    with pytest.raises(WrongExpectedVersionError):
        s.append_multi("t", 0, [(b"b", [(b"b0", [])], NO_STREAM), (b"a", [(b"a1", [])], 5)])
    assert s.version("t", "b") == -1  # nothing of the refused batch was appended
    res = s.append_multi("t", 0, [(b"b", [(b"b0", [])], NO_STREAM), (b"a", [(b"a1", [])], 0)],
                         tracking=("upstream", 7))
    assert [(r.first_offset, r.version) for r in res] == [(1, 0), (2, 1)]
    assert s.tracking("t", "upstream") == 7
    with pytest.raises(WrongExpectedVersionError):
        s.append_multi("t", 0, [(b"c", [(b"c0", [])], ANY)], tracking=("upstream", 7))


def test_truncate_before_and_tombstone(log):
    s = log.streams
    log.append_to_stream("t", "k", [b"0", b"1", b"2", b"3"])
    s.truncate_before("t", "k", 2)
    assert [e.version for e in log.read_stream("t", "k")] == [2, 3]
    assert [e.version for e in log.read_stream("t", "k", backwards=True)] == [3, 2]
    assert s.metadata("t", "k").truncate_before == 2
    assert log.append_to_stream("t", "k", [b"4"], expected_version=3).version == 4
    s.tombstone("t", "k")
    assert log.read_stream("t", "k") == []
    assert s.metadata("t", "k").tombstoned
    with pytest.raises(StreamDeletedError):
        log.append_to_stream("t", "k", [b"5"])
    with pytest.raises(ConfigError):
        s.truncate_before("t", "other", -1)
    # the tombstone is a Kafka delete marker (null value) for compaction
    recs = log.consumer("t", auto_offset_reset="earliest").poll(timeout=1)
    assert recs[-1].value is None and recs[-1].key == b"k"


def test_retention_never_returns_missing_records(log):
    for i in range(6):
        log.append_to_stream("t", "k", [b"%d" % i])
        log.append_to_stream("t", "o", [b"o"])
    log.delete_records(("t", 0), 5)  # offsets 0..4 are gone: k's versions 0, 1, 2
    assert [e.version for e in log.read_stream("t", "k")] == [3, 4, 5]
    assert [e.version for e in log.read_stream("t", "k", backwards=True)] == [5, 4, 3]
    assert log.append_to_stream("t", "k", [b"6"], expected_version=5).version == 6


def test_index_survives_reopen_and_is_rebuilt_when_lost(data_dir):
    with logmq.open(data_dir) as log:
        for i in range(5):
            log.append_to_stream("t", "k", [b"%d" % i, b"x"])
        log.streams.truncate_before("t", "k", 3)
    with logmq.open(data_dir) as log:
        assert [e.version for e in log.read_stream("t", "k")] == [3, 4, 5, 6, 7, 8, 9]
    shutil.rmtree(os.path.join(data_dir, "stream-index"))
    with logmq.open(data_dir) as log:  # rebuilt from the log, versions from the headers
        assert [e.version for e in log.read_stream("t", "k")] == [3, 4, 5, 6, 7, 8, 9]
        assert log.streams.metadata("t", "k").truncate_before == 3
        assert log.append_to_stream("t", "k", [b"10"], expected_version=9).version == 10


def test_log_losing_its_tail_rebuilds_the_partition_index(data_dir):
    with logmq.open(data_dir) as log:
        log.append_to_stream("t", "k", [b"0", b"1"])
        log.append_to_stream("t", "k", [b"2", b"3"])
        assert log.streams.version("t", "k") == 3
        # as after a power cut with fsync=never: the log's tail is gone, the index is not
        log.partition_log("t", 0).truncate_to(2)
    with logmq.open(data_dir) as log:
        with log.producer() as p:  # and new records of another key took the lost offsets
            p.send("t", b"z0", key=b"z").result()
            p.send("t", b"z1", key=b"z").result()
        assert versions(log.read_stream("t", "k")) == [(0, b"0"), (1, b"1")]
        assert [e.offset for e in log.read_stream("t", "z")] == [2, 3]
        assert log.append_to_stream("t", "k", [b"2'"], expected_version=1).version == 2


def test_truncation_of_an_open_log_is_noticed(log):
    for i in range(3):
        log.append_to_stream("t", "k", [b"%d" % i])
    log.partition_log("t", 0).truncate_to(1)
    assert versions(log.read_stream("t", "k")) == [(0, b"0")]


def test_deleted_and_recreated_topic_starts_empty(log):
    log.append_to_stream("t", "k", [b"a", b"b"])
    log.delete_topic("t")
    log.create_topic("t", partitions=1)
    assert log.read_stream("t", "k") == []
    assert log.append_to_stream("t", "k", [b"c"], expected_version=NO_STREAM).version == 0


def test_group_commit_fails_only_the_conflicting_request(log):
    """Queued appends of several callers go out as one batch; a failed check fails only its
    own request (what the partition lock holder does for the callers waiting on it)."""
    from logmq.streams.store import _Request

    s = log.streams
    log.append_to_stream("t", "a", [b"a0"])
    plog = log.partition_log("t", 0)
    st = s.index.part("t", 0)
    reqs = [_Request([(b"a", [(b"a1", [])], 0)], None, None),
            _Request([(b"b", [(b"b0", [])], 3)], None, None),  # b is at -1: conflict
            _Request([(b"a", [(b"a2", [])], 1)], None, None),  # sees a1 of the same group
            _Request([(b"c", [(b"c0", []), (b"c1", [])], NO_STREAM)], None, None)]
    with st.lock:
        s._commit_group("t", 0, plog, st, reqs)
    assert all(r.done for r in reqs)
    assert isinstance(reqs[1].error, WrongExpectedVersionError)
    assert reqs[1].error.actual_version == -1
    assert [r.result[0][2:] for r in (reqs[0], reqs[2], reqs[3])] == [(1, 1, 1), (2, 2, 2),
                                                                       (3, 4, 1)]
    h = parse_header(log.read_batches(("t", 0), 1, 1))
    assert (h.base_offset, h.last_offset) == (1, 4)  # one batch for the three requests
    assert versions(log.read_stream("t", "a")) == [(0, b"a0"), (1, b"a1"), (2, b"a2")]
    assert versions(log.read_stream("t", "c")) == [(0, b"c0"), (1, b"c1")]


def test_indexed_positions_are_exact_across_segment_rolls(log):
    """read_stream goes straight to the stored batch position (no offset-index lookup)."""
    from logmq.streams.store import _read_batch_at

    log.create_topic("t", partitions=1, config={"segment.bytes": 2048})
    for i in range(60):
        log.append_to_stream("t", f"k{i % 3}", [b"x" * 40, b"y" * 40])
        if i % 7 == 0:
            with log.producer() as p:
                p.send("t", b"plain", key=b"k0").result()
    plog = log.partition_log("t", 0)
    segs = plog.segments
    assert len(segs) > 3
    bases = [s.base_offset for s in segs]
    for k in ("k0", "k1", "k2"):
        for _v, off, seg_base, pos in log.streams.index.versions("t", 0, k.encode(), 0, None,
                                                                  False, None):
            assert _read_batch_at(segs, bases, seg_base, pos, off) is not None, (k, off)


def test_reads_of_an_unknown_topic_create_nothing(log):
    assert log.read_stream("nowhere", "k") == []
    assert log.streams.version("nowhere", "k") == -1
    assert "nowhere" not in log.list_topics()
