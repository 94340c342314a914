"""The compiled share-group loops (``_native_queue``) against their reference (``hot``).

Two share groups on one topic of one log, one on each implementation, get the same random
operations (produce with options, receive, ack / nack / reject / release / renew of held or
stale records, clock moves that expire locks and TTLs, filters, a restart that reloads the
stored state); after every step their answers, errors, entire in-memory state (available
and lock heaps in heap order, every record's fields, windows, ranges, counters) and committed
keys (SPSO, ranges with their delivery counts, due index) must be equal.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import logmq
from logmq.broker.queues import hot
from logmq.broker.queues.group import ShareGroup
from logmq.clock import ManualClock

if hot.NATIVE is None and os.environ.get("CI"):
    raise ImportError("CI must build the compiled share-group loops (pip install -e .)")
pytestmark = pytest.mark.skipif(hot.NATIVE is None, reason="native queue loops not built")

TOPIC = "jobs"
IMPLS = {"py": hot.PURE, "nat": hot.NATIVE}
_FIELDS = ("p", "off", "record", "state", "count", "deadline", "ver", "first_ms", "error",
           "prio", "ready", "expires", "in_window", "keyed")


def rec_snap(rec: Any) -> tuple:
    owner = rec.owner.id if rec.owner is not None else None
    return tuple(getattr(rec, f) for f in _FIELDS) + (owner,)


def group_snap(g: ShareGroup) -> dict:
    """Everything the loops touch, implementation-neutral (no object identities)."""
    return {
        "avail": [e[:4] + (rec_snap(e[4]), e[5]) for e in g.avail],
        "locks": [e[:2] + (rec_snap(e[2]), e[3]) for e in g.locks],
        "counters": (g.avail_live, g.n_acquired, g.n_out, g.n_due, g.due_next, g.acked,
                     g.archived, g.dead_lettered),
        "parts": [(pt.p, pt.spso, pt.speo, {o: rec_snap(r) for o, r in pt.win.items()},
                   list(pt.win_order), {o: rec_snap(r) for o, r in pt.out.items()},
                   list(pt.done_keyed), dict(pt.hints), pt.cache is not None,
                   dict(pt.rng.st), dict(pt.rng.keys), dict(pt.rng.owner), set(pt.rng.dirty))
                  for pt in g.parts],
        "members": sorted((m.id, sorted(m.held)) for m in g.members.values()),
    }


def disk_snap(g: ShareGroup) -> list:
    """The group's committed keys (SPSO, ranges, out-of-window, due index), group-neutral."""
    g.journal.flush()
    out = []
    for db in (g.store.db, g.store.due_db):
        with g.store.env.begin(db=db) as txn:
            for k, v in txn.cursor():
                at = k.find(g.gt)
                if 0 <= at <= 1:
                    out.append((k[:at] + k[at + len(g.gt):], v))
    return out


def _open_queue(log: Any, name: str, impl: hot.Impl, cfg: dict, flt: Any) -> Any:
    old = ShareGroup.__dict__["_hot"]
    ShareGroup._hot = impl  # the group's own records are made by impl from its __init__ on
    try:
        q = log.queue(TOPIC, group=name, lock_ms=1000, filter=flt, **cfg)
    finally:
        ShareGroup._hot = old
    q._share._hot = impl
    assert type(q._share._hot) is hot.Impl
    return q


def _keep_odd(rec: Any) -> bool:
    return rec.value is None or rec.value[-1:] not in (b"3", b"7")


_OPTS = st.sampled_from([{}, {}, {}, {"priority": 7}, {"priority": 2}, {"ttl_ms": 1500},
                         {"delay_ms": 2000}, {"headers": [("x", b"1")]}])
_OPS = st.one_of(
    st.tuples(st.just("produce"), st.integers(1, 12), st.integers(0, 1), _OPTS),
    st.tuples(st.just("recv"), st.integers(0, 1), st.integers(1, 9)),
    st.tuples(st.just("settle"), st.integers(0, 1),
              st.sampled_from(["ack", "ack", "nack", "nack0", "reject", "release", "renew"]),
              st.lists(st.integers(0, 30), max_size=6), st.booleans()),
    st.tuples(st.just("advance"), st.sampled_from([1, 400, 1100, 2500])),
    st.tuples(st.just("restart")),
)


