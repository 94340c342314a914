"""Compaction: latest record per key, offsets preserved, tombstones, lag, grouping, swap.

The property test compares the cleaned log with a model: a dict of the latest record per key.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import logmq
from logmq.broker.cleaner import CHECKPOINT_FILE, Cleaner, read_cleaner_checkpoint
from logmq.codec.batch import parse_header
from logmq.codec.records import decode_batch
from logmq.storage import compactor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_cleaner_crash import _storage_records  # noqa: E402

T0 = 1_000_000_000_000
NOW = T0 + 10_000_000


def _open(path: str) -> logmq.Broker:
    return logmq.open(path, cleaner=False)


def _topic(log, name: str = "c", **config) -> None:
    cfg = {"cleanup.policy": "compact", "segment.bytes": 1024, "delete.retention.ms": 10**12}
    cfg.update(config)
    log.create_topic(name, partitions=1, config=cfg)


def _read_all(log, topic: str = "c") -> list:
    """Every record from the start, as the consumer sees it (stops when a fetch is empty)."""
    c = log.consumer(topic, auto_offset_reset="earliest")
    out = []
    while True:
        got = c.poll(timeout=0)
        if not got:
            break
        out.extend(got)
    c.close(commit=False)
    offsets = [r.offset for r in out]
    assert offsets == sorted(set(offsets)), "offsets must strictly increase, no duplicates"
    return out


def _fold(records) -> dict:
    """The key -> value state a compacted-topic reader rebuilds (tombstones delete)."""
    state: dict = {}
    for r in records:
        key, value = r[0], r[1]
        if key is None:
            continue
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


def _cleaner(log) -> Cleaner:
    return Cleaner(log, max_bytes_per_sec=None)


def _no_leftovers(directory: str) -> None:
    names = os.listdir(directory)
    assert not [n for n in names if n.endswith(".cleaned") or n == compactor.SWAP_FILE], names


# ---------------------------------------------------------------------- property test
batch_st = st.lists(
    st.tuples(
        st.sampled_from([b"a", b"b", b"c", b"d", b"e", b"f"]),
        st.one_of(st.none(), st.binary(min_size=0, max_size=60)),
    ),
    min_size=1, max_size=6,
)
phase_st = st.lists(st.tuples(batch_st, st.booleans()), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    phases=st.lists(st.tuples(phase_st, st.booleans()), min_size=1, max_size=3),
    retention=st.sampled_from([0, 5_000_000, 10**12]),
    null_key_weight=st.integers(0, 3),
)
def test_compaction_matches_latest_per_key_model(phases, retention, null_key_weight):
    tmp = tempfile.mkdtemp()
    try:
        _run_model(tmp, phases, retention, null_key_weight)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_model(tmp: str, phases, retention: int, null_key_weight: int) -> None:
    log = _open(tmp)
    _topic(log, **{"delete.retention.ms": retention})
    p = log.producer(linger_ms=0)
    cleaner = _cleaner(log)
    plog = log.partition_log("c", 0)
    produced: dict[int, tuple] = {}  # offset -> (key, value, timestamp, headers)
    ts = T0
    for phase, roll in phases:
        for batch, with_headers in phase:
            ts += 1_000_000  # batches span 0..~36 000 s: some tombstones expire, some do not
            recs = []
            for i, (k, v) in enumerate(batch):
                if null_key_weight and (i + len(produced)) % (5 - null_key_weight) == 0:
                    k = None  # null keys: kept in the active segment, dropped once cleaned
                hdrs = [("h", b"%d" % i)] if with_headers else None
                recs.append((k, v, hdrs) if hdrs else (k, v))
            meta = p.send_batch("c", recs, timestamp=ts)
            first = meta[0].offset
            for i, rec in enumerate(recs):
                produced[first + i] = (rec[0], rec[1], ts, rec[2] if len(rec) > 2 else [])
        if roll:
            plog.roll()
        stats = cleaner.run_once(now_ms=NOW, force=True)
        assert not stats["errors"] and not stats["aborted"]
        got = _read_all(log)
        for r in got:  # every surviving record is an unaltered produced record
            k, v, rts, hdrs = produced[r.offset]
            assert (r.key, r.value, r.timestamp, list(r.headers or [])) == (k, v, rts, hdrs or [])
        ordered = [produced[o][:2] for o in sorted(produced)]
        assert _fold([(r.key, r.value) for r in got]) == _fold(ordered)
    # Final pass with everything closed: exactly the latest record per key remains.
    plog.roll()
    cleaner.run_once(now_ms=NOW, force=True)
    latest: dict[bytes, int] = {}
    for off in sorted(produced):
        if produced[off][0] is not None:
            latest[produced[off][0]] = off
    expect = sorted(
        off for off in latest.values()
        if produced[off][1] is not None or produced[off][2] >= NOW - retention
    )
    got = _read_all(log)
    assert [r.offset for r in got] == expect
    assert [s[0] for s in _storage_records(plog)] == expect
    _no_leftovers(plog.directory)
    log.close()
    with _open(tmp) as again:  # the cleaned files and their indexes survive a reopen
        assert [r.offset for r in _read_all(again)] == expect


# ---------------------------------------------------------------------- unit tests
def _produce_keys(log, n: int, keys: int, topic: str = "c", ts: int = T0, **kw) -> dict:
    p = log.producer(linger_ms=0, **kw)
    expect: dict[bytes, tuple[int, bytes]] = {}
    for start in range(0, n, 10):
        recs = [(b"k%03d" % (i % keys), b"v%06d" % i) for i in range(start, min(n, start + 10))]
        first = p.send_batch(topic, recs, timestamp=ts)[0].offset
        for i, (k, v) in enumerate(recs):
            expect[k] = (first + i, v)
    p.close()
    return expect


def test_compaction_keeps_latest_per_key_and_groups_segments(tmp_path):
    log = _open(str(tmp_path / "d"))
    _topic(log)
    expect = _produce_keys(log, 400, 10)
    plog = log.partition_log("c", 0)
    plog.roll()
    before = len(plog.segments)
    log.alter_topic_config("c", {"segment.bytes": 8192})  # groups of several input segments
    stats = _cleaner(log).run_once(now_ms=NOW, force=True)
    assert stats["records_removed"] == 390
    assert stats["segments_cleaned"] == before - 1
    assert stats["bytes_read"] > 0 and stats["bytes_written"] > 0
    got = _read_all(log)
    assert {r.key: (r.offset, r.value) for r in got} == expect
    assert len(got) == 10
    assert len(plog.segments) < before
    # a cleaned group is named by its first base offset
    assert plog.segments[0].base_offset == 0
    assert os.path.exists(os.path.join(plog.directory, "00000000000000000000.log"))
    assert read_cleaner_checkpoint(plog.directory) == plog.segments[-1].base_offset
    _no_leftovers(plog.directory)
    log.close()
    with _open(str(tmp_path / "d")) as again:
        assert {r.key: (r.offset, r.value) for r in _read_all(again)} == expect


def test_active_segment_is_never_compacted(tmp_path):
    log = _open(str(tmp_path / "d"))
    _topic(log, **{"segment.bytes": 10**6})
    _produce_keys(log, 50, 5)  # all in the active segment
    stats = _cleaner(log).run_once(now_ms=NOW, force=True)
    assert stats["records_removed"] == 0
    assert len(_read_all(log)) == 50
    log.close()


def test_tombstones_expire_after_delete_retention_and_null_keys_go(tmp_path):
    log = _open(str(tmp_path / "d"))
    _topic(log, **{"delete.retention.ms": 1000})
    p = log.producer(linger_ms=0)
    p.send_batch("c", [(b"a", b"1"), (b"b", b"1"), (None, b"nokey")], timestamp=T0)
    p.send_batch("c", [(b"a", None)], timestamp=T0 + 100)  # tombstone, "old"
    p.send_batch("c", [(b"b", None)], timestamp=NOW)  # tombstone, young at NOW
    p.close()
    log.partition_log("c", 0).roll()
    _cleaner(log).run_once(now_ms=NOW, force=True)
    got = _read_all(log)
    assert [(r.offset, r.key, r.value) for r in got] == [(4, b"b", None)]
    # later, b's tombstone is old enough to go too
    _cleaner(log).run_once(now_ms=NOW + 5000, force=True)
    assert _read_all(log) == []
    log.close()


def test_thinned_batch_keeps_codec_producer_fields_headers_and_last_offset(tmp_path):
    log = _open(str(tmp_path / "d"))
    _topic(log)
    p = log.producer(linger_ms=0, compression="gzip")
    p.send_batch("c", [(b"a", b"1", [("h", b"x")]), (b"b", b"2"), (b"a", b"3"), (b"c", b"4")],
                 timestamp=T0)
    p.send_batch("c", [(b"c", b"5")], timestamp=T0 + 1)
    p.close()
    plog = log.partition_log("c", 0)
    plog.roll()
    src = parse_header(plog.read_bytes(0, 1 << 20))
    _cleaner(log).run_once(now_ms=NOW, force=True)
    data = plog.read_bytes(0, 1 << 20)
    h, recs = decode_batch(data, 0)
    assert h.compression == src.compression == 1
    assert (h.base_offset, h.last_offset_delta) == (0, 3)  # the batch still spans 0..3
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (
        src.producer_id, src.producer_epoch, src.base_sequence)
    assert [(r[0], r[2], r[3]) for r in recs] == [(1, b"b", b"2"), (2, b"a", b"3")]
    got = _read_all(log)
    assert [(r.offset, r.key, r.value) for r in got] == [(1, b"b", b"2"), (2, b"a", b"3"),
                                                         (4, b"c", b"5")]
    log.close()


def test_headers_survive_compaction(tmp_path):
    log = _open(str(tmp_path / "d"))
    _topic(log)
    p = log.producer(linger_ms=0)
    p.send_batch("c", [(b"a", b"old"), (b"b", b"keep", [("trace", b"t1"), ("n", None)])],
                 timestamp=T0)
    p.send_batch("c", [(b"a", b"new")], timestamp=T0 + 7)
    p.close()
    log.partition_log("c", 0).roll()
    _cleaner(log).run_once(now_ms=NOW, force=True)
    got = _read_all(log)
    assert [(r.offset, r.key, r.value, r.timestamp, list(r.headers)) for r in got] == [
        (1, b"b", b"keep", T0, [("trace", b"t1"), ("n", None)]),
        (2, b"a", b"new", T0 + 7, []),
    ]
    log.close()


def test_dirty_ratio_and_checkpoint_decide_when_to_clean(tmp_path):
    log = _open(str(tmp_path / "d"))
    _topic(log, **{"min.cleanable.dirty.ratio": 0.5})
    cleaner = _cleaner(log)
    plog = log.partition_log("c", 0)
    _produce_keys(log, 600, 300)  # few duplicates: the cleaned log stays large
    plog.roll()
    assert cleaner.run_once(now_ms=NOW)["partitions_compacted"] == 1
    cp = read_cleaner_checkpoint(plog.directory)
    assert cp == plog.segments[-1].base_offset > 0
    _produce_keys(log, 20, 300)  # a small dirty tail
    plog.roll()
    stats = cleaner.run_once(now_ms=NOW)
    assert stats["partitions_compacted"] == 0 and stats["records_removed"] == 0
    assert read_cleaner_checkpoint(plog.directory) == cp
    stats = cleaner.run_once(now_ms=NOW, force=True)
    assert stats["partitions_compacted"] == 1 and stats["records_removed"] == 20
    assert read_cleaner_checkpoint(plog.directory) == plog.segments[-1].base_offset
    assert len(_read_all(log)) == 300
    log.close()


def test_lost_checkpoint_only_costs_work(tmp_path):
    log = _open(str(tmp_path / "d"))
    _topic(log)
    expect = _produce_keys(log, 300, 20)
    plog = log.partition_log("c", 0)
    plog.roll()
    _cleaner(log).run_once(now_ms=NOW, force=True)
    os.unlink(os.path.join(plog.directory, CHECKPOINT_FILE))
    _cleaner(log).run_once(now_ms=NOW, force=True)
    assert {r.key: (r.offset, r.value) for r in _read_all(log)} == expect
    log.close()


def test_min_compaction_lag_protects_young_segments(tmp_path):
    log = _open(str(tmp_path / "d"))
    _topic(log, **{"min.compaction.lag.ms": 60_000})
    plog = log.partition_log("c", 0)
    _produce_keys(log, 200, 5, ts=NOW - 120_000)  # old enough
    young_start = plog.next_offset
    plog.roll()
    _produce_keys(log, 200, 5, ts=NOW - 1000)  # too young
    plog.roll()
    _cleaner(log).run_once(now_ms=NOW, force=True)
    got = _read_all(log)
    old_part = [r for r in got if r.offset < young_start]
    young_part = [r for r in got if r.offset >= young_start]
    assert len(old_part) == 5
    assert len(young_part) == 200
    assert read_cleaner_checkpoint(plog.directory) == young_start
    log.close()


def test_compact_and_delete_policy_does_both(tmp_path):
    log = _open(str(tmp_path / "d"))
    _topic(log, **{"cleanup.policy": "compact,delete", "retention.ms": 60_000})
    plog = log.partition_log("c", 0)
    _produce_keys(log, 100, 5, ts=T0)  # expired
    kept_from = plog.next_offset
    plog.roll()
    expect = _produce_keys(log, 100, 5, ts=NOW)
    plog.roll()
    stats = _cleaner(log).run_once(now_ms=NOW)
    assert stats["segments_deleted"] > 0 and stats["records_removed"] > 0
    assert plog.log_start_offset >= kept_from - 10
    assert {r.key: (r.offset, r.value) for r in _read_all(log)} == expect
    log.close()


def test_reader_holding_old_segment_keeps_reading_it(tmp_path):
    log = _open(str(tmp_path / "d"))
    _topic(log)
    _produce_keys(log, 300, 3)
    plog = log.partition_log("c", 0)
    plog.roll()
    held = plog.read(0, 1 << 20)  # a fetch in flight: slice of the original first segment
    before = held.read()
    _cleaner(log).run_once(now_ms=NOW, force=True)
    assert held.read() == before  # still the unlinked original bytes
    h, recs = decode_batch(before, 0)
    assert recs[0][0] == 0
    log.close()


def test_swap_is_refused_when_segments_changed_underneath(tmp_path):
    log = _open(str(tmp_path / "d"))
    _topic(log)
    _produce_keys(log, 200, 4)
    plog = log.partition_log("c", 0)
    plog.roll()
    segs = plog.segments
    group = segs[:3]
    ends = [s.base_offset for s in segs[1:4]]
    omap = compactor.build_offset_map(segs[:-1])
    res = compactor.clean_group(plog.directory, group, omap, tombstone_horizon_ms=0,
                                index_interval_bytes=4096)
    assert res.written
    log.delete_records(("c", 0), ends[0])  # retention-like change while the cleaner worked
    assert plog.replace_segments(group, [res.base]) is None
    compactor.discard_cleaned(plog.directory, [res.base])
    _no_leftovers(plog.directory)
    assert _read_all(log)[0].offset == ends[0]
    log.close()


def test_group_segments_respects_size_limit():
    class Seg:
        def __init__(self, base, size):
            self.base_offset, self.size = base, size

    segs = [Seg(0, 400), Seg(10, 400), Seg(20, 400), Seg(30, 900), Seg(40, 100)]
    ends = [10, 20, 30, 40, 50]
    groups = compactor.group_segments(segs, ends, 1000)  # type: ignore[arg-type]
    assert [[s.base_offset for s in g] for g in groups] == [[0, 10], [20], [30, 40]]


def test_corrupt_closed_segment_is_reported_not_rewritten(tmp_path):
    log = _open(str(tmp_path / "d"))
    _topic(log)
    _produce_keys(log, 200, 4)
    plog = log.partition_log("c", 0)
    plog.roll()
    seg = plog.segments[1]
    with open(seg.log_path, "r+b") as f:  # flip a byte inside the first batch's records
        f.seek(70)
        b = f.read(1)
        f.seek(70)
        f.write(bytes([b[0] ^ 0xFF]))
    before = [(s.base_offset, s.size) for s in plog.segments]
    stats = _cleaner(log).run_once(now_ms=NOW, force=True)
    assert stats["errors"] and "c-0" in stats["errors"][0]
    assert [(s.base_offset, s.size) for s in plog.segments] == before
    _no_leftovers(plog.directory)
    log.close()
