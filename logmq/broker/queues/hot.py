"""The share group's per-record loops: admit (fill), pick (receive), settle tokens, finish,
and the range flush (``RangeMap.flush``) and lock-heap compaction they feed.

They take the group and its objects (``_Part``, ``Member``, ``_Rec``) and do every per-record
step of :class:`~logmq.broker.queues.window.Window` and
:class:`~logmq.broker.queues.actions.Actions` that the profile of a receive + ``ack_many``
loop shows (the rare paths call back into the group's methods). This module is the
reference: ``logmq/broker/queues/_native_queue.pyx`` compiles the same steps, in the same
order, on a compiled record class, and is used where it is built unless ``LOGMQ_PURE=1``
(``tests/test_queue_native.py`` drives both with the same operations and compares every
heap, record, count and range).

A group uses the :class:`Impl` in its ``_hot`` attribute (class default: :data:`SELECTED`),
so a test can hold one group on each implementation in the same process. Which one share
groups use here: :data:`implementation` (``"native"`` or ``"python"``, as
``logmq.codec.implementation`` says for the codec; the two extensions build separately).
"""

from __future__ import annotations

import heapq
import importlib
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

from logmq.broker.queues.model import (
    _PRIO_STEP,
    ACQUIRED,
    AVAILABLE,
    GONE,
    RELEASED,
    _Rec,
)
from logmq.broker.queues.ranges import MERGE_MAX, RangeMap
from logmq.broker.queues.state import (
    DELIVERED,
    DONE,
    PACK_PO,
    SCHEDULED,
    pack_state,
)
from logmq.broker.queues.state import o_prefix as state_o_prefix
from logmq.codec.purity import pure_forced
from logmq.types import Record

__all__ = ["Impl", "PURE", "NATIVE", "SELECTED", "implementation"]


def _py_admit(g: Any, part: Any, raw: list, now: int, ops: list, dead: list) -> None:
    """Give freshly read records their window state (or schedule / expire them)."""
    Rec = g._hot.Rec
    topic, p = g.topic, part.p
    hints = part.hints
    win = part.win
    win_order = part.win_order
    avail = g.avail
    seq = g._avail_seq
    push = heapq.heappush
    aging = g.cfg.priority_aging_ms
    base = 9 * _PRIO_STEP if aging is None else 0  # the key of priority 0 (_push_avail)
    plain = 0
    for off, ts, k, v, hdrs in raw:
        hint = hints.pop(off, None) if hints else None
        record = Record(topic, p, off, ts, k, v, hdrs)
        if hint is None and not hdrs:
            # No options and never delivered: available now. What _new_rec and
            # _push_avail do, inlined, as nearly every record takes this path.
            rec = Rec(p, off, record, True)
            rec.ver = 1
            win[off] = rec
            win_order.append(off)
            push(avail, (base + ts, p, off, next(seq), rec, 1))
            plain += 1
            continue
        if hint is not None and hint.state != DELIVERED:
            heapq.heappush(part.done_keyed, off)  # done, or in the due-time index
            continue
        rec = g._new_rec(p, off, record, True)
        if hint is not None:
            rec.count, rec.first_ms, rec.error, rec.keyed = (
                hint.count, hint.first_ms, hint.error, True)
        elif rec.ready > now and rec.ready != ts:  # deliver-at in the future
            due = rec.ready
            ops.append((g.store.due_db, g.store.due_key(g.gt, due, p, off),
                        pack_state(SCHEDULED, 0, 0, None)))
            part.rng.set(off, (SCHEDULED, 0, 0, None))
            heapq.heappush(part.done_keyed, off)
            g._note_due(due)
            continue
        win[off] = rec
        win_order.append(off)
        if rec.expires is not None and rec.expires <= now:
            g._expire(rec, ops, dead)
        else:
            g._push_avail(rec)
    g.avail_live += plain
    if hints:
        for off in [o for o in hints if o < part.speo]:  # offsets the log no longer has
            hints.pop(off)
            heapq.heappush(part.done_keyed, off)


