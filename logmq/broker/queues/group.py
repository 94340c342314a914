"""One share group on one topic: which records are available, acquired, scheduled or done.

The model is Kafka's share groups (KIP-932). Per partition, a share-partition start offset
(SPSO) below which everything is done, and an in-flight window ``[SPSO, SPEO)`` of at most
``max_inflight`` offsets that have been read from the log and carry a state. Records past the
window are plain log offsets, so a backlog of millions costs no memory, and the window is what
priorities and redelivery work on.

Record life cycle::

    log ──fill──> AVAILABLE ──receive──> ACQUIRED ──ack──> done
                     ^  ^                 │  │ │
                     │  └── nack(0) ──────┘  │ └─ reject / max attempts ──> DYING ─DLQ─> done
                     │                       │
                     └── due-time index <────┘ nack(delay) / lock expiry (backoff)

* ``deliver-at`` in the future and retry backoffs move a record to the LMDB due-time index
  (it leaves the window, so the SPSO can move on); the earliest due time is the timer the
  receivers wait on, as is the earliest lock deadline: waiting is a ``Condition.wait`` until
  the next event, and appends to the topic wake it. Nothing polls.
* A record delivered ``max_attempts`` times without an ack, and a rejected one, is copied to
  the dead-letter topic (DYING keeps it in the window, so the SPSO cannot pass it, until the
  copy is appended) and then archived.
* Every change is journalled (:class:`~logmq.broker.queues.state.Journal`); acquisitions and
  acknowledgements return only once their change is committed. After a crash, delivered but
  unacknowledged records are available again with their delivery counts (at-least-once),
  acknowledged ones are never delivered again.

Thread safety: one lock per share group; LMDB commits happen outside it.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import random
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

from logmq.broker.queues import options as O
from logmq.broker.queues.state import (
    DELIVERED,
    DONE,
    SCHEDULED,
    RecState,
    ShareStateStore,
    now_ms,
    pack_state,
)
from logmq.codec.batch import CONTROL_MASK, batch_size_at, validate_batch
from logmq.codec.records import decode_records_into, encode_batch
from logmq.errors import (
    BrokerClosedError,
    ConfigError,
    OffsetOutOfRangeError,
    RecordStateError,
    TopicExistsError,
    UnknownTopicError,
)
from logmq.types import Record

if TYPE_CHECKING:
    from logmq.storage.interface import LogStore

__all__ = ["GroupConfig", "ShareGroup", "Member", "QueueStats"]

# in-memory record states
AVAILABLE = 0
ACQUIRED = 1
DYING = 2  # being copied to the dead-letter topic
GONE = 3  # done or scheduled: no longer in this group's memory
RELEASED = 4  # transient: lock given up, next state being decided

_FETCH_BYTES = 1 << 20
_FILL_BUDGET = 20_000  # records read per fill call at most (bounds the time a lock is held)
_Q = struct.Struct(">q")
_PO = struct.Struct(">IQ")  # partition, offset (as in state.py's W keys)
_VAL = struct.Struct(">BHq")  # state.py's W value without an error: state, count, first ms
_PRIO_STEP = 1 << 48  # ms timestamps stay far below this, so priority dominates the key


@dataclass(frozen=True)
class GroupConfig:
    """Settings that belong to the share group, not to one member.

    ``max_attempts`` deliveries without an ack before a record is dead-lettered (default 5);
    retries wait ``backoff_base_ms * 2**(attempt-1)``, capped at ``backoff_max_ms``, with the
    upper ``backoff_jitter`` share of it random (default 0.5: between half and all of it);
    ``dead_letter_topic`` (default ``<topic>.dlq``; ``""`` archives without a copy);
    ``dead_letter_expired`` also copies records whose TTL ran out; ``priority_aging_ms``
    prevents starvation: a record waiting that long gains one priority level (None: strict
    priorities); ``max_inflight`` bounds the window per partition (default 2000);
    ``auto_offset_reset`` is where a new group starts (earliest, the default, or latest).
    """

    max_attempts: int = 5
    backoff_base_ms: int = 500
    backoff_max_ms: int = 60_000
    backoff_jitter: float = 0.5
    dead_letter_topic: str | None = None
    dead_letter_expired: bool = False
    priority_aging_ms: int | None = None
    max_inflight: int = 2000
    auto_offset_reset: str = "earliest"

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("max_attempts must be >= 1")
        if self.backoff_base_ms < 0 or self.backoff_max_ms < self.backoff_base_ms:
            raise ConfigError("need 0 <= backoff_base_ms <= backoff_max_ms")
        if not 0 <= self.backoff_jitter <= 1:
            raise ConfigError("backoff_jitter must be between 0 and 1")
        if self.priority_aging_ms is not None and self.priority_aging_ms <= 0:
            raise ConfigError("priority_aging_ms must be > 0 (or None for strict priority)")
        if self.max_inflight < 1:
            raise ConfigError("max_inflight must be >= 1")
        if self.auto_offset_reset not in ("earliest", "latest"):
            raise ConfigError("auto_offset_reset must be earliest or latest")

    @classmethod
    def split(cls, config: dict[str, Any]) -> tuple[GroupConfig | None, dict[str, Any]]:
        """(group config if any group key was given, the remaining member keys)."""
        names = {f.name for f in fields(cls)}
        mine = {k: config.pop(k) for k in list(config) if k in names}
        return (cls(**mine) if mine else None), config


@dataclass
class QueueStats:
    """A share group's numbers; ``depth`` counts every record not yet done."""

    topic: str
    group: str
    depth: int  # not acknowledged/archived: available + in flight + scheduled
    available: int  # could be delivered now (includes the backlog not read yet)
    in_flight: int  # acquired by a member, lock held
    scheduled: int  # waiting for a deliver-at time or a retry backoff
    oldest_unacked_age_ms: int | None
    dlq_size: int  # records in the dead-letter topic
    acked: int  # since this process opened the group
    dead_lettered: int
    archived: int  # expired (TTL) and filtered-out records
    members: int


