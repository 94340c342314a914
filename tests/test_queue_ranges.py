"""Share-group window state stored as ranges: O(1) keys per receive/ack_many, recovery of
split ranges after a restart, migration of the old one-key-per-record format."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import logmq
from logmq.broker.queues import hot
from logmq.broker.queues.ranges import RangeMap, unpack_range
from logmq.broker.queues.state import pack_state


def fill(log, topic: str, n: int, partitions: int = 1) -> None:
    log.create_topic(topic, partitions=partitions)
    log.producer().send_batch(topic, [(b"k%d" % i, b"%d" % i) for i in range(n)])


def expand(disk: dict[bytes, bytes], plen: int) -> dict[int, tuple]:
    out: dict[int, tuple] = {}
    for k, v in disk.items():
        start = int.from_bytes(k[plen:], "big")
        end, s = unpack_range(v)
        assert end > start
        for off in range(start, end):
            assert off not in out, "ranges overlap"
            out[off] = s
    return out


_STATES = st.sampled_from([(1, 1, 5, None), (1, 2, 5, None), (2, 0, 0, None),
                           (1, 1, 5, "boom"), (3, 1, 0, None)])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 40), st.one_of(st.none(), _STATES)),
                         max_size=30), max_size=8))
@pytest.mark.parametrize("impl", [i for i in (hot.PURE, hot.NATIVE) if i is not None],
                         ids=lambda i: i.name)
def test_range_map_disk_equals_memory_with_maximal_runs(impl, batches):
    prefix = b"Rg\x00t\x00\x00\x00\x00\x00"
    rm = RangeMap(prefix)
    disk: dict[bytes, bytes] = {}
    model: dict[int, tuple] = {}
    for batch in batches:
        for off, s in batch:
            if s is None:
                rm.drop(off)
                model.pop(off, None)
            else:
                rm.set(off, s)
                model[off] = s
        ops: list = []
        impl.flush(rm, None, ops)
        for _db, k, v in ops:
            if v is None:
                del disk[k]
            else:
                disk[k] = v
        assert expand(disk, len(prefix)) == model
        # maximal: two ranges that touch differ in state
        rs = sorted((int.from_bytes(k[len(prefix):], "big"),) + unpack_range(v)
                    for k, v in disk.items())
        for (_s1, e1, st1), (s2, _e2, st2) in zip(rs, rs[1:], strict=False):
            assert not (e1 == s2 and st1 == st2)
        # a reload from disk gives the same map
        again = RangeMap(prefix)
        for s, e, stt in rs:
            again.load(s, e, stt)
        assert again.st == model


def _count_writes(q) -> list[int]:
    journal = q._share.store.journal
    sizes: list[int] = []
    orig = journal._write

    def counting(ops):
        sizes.append(len(ops))
        orig(ops)

    journal._write = counting
    return sizes


def test_receive_500_and_ack_many_write_a_constant_number_of_keys(data_dir):
    with logmq.open(data_dir) as log:
        fill(log, "jobs", 2000)
        q = log.queue("jobs", group="w", lock_ms=60_000, max_inflight=1000)
        q.ack_many(q.receive(10, timeout=1))  # window opened
        sizes = _count_writes(q)
        got = q.receive(500, timeout=1)
        assert len(got) == 500
        assert sum(sizes) <= 4, sizes  # one range (+ the SPSO), not 500 keys
        del sizes[:]
        q.ack_many(got)
        assert sum(sizes) <= 4, sizes
        assert q.stats().acked == 510


def test_split_ranges_survive_a_restart(data_dir):
    with logmq.open(data_dir) as log:
        fill(log, "jobs", 20)
        q = log.queue("jobs", group="w", lock_ms=60_000, backoff_base_ms=0)
        got = q.receive(10, timeout=1)
        by_off = {r.offset: r for r in got}
        q.ack(by_off[2], by_off[5], by_off[6])
        by_off[8].nack(delay=0)
        again = q.receive(1, timeout=1)
        assert again[0].offset == 8 and again[0].delivery_count == 2
        q.close(release=False)  # as after a crash: the acquisitions stay on disk
    with logmq.open(data_dir) as log:
        q = log.queue("jobs", group="w")
        got = q.receive(100, timeout=1)
        counts = {r.offset: r.delivery_count for r in got}
        assert sorted(counts) == [0, 1, 3, 4, 7, 8, 9] + list(range(10, 20))
        assert counts[8] == 3 and counts[0] == 2 and counts[12] == 1
        q.ack_many(got)
        assert q.stats().depth == 0
    with logmq.open(data_dir) as log:
        assert log.queue("jobs", group="w").receive(10, timeout=0.05) == []


def test_old_per_record_keys_are_migrated_to_ranges(data_dir):
    with logmq.open(data_dir) as log:
        fill(log, "jobs", 10)
        q = log.queue("jobs", group="w", lock_ms=60_000)
        got = q.receive(5, timeout=1)
        got[1].ack()
        q.close(release=False)
        store = q._share.store
        gt = store.gt("w", "jobs")
        rp = store.r_prefix(gt, 0)
        with store.env.begin(write=True, db=store.db) as txn:  # rewrite in the old format
            cur = txn.cursor()
            rows = []
            if cur.set_range(rp):
                for k, v in cur:
                    if not bytes(k).startswith(rp):
                        break
                    rows.append((bytes(k), bytes(v)))
            for k, v in rows:
                txn.delete(k)
                start = int.from_bytes(k[len(rp):], "big")
                end, (state, count, first, err) = unpack_range(v)
                for off in range(start, end):
                    txn.put(store.w_key(gt, 0, off), pack_state(state, count, first, err))
            assert rows
    with logmq.open(data_dir) as log:
        q = log.queue("jobs", group="w")
        got = q.receive(100, timeout=1)
        counts = {r.offset: r.delivery_count for r in got}
        assert counts == {0: 2, 2: 2, 3: 2, 4: 2, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1}
        store = q._share.store
        gt = store.gt("w", "jobs")
        with store.env.begin(db=store.db) as txn:
            cur = txn.cursor()
            wp = b"W" + gt
            left = cur.set_range(wp) and bytes(cur.key()).startswith(wp)
        assert not left  # the old keys are gone, the state is in ranges now
        q.ack_many(got)