class Pair:
    """One log, one group per implementation, the same members and operations on each."""

    def __init__(self, path: Any, cfg: dict, filtered: bool) -> None:
        self.path, self.cfg, self.filtered = path, cfg, filtered
        self.clock = ManualClock()
        self.seq = 0
        self._open(first=True)

    def _open(self, first: bool = False) -> None:
        self.log = logmq.open(self.path, cleaner=False, clock=self.clock, fsync="interval")
        if first:
            self.log.create_topic(TOPIC, partitions=2)
        self.prod = self.log.producer(linger_ms=0)
        self.qs: dict[str, list] = {}
        self.got: dict[str, list[list]] = {}
        for name, impl in IMPLS.items():
            self.qs[name] = [_open_queue(self.log, "g" + name, impl, self.cfg,
                                         _keep_odd if self.filtered and i == 1 else None)
                             for i in range(2)]
            self.got[name] = [[], []]

    def close(self) -> None:
        self.prod.close()
        for qs in self.qs.values():
            for q in qs:
                q.close()
        self.log.close()

    def groups(self) -> dict[str, ShareGroup]:
        return {name: qs[0]._share for name, qs in self.qs.items()}

    def run(self, op: tuple) -> None:
        kind = op[0]
        if kind == "produce":
            _, n, part, opts = op
            fut = None
            for _ in range(n):
                self.seq += 1
                fut = self.prod.send(TOPIC, b"v%d" % self.seq, partition=part, **opts)
            assert fut is not None
            fut.result()
            return
        if kind == "advance":
            self.clock.advance(op[1] / 1000)
            return
        if kind == "restart":  # a crash: no member leaves, held records stay delivered
            self.prod.close()
            self.log.close()
            self._open()
            return
        out = {}
        for name in IMPLS:
            out[name] = self._member_op(name, op)
        assert out["py"] == out["nat"], op

    def _member_op(self, name: str, op: tuple) -> Any:
        kind, i = op[0], op[1]
        q = self.qs[name][i]
        mine = self.got[name][i]
        try:
            if kind == "recv":
                recs = q.receive(op[2], timeout=0)
                mine.extend(recs)
                return [(r.partition, r.offset, r.value, r.delivery_count, r.lock_deadline_ms)
                        for r in recs]
            _, _, action, picks, stale = op
            chosen = [mine[j % len(mine)] for j in picks] if mine else []
            if not stale:
                chosen = [r for r in dict.fromkeys(chosen) if r.settled is None]
            if action in ("ack", "renew"):
                res = q._settle(chosen, action)
            elif action == "nack0":
                res = q._settle(chosen, "nack", delay_ms=0, error="e0")
            elif action == "nack":
                res = q._settle(chosen, "nack", error="boom")
            elif action == "reject":
                res = q._settle(chosen, "reject", error="bad")
            else:
                res = q._settle(chosen, "release", count_attempt=False)
            return ("ok", res)
        except Exception as e:  # the same error, with the same text, from both
            return ("err", type(e).__name__, str(e))


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(_OPS, min_size=4, max_size=40),
       aging=st.sampled_from([None, 1000]), inflight=st.sampled_from([3, 2000]),
       attempts=st.sampled_from([2, 5]), filtered=st.booleans())
def test_native_loops_equal_the_reference(tmp_path_factory, ops, aging, inflight, attempts,
                                          filtered):
    cfg = {"priority_aging_ms": aging, "max_inflight": inflight, "max_attempts": attempts,
           "backoff_base_ms": 0 if attempts == 5 else 700, "backoff_jitter": 0.0}
    pair = Pair(tmp_path_factory.mktemp("qn") / "d", cfg, filtered)
    try:
        for op in ops:
            pair.run(op)
            g = pair.groups()
            assert group_snap(g["py"]) == group_snap(g["nat"]), op
            assert disk_snap(g["py"]) == disk_snap(g["nat"]), op
        for name in IMPLS:  # drain: whatever is left is delivered the same way
            pair.got[name] = [[], []]
        for _ in range(4):
            pair.run(("recv", 0, 50))
            pair.run(("settle", 0, "ack", list(range(50)), False))
            g = pair.groups()
            assert group_snap(g["py"]) == group_snap(g["nat"])
            assert disk_snap(g["py"]) == disk_snap(g["nat"])
    finally:
        pair.close()


_RSTATES = st.sampled_from([(1, 1, 5, None), (1, 2, 5, None), (2, 0, 0, None),
                            (1, 1, 5, "boom"), (3, 1, 0, None)])