def _py_pick(g: Any, m: Any, n: int, now: int, ops: list, dead: list,
             flt: Callable[[Any], bool] | None, got: list) -> None:
    """Acquire up to ``n`` records for ``m`` from the available heap into ``got``."""
    g._fill(now, ops, dead)
    avail = g.avail
    max_attempts = g.cfg.max_attempts
    heappop, heappush = heapq.heappop, heapq.heappush
    locks = g.locks
    lock_seq = g._avail_seq
    held = m.held
    deadline = now + m.lock_ms
    db = g.db
    o_prefix = state_o_prefix(g.gt)
    parts = g.parts
    while len(got) < n and avail:
        rec, ver = heappop(avail)[4:]
        if rec.ver != ver or rec.state != AVAILABLE:
            continue
        g.avail_live -= 1
        if rec.expires is not None and rec.expires <= now:
            g._expire(rec, ops, dead)
            continue
        if rec.count >= max_attempts:  # delivered that often before a crash
            g._dead(rec, "max-attempts", rec.error, ops, dead)
            continue
        if flt is not None and not flt(rec.record):
            g.archived += 1
            g._done(rec, ops)
            continue
        rec.state = ACQUIRED
        rec.owner = m
        count = rec.count = rec.count + 1
        ver = rec.ver = rec.ver + 1
        if not rec.first_ms:
            rec.first_ms = now
        rec.deadline = deadline
        heappush(locks, (deadline, next(lock_seq), rec, ver))
        g.n_acquired += 1
        p = rec.p
        off = rec.off
        held[(p, off)] = rec
        # the durable delivery count (what _put_state does, inlined: this is per record);
        # window records go to the partition's ranges, written once at submit
        if rec.in_window:
            rng = parts[p].rng
            rng.st[off] = (DELIVERED, count, rec.first_ms, rec.error)
            rng.dirty.add(off)
        else:
            ops.append((db, o_prefix + PACK_PO(p, off),
                        pack_state(DELIVERED, count, rec.first_ms, rec.error)))
        rec.keyed = True
        got.append((rec, count, deadline))
        if not avail or len(got) >= n:
            break
        if len(avail) < 8:
            g._fill(now, ops, dead)


def _py_settle(g: Any, member: Any, tokens: list, action: str, now: int, ops: list,
               dead: list, failed: list, deadlines: list, acked: list,
               delay_ms: int | None, error: str | None, lock_ms: int | None,
               count_attempt: bool) -> None:
    """Settle each ``(partition, offset, count)`` token of ``member`` (``Actions.settle``).

    Acked records are only unlocked here and collected in ``acked`` (the caller finishes
    them in one go); tokens this member no longer holds go to ``failed``.
    """
    held = member.held
    for p, off, count in tokens:
        rec = held.get((p, off))
        if rec is None or rec.state != ACQUIRED or rec.owner is not member \
                or rec.count != count:
            failed.append((p, off))
            continue
        if rec.deadline < now:  # expired before anyone noticed: too late now
            g._release(rec, now, ops, dead, "lock expired", None)
            failed.append((p, off))
            continue
        if action == "ack":  # _unacquire, inlined: a second token for it then fails
            rec.state = RELEASED
            rec.owner = None
            del held[(p, off)]
            acked.append(rec)
        elif action == "nack":
            g._release(rec, now, ops, dead, error, delay_ms)
        elif action == "reject":
            g._dead(rec, "rejected", error or "rejected", ops, dead)
        elif action == "renew":
            rec.deadline = now + (lock_ms if lock_ms is not None else member.lock_ms)
            rec.ver += 1
            heapq.heappush(g.locks, (rec.deadline, next(g._avail_seq), rec, rec.ver))
            deadlines.append(rec.deadline)
        elif action == "release":
            g._release(rec, now, ops, dead, None, 0, count_attempt)
        else:
            raise ValueError(f"unknown action {action!r}")


