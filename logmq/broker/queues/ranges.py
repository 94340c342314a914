"""In-flight window state kept as ranges of offsets (one LMDB key per run), per partition.

KIP-932 keeps a share partition's in-flight state per batch of offsets rather than per record;
this does the same for the ``R`` keys of :mod:`logmq.broker.queues.state`: a key per maximal
run of consecutive offsets whose (state, delivery count, first delivery ms, last error) are
equal. A receive of 500 consecutive records therefore writes one key, and acknowledging them
(``ack_many``) rewrites or deletes that one key, instead of 500 each.

The group code changes records one at a time (:meth:`RangeMap.set`, :meth:`RangeMap.drop`),
which only touches memory; :meth:`RangeMap.flush` runs right before the changes are submitted
to the journal (under the group's lock, so journal order is change order) and turns the
changed offsets into key deletes and puts: the ranges that contain a changed offset are cut
out, the runs of their offsets are recomputed, and only keys that differ are written. Its cost
in Python is linear in the offsets of the touched ranges; its LMDB cost is the number of runs.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["RangeMap", "RANGE_VAL", "pack_range", "unpack_range"]

#: value of an ``R`` key: state, delivery count, first delivery ms, end offset (exclusive),
#: then the last error (utf-8, possibly empty)
RANGE_VAL = struct.Struct(">BHqQ")
_OFF = struct.Struct(">Q")
_ERR_MAX = 512
#: a neighbour range longer than this is not merged with a changed offset next to it (the
#: merge walks its offsets): runs stay correct, a long run may just end up as two keys
MERGE_MAX = 4096

#: one offset's durable state: (state, delivery count, first delivery ms, error or None)
St = tuple[int, int, int, "str | None"]


def pack_range(end: int, st: St) -> bytes:
    state, count, first, err = st
    e = b"" if not err else err.encode("utf-8", "replace")[:_ERR_MAX]
    return RANGE_VAL.pack(state, min(count, 0xFFFF), first, end) + e


def unpack_range(raw: bytes) -> tuple[int, St]:
    """(end offset, state tuple) of an ``R`` value."""
    state, count, first, end = RANGE_VAL.unpack_from(raw)
    e = raw[RANGE_VAL.size:]
    return end, (state, count, first, e.decode("utf-8", "replace") if e else None)


class RangeMap:
    """One partition's keyed offsets and the ranges they are stored as.

    ``st`` is the state of every offset that has (or must get) a key; ``keys`` the ranges on
    disk (start -> (end, state)) as of the last flush; ``owner`` maps each offset covered by
    a range on disk to that range's start; ``dirty`` the offsets changed since.
    """

    __slots__ = ("prefix", "st", "keys", "owner", "dirty")

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix  # ``R`` + group/topic + partition: a key is prefix + start
        self.st: dict[int, St] = {}
        self.keys: dict[int, tuple[int, St]] = {}
        self.owner: dict[int, int] = {}
        self.dirty: set[int] = set()

    def set(self, off: int, st: St) -> None:
        self.st[off] = st
        self.dirty.add(off)

    def drop(self, off: int) -> None:
        if self.st.pop(off, None) is not None or off in self.owner:
            self.dirty.add(off)

    def load(self, start: int, end: int, st: St) -> None:
        """A range read from disk (before any change)."""
        self.keys[start] = (end, st)
        sts = self.st
        own = self.owner
        for off in range(start, end):
            sts[off] = st
            own[off] = start

    def flush(self, db: Any, ops: list) -> None:
        """Append the key deletes and puts that make disk equal ``st`` for changed offsets."""
        dirty = self.dirty
        if not dirty:
            return
        keys = self.keys
        owner = self.owner
        og = owner.get
        ds = sorted(dirty)
        dirty.clear()
        old: dict[int, tuple[int, St]] = {}
        prev = -2
        for off in ds:
            s = og(off)
            if s is not None and s not in old:
                old[s] = keys.pop(s)
            if off != prev + 1:  # a run of changed offsets starts: the ranges around it
                for nb in (off - 1, prev + 1) if prev >= 0 else (off - 1,):
                    s = og(nb)  # may now extend over the run: merge (walks it)
                    if s is not None and s not in old and keys[s][0] - s <= MERGE_MAX:
                        old[s] = keys.pop(s)
            prev = off
        s = og(prev + 1)
        if s is not None and s not in old and keys[s][0] - s <= MERGE_MAX:
            old[s] = keys.pop(s)
        if old:
            region: set[int] = set(ds)
            for s, (e, _st) in old.items():
                region.update(range(s, e))
            ds = sorted(region)
        sts = self.st
        sg = sts.get
        new: list[tuple[int, int, St]] = []
        start = prev = -2
        cur: St | None = None
        for off in ds:
            st = sg(off)
            if st is None:
                owner.pop(off, None)
                continue
            if off != prev + 1 or (st is not cur and st != cur):
                if cur is not None:
                    new.append((start, prev + 1, cur))
                start = off
                cur = st
            owner[off] = start
            prev = off
        if cur is not None:
            new.append((start, prev + 1, cur))
        prefix = self.prefix
        pack = _OFF.pack
        starts = {s for s, _e, _st in new}
        for s in old:
            if s not in starts:
                ops.append((db, prefix + pack(s), None))
        for s, e, st in new:
            keys[s] = (e, st)
            if old.get(s) != (e, st):
                ops.append((db, prefix + pack(s), pack_range(e, st)))
