"""A share group's record actions: acquire (receive), ack, release (nack), reject, renew,
expiry and scheduling, as moves along :data:`TRANSITIONS`."""

from __future__ import annotations

import gc
import heapq
import random
import time
from collections.abc import Callable
from typing import Any

from logmq.broker.queues.model import (
    ACQUIRED,
    AVAILABLE,
    DYING,
    GONE,
    RELEASED,
    GroupState,
    Member,
    Settled,
    _Rec,
)
from logmq.broker.queues.state import (
    SCHEDULED,
    pack_state,
)
from logmq.errors import (
    BrokerClosedError,
    RecordStateError,
)

__all__ = ["Actions", "TRANSITIONS"]

#: (from, to) -> the action that moves an in-memory record between those states. A record
#: enters AVAILABLE when it is read into the window (or comes back from the due-time index)
#: and GONE is final (the object is dropped; a record coming back is a new one). Every
#: settle first ends the lock (ACQUIRED -> RELEASED), then decides where the record goes.
#: ``tests/test_queue_transitions.py`` drives every action and checks the code moves only
#: along this table, and along all of it.
TRANSITIONS: dict[tuple[int, int], str] = {
    (AVAILABLE, ACQUIRED): "acquire",           # receive
    (ACQUIRED, RELEASED): "end-lock",           # ack, nack, reject, release, lock expiry
    (RELEASED, GONE): "finish-or-schedule",     # ack; nack with a delay or backoff
    (RELEASED, AVAILABLE): "redeliver",         # nack(0), release, lock expiry, no backoff
    (RELEASED, DYING): "dead-letter",           # reject; max attempts reached
    (AVAILABLE, GONE): "archive",               # filtered out, TTL expired, deliver-at later
    (AVAILABLE, DYING): "dead-letter",          # TTL expired with dead_letter_expired
    (DYING, GONE): "buried",                    # copied to the dead-letter topic
    (DYING, AVAILABLE): "bury-failed",          # the copy failed: deliver again
}