@settings(max_examples=300, deadline=None)
@given(loaded=st.lists(st.tuples(st.integers(0, 9000), st.integers(1, 6000), _RSTATES),
                       max_size=4),
       batches=st.lists(st.lists(st.tuples(st.integers(0, 12000), st.integers(0, 3),
                                           st.one_of(st.none(), _RSTATES)), max_size=30),
                        max_size=6))
def test_range_flush_equals_the_reference(loaded, batches):
    """The same loads, sets and drops: the same ops (order included) and the same maps,
    with ranges longer than MERGE_MAX next to changed offsets (the merge it skips)."""
    from logmq.broker.queues.ranges import RangeMap

    maps = {}
    for name in IMPLS:
        rm = maps[name] = RangeMap(b"Rg\x00t\x00\x00\x00\x00\x01")
        end = 0
        for gap, length, s in loaded:  # disjoint ranges, as on disk
            start = end + gap
            rm.load(start, start + length, s)
            end = start + length
    for batch in batches:
        ops = {}
        for name, impl in IMPLS.items():
            rm = maps[name]
            for off, width, s in batch:
                for o in range(off, off + width):
                    if s is None:
                        rm.drop(o)
                    else:
                        rm.set(o, s)
            ops[name] = []
            impl.flush(rm, "db", ops[name])
        assert ops["py"] == ops["nat"]
        a, b = maps["py"], maps["nat"]
        assert (a.st, a.keys, a.owner, a.dirty) == (b.st, b.keys, b.owner, b.dirty)


_KEYS = st.one_of(st.integers(-3, 3), st.integers(-(2**70), 2**70), st.booleans(),
                  st.sampled_from([0.5, -1.0]))


@settings(max_examples=300, deadline=None)
@given(items=st.lists(st.one_of(st.tuples(_KEYS, _KEYS, st.integers(0, 3)),
                                st.tuples(_KEYS), st.tuples(_KEYS, _KEYS)), max_size=60),
       pops=st.lists(st.booleans(), max_size=80), ints=st.booleans())
def test_compiled_heap_is_heapq(items, pops, ints):
    """The compiled heap ops leave the same lists as heapq's (its fast comparison included:
    C ints, ints beyond 64 bits, bools, floats, ties, shorter tuples)."""
    import heapq

    from logmq.broker.queues import _native_queue as nq

    if ints:
        items = [t[0] for t in items if type(t[0]) is int]
    a, b = list(items), list(items)
    heapq.heapify(a)
    nq.heapify(b)
    assert repr(a) == repr(b)  # repr: True and 1 are equal, not the same entry
    it = iter(items)
    for pop in pops:
        if pop and a:
            assert repr(heapq.heappop(a)) == repr(nq.heappop(b))
        else:
            x = next(it, (1,) if not ints else 1)
            heapq.heappush(a, x)
            nq.heappush(b, x)
        assert repr(a) == repr(b)


def test_live_locks_equal_the_reference():
    from logmq.broker.queues.model import ACQUIRED
    from logmq.types import Record

    out = {}
    for name, impl in IMPLS.items():
        locks = []
        for i in range(40):
            rec = impl.Rec(0, i, Record(TOPIC, 0, i, 1, None, b"", []), True)
            rec.state = ACQUIRED if i % 3 else 0
            rec.ver = i % 5
            locks.append((1000 - i, i, rec, i % 5 if i % 4 else 99))
        out[name] = [(e[0], e[1], e[3]) for e in impl.live_locks(locks)]
    assert out["py"] == out["nat"] and len(out["py"]) == 20


def test_records_are_compiled_and_equal_fields():
    """The compiled record class starts as the reference's does, field for field."""
    from logmq.broker.queues.model import _Rec
    from logmq.types import Record

    r = Record(TOPIC, 1, 5, 1234, b"k", b"v", [])
    a, b = _Rec(1, 5, r, True), hot.NATIVE.Rec(1, 5, r, True)
    assert rec_snap(a) == rec_snap(b)
    with pytest.raises(AttributeError):
        b.nope = 1  # no __dict__, as the reference's __slots__
    assert hot.implementation == ("python" if hot.SELECTED is hot.PURE else "native")


def test_logmq_pure_forces_the_reference_loops():
    import os
    import subprocess
    import sys

    code = ("from logmq.broker.queues import hot; from logmq.broker.queues.group import "
            "ShareGroup; print(hot.implementation, ShareGroup._hot is hot.PURE)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for pure, want in (("1", "python True"), ("0", "native False")):
        env = {**os.environ, "LOGMQ_PURE": pure, "PYTHONPATH": root}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        assert out == want