class Member:
    """One receiving member of a share group (a QueueConsumer or a remote one)."""

    __slots__ = ("id", "lock_ms", "held", "woken", "closed")

    def __init__(self, member_id: str, lock_ms: int) -> None:
        self.id = member_id
        self.lock_ms = lock_ms
        self.held: dict[tuple[int, int], _Rec] = {}
        self.woken = False
        self.closed = False


class _Rec:
    __slots__ = ("p", "off", "record", "state", "count", "owner", "deadline", "ver", "first_ms",
                 "error", "prio", "ready", "expires", "in_window", "keyed")

    def __init__(self, p: int, off: int, record: Record, in_window: bool) -> None:
        self.p = p
        self.off = off
        self.record = record
        self.state = AVAILABLE
        self.count = 0
        self.owner: Member | None = None
        self.deadline = 0
        self.ver = 0
        self.first_ms = 0
        self.error: str | None = None
        self.prio = 0
        self.ready = record.timestamp
        self.expires: int | None = None
        self.in_window = in_window
        self.keyed = False


class _Part:
    __slots__ = ("p", "spso", "speo", "win", "win_order", "out", "done_keyed", "hints", "cache")

    def __init__(self, p: int, spso: int) -> None:
        self.p = p
        self.spso = spso
        self.speo = spso
        self.win: dict[int, _Rec] = {}  # pending records of [spso, speo)
        #: their offsets in increasing order (records enter the window in log order), lazily
        #: pruned: the first one still in ``win`` is the SPSO
        self.win_order: deque[int] = deque()
        self.out: dict[int, _Rec] = {}  # records back from the due-time index
        self.done_keyed: list[int] = []  # window offsets with a DONE/SCHEDULED key to delete
        self.hints: dict[int, RecState] = {}  # window keys found at load, used by the next fill
        #: (decoded records, next index, batch's next offset) of a batch only partly admitted
        self.cache: tuple[list, int, int] | None = None


Settled = tuple[int, int, int]  # partition, offset, delivery count: one acquisition


class GroupHost(Protocol):
    """What a share group needs of the queue engine that owns it."""

    broker: LogStore
    store: ShareStateStore

    def room_changed(self) -> None: ...

    def lazy_commit(self) -> None: ...