class Actions(GroupState):
    # ------------------------------------------------------------------ transitions
    def _unacquire(self, rec: _Rec) -> None:
        """End an acquisition (idempotent): the lock is gone, the owner forgets the record."""
        if rec.state != ACQUIRED:
            return
        rec.state = RELEASED
        self.n_acquired -= 1
        if rec.owner is not None:
            rec.owner.held.pop((rec.p, rec.off), None)
            rec.owner = None

    def _done(self, rec: _Rec, ops: list) -> None:
        self._finish([rec], ops)

    def _finish(self, recs: list[_Rec], ops: list) -> None:
        """Mark records done (acked, archived, filtered); one SPSO advance per partition.

        A window record the SPSO passes at once just loses its key; one above it keeps a
        DONE key until the SPSO gets there, so a restart does not deliver it again.
        """
        self._hot.finish(self, recs, ops)  # hot.py: the per-record loop

    def _schedule(self, rec: _Rec, due: int, ops: list) -> None:
        """Move a record to the due-time index (retry backoff)."""
        self._unacquire(rec)
        rec.state = GONE
        rec.ver += 1
        part = self.parts[rec.p]
        ops.append((self.store.due_db, self.store.due_key(self.gt, due, rec.p, rec.off),
                    pack_state(SCHEDULED, rec.count, rec.first_ms, rec.error)))
        if rec.in_window:
            del part.win[rec.off]
            part.rng.set(rec.off, (SCHEDULED, rec.count, 0, None))
            heapq.heappush(part.done_keyed, rec.off)
            self._advance(part, ops)
        else:
            del part.out[rec.off]
            self.n_out -= 1
            ops.append((self.db, self._key_of(rec), None))
        self._note_due(due)

    def backoff_ms(self, attempt: int) -> int:
        cfg = self.cfg
        if cfg.backoff_base_ms <= 0:
            return 0
        d = min(cfg.backoff_max_ms, cfg.backoff_base_ms * (1 << min(max(attempt, 1) - 1, 40)))
        return int(d * (1 - cfg.backoff_jitter * random.random()))

    def _release(self, rec: _Rec, now: int, ops: list, dead: list, error: str | None,
                 delay_ms: int | None, count_attempt: bool = True) -> None:
        self._unacquire(rec)
        if error is not None:
            rec.error = error
        if not count_attempt:
            rec.count = max(0, rec.count - 1)
            self._put_state(rec, ops)
        elif rec.count >= self.cfg.max_attempts:
            self._dead(rec, "max-attempts", rec.error, ops, dead)
            return
        if delay_ms is None:
            delay_ms = self.backoff_ms(rec.count)
        if delay_ms > 0:
            self._schedule(rec, now + delay_ms, ops)
        else:
            self._push_avail(rec)

    def _expire(self, rec: _Rec, ops: list, dead: list) -> None:
        self.archived += 1
        if self.cfg.dead_letter_expired:
            self._dead(rec, "expired", "expired", ops, dead)
        else:
            self._done(rec, ops)

    def _dead(self, rec: _Rec, reason: str, error: str | None, ops: list, dead: list) -> None:
        self._unacquire(rec)
        if self.cfg.dead_letter_topic == "":
            self.archived += 1
            self._done(rec, ops)
            return
        rec.state = DYING
        rec.ver += 1
        dead.append((rec, rec.ver, reason, error))

    # ------------------------------------------------------------------ timers
    def _tick(self, now: int, ops: list, dead: list) -> None:
        locks = self.locks
        while locks and locks[0][0] <= now:
            _, _, rec, ver = heapq.heappop(locks)
            if rec.ver == ver and rec.state == ACQUIRED:
                self._release(rec, now, ops, dead, "lock expired", None)
        if len(locks) > 2 * self.n_acquired + 1024:  # drop entries of settled records
            self.locks = self._hot.live_locks(locks)
        if self.due_next is not None and self.due_next <= now:
            self._load_due(now, ops)

    def _load_due(self, now: int, ops: list) -> None:
        room = max(self.cfg.max_inflight * max(1, len(self.parts)) - self.n_out, 0)
        if room == 0:
            return
        if self._due_dirty:  # the read below must see every entry written so far
            self._range_ops(ops)
            if ops:
                self.journal.submit(ops[:])
                ops.clear()
            self.journal.flush()
            self._due_dirty = False
        entries, nxt = self.store.due_until(self.gt, now, room)
        for key, due, p, off, st in entries:
            ops.append((self.store.due_db, key, None))
            self.n_due -= 1
            if p >= len(self.parts) or off in self.parts[p].out:
                continue
            record = self._read_record(p, off)
            if record is None:
                continue
            rec = self._new_rec(p, off, record, in_window=False)
            rec.ready = due
            rec.count, rec.first_ms, rec.error = st.count, st.first_ms, st.error
            self.parts[p].out[off] = rec
            self.n_out += 1
            self._put_state(rec, ops)
            self._push_avail(rec)  # an expired one is archived when picked
        self.due_next = nxt
        if nxt is None and self.n_due < 0:
            self.n_due = 0

    def _next_timer(self, now: int) -> int | None:
        t = self.locks[0][0] if self.locks else None
        if self.due_next is not None and self.n_out < self.cfg.max_inflight * len(self.parts):
            t = self.due_next if t is None else min(t, self.due_next)
        return t

    # ------------------------------------------------------------------ operations
    def receive(self, member: Member, n: int, timeout: float,
                flt: Callable[[Any], bool] | None) -> list[tuple[_Rec, int, int]]:
        """Acquire up to ``n`` records for ``member``; waits up to ``timeout`` s for one.

        Returns ``(record state, delivery count, lock deadline)`` snapshots, durable.
        """
        deadline = time.monotonic() + timeout
        while True:
            dead: list = []
            got: list[tuple[_Rec, int, int]] = []
            seq = 0
            with self.cond:
                self._check_open()
                if member.closed:
                    raise BrokerClosedError("queue consumer is closed")
                now = self.now_ms()
                ops: list = []
                self._ensure_parts(ops)
                self._appended = False
                self._tick(now, ops, dead)
                # Filling the window and picking allocate several objects per record and
                # free none: pausing the cyclic GC meanwhile saves it rescanning them (~30%).
                paused = gc.isenabled()
                if paused:
                    gc.disable()
                try:
                    self._pick(member, n, now, ops, dead, flt, got)
                finally:
                    if paused:
                        gc.enable()
                self._range_ops(ops)
                if ops:
                    seq = self.journal.submit(ops)
                    if not got:
                        self.manager.lazy_commit()
                if not got and not dead:
                    if member.woken:
                        member.woken = False
                        return []
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return []
                    timer = self._next_timer(now)
                    if timer is not None:
                        left = min(left, max(0.0, (timer - now) / 1000) + 0.001)
                    self._n_waiting += 1
                    try:
                        if not self._appended:
                            self.cond.wait(left)
                    finally:
                        self._n_waiting -= 1
                    continue
            if dead:
                self._bury(dead)
            if got:
                try:
                    self.journal.wait(seq)
                except BaseException:
                    self._unreceive(member, got)
                    raise
                return got

    def _unreceive(self, member: Member, got: list[tuple[_Rec, int, int]]) -> None:
        """Give back what a receive acquired when its commit failed (a full disk, say).

        The member never saw those records, so they are available again at once and the
        attempt is not counted: a short disk-full episode must not push healthy jobs toward
        the dead-letter topic or a retry backoff. The change is submitted without waiting (the
        journal keeps the failed batch and retries it with the next commit).
        """
        with self.cond:
            now = self.now_ms()
            ops: list = []
            dead: list = []
            for rec, count, _deadline in got:
                if rec.owner is member and rec.state == ACQUIRED and rec.count == count:
                    self._release(rec, now, ops, dead, None, 0, count_attempt=False)
            self._range_ops(ops)
            if ops:
                self.journal.submit(ops)
            self.cond.notify_all()

    def _pick(self, m: Member, n: int, now: int, ops: list, dead: list,
              flt: Callable[[Any], bool] | None, got: list) -> None:
        self._hot.pick(self, m, n, now, ops, dead, flt, got)  # hot.py: the per-record loop

    def settle(self, member: Member, tokens: list[Settled], action: str, *,
               delay_ms: int | None = None, error: str | None = None,
               lock_ms: int | None = None, count_attempt: bool = True) -> list[int]:
        """ack / nack / reject / renew / release acquisitions; durable when it returns.

        Returns the new lock deadlines for ``renew``. Raises RecordStateError naming the
        records this member no longer holds (lock expired, already settled), after the
        others were settled.
        """
        dead: list = []
        failed: list[tuple[int, int]] = []
        deadlines: list[int] = []
        seq = 0
        with self.cond:
            if self.closed:
                self._check_open()
            now = self.now_ms()
            ops: list = []
            acked: list[_Rec] = []
            self._hot.settle(self, member, tokens, action, now, ops, dead, failed, deadlines,
                             acked, delay_ms, error, lock_ms, count_attempt)
            if acked:
                self.n_acquired -= len(acked)
                self.acked += len(acked)
                self._finish(acked, ops)
            self._range_ops(ops)
            if ops:
                seq = self.journal.submit(ops)
            if action != "renew":
                self.cond.notify_all()
        if action != "renew" and self.watchers:
            self._notify_watchers()
        if dead:
            self._bury(dead)
        if seq:
            self.journal.wait(seq)
        if failed:
            raise RecordStateError(
                f"{len(failed)} record(s) of {self.topic!r} are not held by this member "
                f"(lock expired, or already settled): "
                + ", ".join(f"{p}@{o}" for p, o in failed[:10]))
        return deadlines

    def wakeup(self, member: Member) -> None:
        with self.cond:
            member.woken = True
            self.cond.notify_all()

    def remove_member(self, member: Member, release: bool = True) -> None:
        """A member leaves: what it still holds is available again at once (attempt counted)."""
        dead: list = []
        seq = 0
        with self.cond:
            member.closed = True
            self.members.pop(member.id, None)
            if release and not self.closed:
                ops: list = []
                now = self.now_ms()
                for rec in list(member.held.values()):
                    if rec.state == ACQUIRED and rec.owner is member:
                        self._release(rec, now, ops, dead, "member left", 0)
                self._range_ops(ops)
                if ops:
                    seq = self.journal.submit(ops)
            member.held.clear()
            self.cond.notify_all()
        if self.watchers:
            self._notify_watchers()
        if dead:
            self._bury(dead)
        if seq:
            self.journal.wait(seq)
