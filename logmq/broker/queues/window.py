"""A share group's in-flight window: reading the log into it, admitting and advancing."""

from __future__ import annotations

import heapq
from typing import Any

from logmq.broker.queues import options as O
from logmq.broker.queues.model import (
    _FETCH_BYTES,
    _FILL_BUDGET,
    _PRIO_STEP,
    AVAILABLE,
    GONE,
    GroupState,
    _Part,
    _Rec,
)
from logmq.broker.queues.state import (
    DELIVERED,
    pack_spso,
    pack_state,
)
from logmq.codec.batch import CONTROL_MASK, batch_size_at, validate_batch
from logmq.codec.records import decode_records_into
from logmq.errors import (
    OffsetOutOfRangeError,
)
from logmq.types import Record

__all__ = ["Window"]


class Window(GroupState):
    # ------------------------------------------------------------------ records
    def _new_rec(self, p: int, off: int, record: Record, in_window: bool) -> _Rec:
        rec: _Rec = self._hot.Rec(p, off, record, in_window)
        if record.headers:
            opts = O.record_options(record.headers)
            rec.prio = opts.priority
            rec.expires = opts.expires_at
            if opts.deliver_at is not None and opts.deliver_at > rec.ready:
                rec.ready = opts.deliver_at
        return rec

    def _read_record(self, p: int, off: int) -> Record | None:
        plog = self.broker.partition_log(self.topic, p)
        try:
            data = plog.read_bytes(off, 1, whole_batches=True)
        except OffsetOutOfRangeError:
            return None
        out: list = []
        decode_records_into(data, out, off, 1)
        if not out or out[0][0] != off:
            return None  # compacted away
        o, ts, k, v, h = out[0]
        return Record(self.topic, p, o, ts, k, v, h)

    def _push_avail(self, rec: _Rec) -> None:
        rec.state = AVAILABLE
        rec.ver += 1
        aging = self.cfg.priority_aging_ms
        if aging is None:  # priority first, then the oldest: one int compares fastest
            key = (9 - rec.prio) * _PRIO_STEP + rec.ready
        else:
            key = rec.ready - rec.prio * aging
        heapq.heappush(self.avail, (key, rec.p, rec.off, next(self._avail_seq), rec, rec.ver))
        self.avail_live += 1

    def _key_of(self, rec: _Rec) -> bytes:
        """The per-record key of an out-of-window record (window records are in ranges)."""
        return self.store.o_key(self.gt, rec.p, rec.off)

    def _put_state(self, rec: _Rec, ops: list) -> None:
        if rec.in_window:
            self.parts[rec.p].rng.set(rec.off, (DELIVERED, rec.count, rec.first_ms, rec.error))
        else:
            ops.append((self.db, self._key_of(rec),
                        pack_state(DELIVERED, rec.count, rec.first_ms, rec.error)))
        rec.keyed = True

    # ------------------------------------------------------------------ window
    def _fill(self, now: int, ops: list, dead: list) -> None:
        """Read new log records into each partition's window, up to ``max_inflight``."""
        budget = _FILL_BUDGET
        limit = self.cfg.max_inflight
        for part in self.parts:
            plog = self.broker.partition_log(self.topic, part.p)
            while budget > 0:
                room = min(limit - (part.speo - part.spso), budget)
                if room <= 0 or part.speo >= plog.next_offset:
                    break
                before = part.speo
                raw = self._take_cached(part, room)
                if raw is None:
                    try:
                        raw = self._read_batches(part, plog, room)
                    except OffsetOutOfRangeError:
                        start = plog.log_start_offset
                        if part.speo >= start:
                            break
                        self._skip_to(part, start, ops)  # retention deleted unread records
                        continue
                if raw:
                    self._admit(part, raw, now, ops, dead)
                budget -= max(len(raw), 1)
                self._advance(part, ops)
                if part.speo == before:
                    break

    def _take_cached(self, part: _Part, room: int) -> list | None:
        """Records of the partly admitted batch read last time (no second decode)."""
        c = part.cache
        if c is None:
            return None
        recs, i, batch_next = c
        speo = part.speo
        n = len(recs)
        while i < n and recs[i][0] < speo:
            i += 1
        if i >= n:
            part.cache = None
            if batch_next > speo:
                part.speo = batch_next
                return []
            return None
        take = recs[i:i + room]
        i += len(take)
        if i < n:
            part.cache = (recs, i, batch_next)
            part.speo = take[-1][0] + 1
        else:
            part.cache = None
            part.speo = max(speo, batch_next)
        return take

    def _read_batches(self, part: _Part, plog: Any, room: int) -> list:
        """Decode whole batches from the window end; the rest of a cut batch is cached."""
        speo = part.speo
        sl = plog.read(speo, _FETCH_BYTES)
        out: list = []
        if sl is None:
            return out
        if sl.length == 0:  # a compaction gap up to the end of the log
            part.speo = max(speo, sl.end)
            return out
        data = sl.read()
        view = memoryview(data)
        end = len(data)
        pos = 0
        while pos < end and len(out) < room:
            size = batch_size_at(view, pos)
            if size < 0 or pos + size > end:
                break
            h = validate_batch(view, pos)
            pos += size
            if h.next_offset <= speo or h.attributes & CONTROL_MASK:
                speo = max(speo, h.next_offset)
                continue
            recs: list = []
            decode_records_into(view[pos - size:pos], recs, speo)
            left = room - len(out)
            if len(recs) > left:
                out.extend(recs[:left])
                part.cache = (recs, left, h.next_offset)
                speo = recs[left - 1][0] + 1
                break
            out.extend(recs)
            speo = h.next_offset
        part.speo = max(part.speo, speo)
        return out

    def _admit(self, part: _Part, raw: list, now: int, ops: list, dead: list) -> None:
        """Give freshly read records their window state (or schedule / expire them)."""
        self._hot.admit(self, part, raw, now, ops, dead)  # hot.py: the per-record loop

    def _skip_to(self, part: _Part, start: int, ops: list) -> None:
        for off in [o for o in part.win if o < start]:
            rec = part.win.pop(off)
            self._unacquire(rec)
            rec.state = GONE
            rec.ver += 1
            if rec.keyed:
                heapq.heappush(part.done_keyed, off)
        part.speo = max(part.speo, start)
        part.cache = None
        self._advance(part, ops)

    def _advance(self, part: _Part, ops: list) -> None:
        """Move the SPSO to the first pending window offset (or the window end)."""
        order = part.win_order
        win = part.win
        while order and order[0] not in win:
            order.popleft()
        new = order[0] if order else part.speo
        if new == part.spso:
            return
        part.spso = new
        dk = part.done_keyed
        if dk and dk[0] < new:
            drop = part.rng.drop
            while dk and dk[0] < new:
                drop(heapq.heappop(dk))
        ops.append((self.db, self.store.spso_key(self.gt, part.p), pack_spso(new)))

    def _note_due(self, due: int) -> None:
        self.n_due += 1
        if self.due_next is None or due < self.due_next:
            self.due_next = due
        self._due_dirty = True  # its entry may not be committed yet: flush before reading