class ShareGroup:
    """State of ``group`` on ``topic``; created and cached by the QueueManager."""

    def __init__(self, manager: GroupHost, topic: str, group: str,
                 config: GroupConfig | None) -> None:
        if not group or "\x00" in group:
            raise ConfigError("a group name must be non-empty and contain no NUL")
        self.manager = manager
        self.broker: LogStore = manager.broker
        self.store: ShareStateStore = manager.store
        self.journal = manager.store.journal
        self.db = self.store.db
        self.topic = topic
        self.group = group
        self.configured = config is not None
        self.cfg = config or GroupConfig()
        self.gt = ShareStateStore.gt(group, topic)
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.parts: list[_Part] = []
        #: (priority key, partition, offset, tie-break, record, version): equal keys go in log
        #: order; stale entries (version moved on) are skipped when popped
        self.avail: list[tuple[int, int, int, int, _Rec, int]] = []
        self._avail_seq = itertools.count()
        self.avail_live = 0
        #: (lock deadline, tie-break, record, version) of acquisitions; settled ones go stale
        self.locks: list[tuple[int, int, _Rec, int]] = []
        self.n_acquired = 0
        self.n_out = 0
        self.due_next: int | None = None
        self.n_due = 0
        self._due_dirty = False
        self.members: dict[str, Member] = {}
        self._ids = itertools.count(1)
        self._appended = False
        self._n_waiting = 0
        self.closed = False
        self.acked = 0
        self.dead_lettered = 0
        self.archived = 0
        self.broker.partitions_for(topic)  # raises UnknownTopicError
        self.store.register(topic, group)
        self.n_due, self.due_next = self.store.due_stats(self.gt)
        ops: list = []
        with self.lock:
            self._ensure_parts(ops)
        self.journal.wait(self.journal.submit(ops))

    # ------------------------------------------------------------------ setup
    def configure(self, config: GroupConfig | None) -> None:
        """Adopt a member's group settings; the first member's win, others must agree."""
        if config is None:
            return
        with self.lock:
            if not self.configured:
                self.cfg = config
                self.configured = True
            elif config != self.cfg:
                raise ConfigError(
                    f"share group {self.group!r} on {self.topic!r} is already open with "
                    f"{self.cfg}; members of one group must use the same group settings")

    def _ensure_parts(self, ops: list) -> None:
        n = self.broker.partitions_for(self.topic)
        for p in range(len(self.parts), n):
            self._load_part(p, ops)
            self.broker.add_waiter((self.topic, p), self._on_append)

    def _load_part(self, p: int, ops: list) -> None:
        plog = self.broker.partition_log(self.topic, p)
        spso = self.store.load_spso(self.gt, p)
        if spso is None:
            spso = plog.log_start_offset if self.cfg.auto_offset_reset == "earliest" \
                else plog.next_offset
            ops.append((self.db, self.store.spso_key(self.gt, p), _Q.pack(spso)))
        part = _Part(p, spso)
        self.parts.append(part)
        w, o = self.store.load_partition(self.gt, p)
        for off, st in w.items():
            if off < spso:
                ops.append((self.db, self.store.w_key(self.gt, p, off), None))  # stale
            else:
                part.hints[off] = st
        for off, st in o.items():
            record = self._read_record(p, off)
            if record is None:  # deleted by retention meanwhile
                ops.append((self.db, self.store.o_key(self.gt, p, off), None))
                continue
            rec = self._new_rec(p, off, record, in_window=False)
            rec.count, rec.first_ms, rec.error, rec.keyed = st.count, st.first_ms, st.error, True
            part.out[off] = rec
            self.n_out += 1
            self._push_avail(rec)

    def _on_append(self) -> None:
        # Called in the appending thread after every append: cheap unless someone waits.
        self._appended = True
        if self._n_waiting:
            with self.cond:
                self.cond.notify_all()

    def add_member(self, lock_ms: int, prefix: str = "m") -> Member:
        with self.lock:
            self._check_open()
            m = Member(f"{prefix}-{next(self._ids)}", lock_ms)
            self.members[m.id] = m
            return m

    def _check_open(self) -> None:
        if self.closed:
            if self.broker.closed:
                raise BrokerClosedError("the log is closed")
            raise UnknownTopicError(self.topic)

    # ------------------------------------------------------------------ records
    def _new_rec(self, p: int, off: int, record: Record, in_window: bool) -> _Rec:
        rec = _Rec(p, off, record, in_window)
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

    def _lookup(self, p: int, off: int, in_window: bool | None = None) -> _Rec | None:
        if p >= len(self.parts):
            return None
        part = self.parts[p]
        if in_window is None:
            return part.out.get(off) or part.win.get(off)
        return (part.win if in_window else part.out).get(off)

    def _key_of(self, rec: _Rec) -> bytes:
        if rec.in_window:
            return self.store.w_key(self.gt, rec.p, rec.off)
        return self.store.o_key(self.gt, rec.p, rec.off)

    def _put_state(self, rec: _Rec, ops: list) -> None:
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
        topic, p = self.topic, part.p
        hints = part.hints
        win = part.win
        win_order = part.win_order
        avail = self.avail
        seq = self._avail_seq
        push = heapq.heappush
        aging = self.cfg.priority_aging_ms
        base = 9 * _PRIO_STEP if aging is None else 0  # the key of priority 0 (_push_avail)
        plain = 0
        for off, ts, k, v, hdrs in raw:
            hint = hints.pop(off, None) if hints else None
            record = Record(topic, p, off, ts, k, v, hdrs)
            if hint is None and not hdrs:
                # No options and never delivered: available now. What _new_rec and
                # _push_avail do, inlined, as nearly every record takes this path.
                rec = _Rec(p, off, record, True)
                rec.ver = 1
                win[off] = rec
                win_order.append(off)
                push(avail, (base + ts, p, off, next(seq), rec, 1))
                plain += 1
                continue
            if hint is not None and hint.state != DELIVERED:
                heapq.heappush(part.done_keyed, off)  # done, or in the due-time index
                continue
            rec = self._new_rec(p, off, record, in_window=True)
            if hint is not None:
                rec.count, rec.first_ms, rec.error, rec.keyed = (
                    hint.count, hint.first_ms, hint.error, True)
            elif rec.ready > now and rec.ready != ts:  # deliver-at in the future
                due = rec.ready
                ops.append((self.store.due_db, self.store.due_key(self.gt, due, p, off),
                            pack_state(SCHEDULED, 0, 0, None)))
                ops.append((self.db, self.store.w_key(self.gt, p, off),
                            pack_state(SCHEDULED, 0, 0, None)))
                heapq.heappush(part.done_keyed, off)
                self._note_due(due)
                continue
            win[off] = rec
            win_order.append(off)
            if rec.expires is not None and rec.expires <= now:
                self._expire(rec, ops, dead)
            else:
                self._push_avail(rec)
        self.avail_live += plain
        if hints:
            for off in [o for o in hints if o < part.speo]:  # offsets the log no longer has
                hints.pop(off)
                heapq.heappush(part.done_keyed, off)

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
        while dk and dk[0] < new:
            ops.append((self.db, self.store.w_key(self.gt, part.p, heapq.heappop(dk)), None))
        ops.append((self.db, self.store.spso_key(self.gt, part.p), _Q.pack(new)))

    def _note_due(self, due: int) -> None:
        self.n_due += 1
        if self.due_next is None or due < self.due_next:
            self.due_next = due
        self._due_dirty = True  # its entry may not be committed yet: flush before reading

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
        touched: dict[int, _Part] = {}
        parts = self.parts
        for rec in recs:
            if rec.state == ACQUIRED:
                self._unacquire(rec)
            rec.state = GONE
            rec.ver += 1
            part = parts[rec.p]
            if rec.in_window:
                del part.win[rec.off]
                touched[rec.p] = part
            else:
                del part.out[rec.off]
                self.n_out -= 1
                ops.append((self.db, self._key_of(rec), None))
        if not touched:
            self.manager.room_changed()
            return
        for part in touched.values():
            self._advance(part, ops)
        db = self.db
        w_prefix = b"W" + self.gt
        po = _PO.pack
        add_op = ops.append
        for rec in recs:
            if rec.in_window and rec.keyed:
                part = parts[rec.p]
                if rec.off < part.spso:
                    add_op((db, w_prefix + po(rec.p, rec.off), None))
                else:
                    add_op((db, w_prefix + po(rec.p, rec.off),
                            pack_state(DONE, rec.count, 0, None)))
                    heapq.heappush(part.done_keyed, rec.off)
        self.manager.room_changed()

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
            ops.append((self.db, self._key_of(rec), pack_state(SCHEDULED, rec.count, 0, None)))
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
            self.locks = [e for e in locks if self._lock_valid(e)]
            heapq.heapify(self.locks)
        if self.due_next is not None and self.due_next <= now:
            self._load_due(now, ops)

    @staticmethod
    def _lock_valid(e: tuple[int, int, _Rec, int]) -> bool:
        return e[2].ver == e[3] and e[2].state == ACQUIRED

    def _load_due(self, now: int, ops: list) -> None:
        room = max(self.cfg.max_inflight * max(1, len(self.parts)) - self.n_out, 0)
        if room == 0:
            return
        if self._due_dirty:  # the read below must see every entry written so far
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
                now = now_ms()
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
                self.journal.wait(seq)
                return got

    def _pick(self, m: Member, n: int, now: int, ops: list, dead: list,
              flt: Callable[[Any], bool] | None, got: list) -> None:
        self._fill(now, ops, dead)
        avail = self.avail
        max_attempts = self.cfg.max_attempts
        heappop, heappush = heapq.heappop, heapq.heappush
        locks = self.locks
        lock_seq = self._avail_seq
        held = m.held
        deadline = now + m.lock_ms
        db = self.db
        w_prefix = b"W" + self.gt
        o_prefix = b"O" + self.gt
        po = _PO.pack
        val = _VAL.pack
        add_op = ops.append
        while len(got) < n and avail:
            rec, ver = heappop(avail)[4:]
            if rec.ver != ver or rec.state != AVAILABLE:
                continue
            self.avail_live -= 1
            if rec.expires is not None and rec.expires <= now:
                self._expire(rec, ops, dead)
                continue
            if rec.count >= max_attempts:  # delivered that often before a crash
                self._dead(rec, "max-attempts", rec.error, ops, dead)
                continue
            if flt is not None and not flt(rec.record):
                self.archived += 1
                self._done(rec, ops)
                continue
            rec.state = ACQUIRED
            rec.owner = m
            count = rec.count = rec.count + 1
            ver = rec.ver = rec.ver + 1
            if not rec.first_ms:
                rec.first_ms = now
            rec.deadline = deadline
            heappush(locks, (deadline, next(lock_seq), rec, ver))
            self.n_acquired += 1
            p = rec.p
            off = rec.off
            held[(p, off)] = rec
            # the durable delivery count (what _put_state writes, inlined: this is per record)
            add_op((db, (w_prefix if rec.in_window else o_prefix) + po(p, off),
                    val(DELIVERED, count if count < 0xFFFF else 0xFFFF, rec.first_ms)
                    if rec.error is None else
                    pack_state(DELIVERED, count, rec.first_ms, rec.error)))
            rec.keyed = True
            got.append((rec, count, deadline))
            if not avail or len(got) >= n:
                break
            if len(avail) < 8:
                self._fill(now, ops, dead)

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
            now = now_ms()
            ops: list = []
            acked: list[_Rec] = []
            held = member.held
            for p, off, count in tokens:
                rec = held.get((p, off))
                if rec is None or rec.state != ACQUIRED or rec.owner is not member \
                        or rec.count != count:
                    failed.append((p, off))
                    continue
                if rec.deadline < now:  # expired before anyone noticed: too late now
                    self._release(rec, now, ops, dead, "lock expired", None)
                    failed.append((p, off))
                    continue
                if action == "ack":  # _unacquire, inlined: a second token for it then fails
                    rec.state = RELEASED
                    rec.owner = None
                    del held[(p, off)]
                    acked.append(rec)
                elif action == "nack":
                    self._release(rec, now, ops, dead, error, delay_ms)
                elif action == "reject":
                    self._dead(rec, "rejected", error or "rejected", ops, dead)
                elif action == "renew":
                    rec.deadline = now + (lock_ms if lock_ms is not None else member.lock_ms)
                    rec.ver += 1
                    heapq.heappush(self.locks, (rec.deadline, next(self._avail_seq), rec,
                                                rec.ver))
                    deadlines.append(rec.deadline)
                elif action == "release":
                    self._release(rec, now, ops, dead, None, 0, count_attempt)
                else:
                    raise ValueError(f"unknown action {action!r}")
            if acked:
                self.n_acquired -= len(acked)
                self.acked += len(acked)
                self._finish(acked, ops)
            if ops:
                seq = self.journal.submit(ops)
            if action != "renew":
                self.cond.notify_all()
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
                now = now_ms()
                for rec in list(member.held.values()):
                    if rec.state == ACQUIRED and rec.owner is member:
                        self._release(rec, now, ops, dead, "member left", 0)
                if ops:
                    seq = self.journal.submit(ops)
            member.held.clear()
            self.cond.notify_all()
        if dead:
            self._bury(dead)
        if seq:
            self.journal.wait(seq)

    # ------------------------------------------------------------------ dead letters
    def dlq_topic(self) -> str:
        return self.cfg.dead_letter_topic or f"{self.topic}.dlq"

    def _bury(self, dead: list) -> None:
        """Copy dying records to the dead-letter topic, then archive them (outside the lock)."""
        dlq = self.dlq_topic()
        now = now_ms()
        try:
            try:
                n = self.broker.partitions_for(dlq)
            except UnknownTopicError:
                try:
                    self.broker.create_topic(dlq, partitions=len(self.parts))
                except TopicExistsError:
                    pass
                n = self.broker.partitions_for(dlq)
            by_part: dict[int, list[tuple]] = {}
            for rec, _ver, reason, error in dead:
                r = rec.record
                hdrs = [(k, v) for k, v in (r.headers or ())
                        if k not in (O.DELIVER_AT, O.EXPIRES_AT) and not k.startswith("logmq.dlq.")]
                hdrs += [
                    (O.DLQ_TOPIC, self.topic.encode()),
                    (O.DLQ_PARTITION, b"%d" % rec.p),
                    (O.DLQ_OFFSET, b"%d" % rec.off),
                    (O.DLQ_GROUP, self.group.encode()),
                    (O.DLQ_ATTEMPTS, b"%d" % rec.count),
                    (O.DLQ_REASON, reason.encode()),
                    (O.DLQ_ERROR, (error or "").encode("utf-8", "replace")[:4096]),
                    (O.DLQ_PRODUCED_AT, b"%d" % r.timestamp),
                    (O.DLQ_DEAD_AT, b"%d" % now),
                ]
                if rec.first_ms:
                    hdrs.append((O.DLQ_FIRST_DELIVERY_AT, b"%d" % rec.first_ms))
                by_part.setdefault(rec.p % n, []).append((r.key, r.value, hdrs))
            for p, recs in by_part.items():
                self.broker.append_batches((dlq, p), encode_batch(recs, timestamp=now))
        except BaseException:
            with self.cond:  # not copied: leave them to be retried
                for rec, ver, _reason, _error in dead:
                    if rec.ver == ver and rec.state == DYING:
                        self._push_avail(rec)
                self.cond.notify_all()
            raise
        with self.cond:
            ops: list = []
            for rec, ver, _reason, _error in dead:
                if rec.ver == ver and rec.state == DYING:
                    self.dead_lettered += 1
                    self._done(rec, ops)
            seq = self.journal.submit(ops) if ops else 0
            self.cond.notify_all()
        if seq:
            self.journal.wait(seq)

    # ------------------------------------------------------------------ numbers
    def depth_fast(self) -> int:
        """Records not done, without taking the lock (approximate while it changes)."""
        total = self.n_due
        for part in self.parts:
            end = self.broker.partition_log(self.topic, part.p).next_offset
            total += len(part.win) + len(part.out) + max(0, end - part.speo)
        return total

    def stats(self) -> QueueStats:
        with self.lock:
            now = now_ms()
            backlog = 0
            oldest: int | None = None
            pending = 0
            for part in self.parts:
                plog = self.broker.partition_log(self.topic, part.p)
                unread = max(0, plog.next_offset - part.speo)
                backlog += unread
                pending += len(part.win) + len(part.out)
                for rec in itertools.chain(part.win.values(), part.out.values()):
                    ts = rec.record.timestamp
                    if oldest is None or ts < oldest:
                        oldest = ts
                if not part.win and unread:
                    first = self._read_record(part.p, max(part.speo, plog.log_start_offset))
                    if first is not None and (oldest is None or first.timestamp < oldest):
                        oldest = first.timestamp
            dlq_size = 0
            try:
                for p in range(self.broker.partitions_for(self.dlq_topic())):
                    s, e = self.broker.offsets((self.dlq_topic(), p))
                    dlq_size += e - s
            except UnknownTopicError:
                pass
            return QueueStats(
                topic=self.topic, group=self.group,
                depth=pending + backlog + self.n_due,
                available=self.avail_live + backlog,
                in_flight=self.n_acquired,
                scheduled=self.n_due,
                oldest_unacked_age_ms=None if oldest is None else max(0, now - oldest),
                dlq_size=dlq_size, acked=self.acked, dead_lettered=self.dead_lettered,
                archived=self.archived, members=len(self.members))

    def window_sizes(self) -> list[tuple[int, int, int]]:
        """(in-window records, out-of-window records, window span) per partition (tests)."""
        with self.lock:
            return [(len(pt.win), len(pt.out), pt.speo - pt.spso) for pt in self.parts]

    def close(self) -> None:
        with self.cond:
            self.closed = True
            for p in range(len(self.parts)):
                self.broker.remove_waiter((self.topic, p), self._on_append)
            self.cond.notify_all()