def _py_finish(g: Any, recs: list, ops: list) -> None:
    """Mark records done (acked, archived, filtered); one SPSO advance per partition.

    A window record the SPSO passes at once just loses its key; one above it keeps a
    DONE key until the SPSO gets there, so a restart does not deliver it again.
    """
    touched: dict[int, Any] = {}
    parts = g.parts
    for rec in recs:
        if rec.state == ACQUIRED:
            g._unacquire(rec)
        rec.state = GONE
        rec.ver += 1
        part = parts[rec.p]
        if rec.in_window:
            del part.win[rec.off]
            touched[rec.p] = part
        else:
            del part.out[rec.off]
            g.n_out -= 1
            ops.append((g.db, g._key_of(rec), None))
    if not touched:
        g.manager.room_changed()
        return
    for part in touched.values():
        g._advance(part, ops)
    done = (DONE, 0, 0, None)  # one value for all: done records of a run share a range
    for rec in recs:
        if rec.in_window and rec.keyed:
            part = parts[rec.p]
            if rec.off < part.spso:  # RangeMap.drop, inlined (per record)
                rng = part.rng
                rng.st.pop(rec.off, None)
                rng.dirty.add(rec.off)
            else:
                part.rng.set(rec.off, done)
                heapq.heappush(part.done_keyed, rec.off)
    g.manager.room_changed()


def _py_live_locks(locks: list) -> list:
    """The lock heap without the entries of settled records (a new list, a heap again)."""
    out = [e for e in locks if e[2].ver == e[3] and e[2].state == ACQUIRED]
    heapq.heapify(out)
    return out


class Impl(NamedTuple):
    """One implementation of the loops, and the record class its admit creates."""

    name: str  # "native" or "python", as logmq.codec.implementation
    Rec: type
    admit: Callable[..., None]
    pick: Callable[..., None]
    settle: Callable[..., None]
    finish: Callable[..., None]
    flush: Callable[..., None]  # (RangeMap, db, ops): RangeMap.flush
    live_locks: Callable[[list], list]


PURE = Impl("python", _Rec, _py_admit, _py_pick, _py_settle, _py_finish, RangeMap.flush,
            _py_live_locks)

#: the reference's constants, which the compiled module has as C constants of its own
CONSTANTS = {"AVAILABLE": AVAILABLE, "ACQUIRED": ACQUIRED, "GONE": GONE,
             "RELEASED": RELEASED, "DELIVERED": DELIVERED, "DONE": DONE,
             "SCHEDULED": SCHEDULED, "PRIO_STEP": _PRIO_STEP, "MERGE_MAX": MERGE_MAX}


def _load_native() -> Impl | None:
    """The compiled twin, if built (and built from a source that knows these constants)."""
    try:
        nq: Any = importlib.import_module("logmq.broker.queues._native_queue")
    except ImportError:
        return None
    if getattr(nq, "constants", dict)() != CONSTANTS:  # a stale build: the pure code rules
        warnings.warn("logmq: logmq/broker/queues/_native_queue was built from another "
                      "version of its source; share groups use the pure-Python loops "
                      "(rebuild the extension)", RuntimeWarning, stacklevel=2)
        return None
    return Impl("native", nq.Rec, nq.admit, nq.pick, nq.settle, nq.finish, nq.range_flush,
                nq.live_locks)


#: the compiled implementation when built (whatever LOGMQ_PURE says: the tests compare it)
NATIVE: Impl | None = _load_native()
#: what share groups use: the compiled one unless LOGMQ_PURE=1 or it is not built
SELECTED: Impl = NATIVE if NATIVE is not None and not pure_forced() else PURE
#: ``"native"`` or ``"python"``: which loops share groups run here
implementation: str = SELECTED.name
