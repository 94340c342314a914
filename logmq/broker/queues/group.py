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

import itertools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from logmq.broker.queues.actions import Actions
from logmq.broker.queues.deadletter import DeadLetters
from logmq.broker.queues.hot import SELECTED, Impl
from logmq.broker.queues.model import (
    GroupConfig,
    GroupHost,
    Member,
    QueueStats,
    _Part,
    _Rec,
)
from logmq.broker.queues.state import (
    RecState,
    ShareStateStore,
    check_group_name,
    pack_spso,
)
from logmq.broker.queues.window import Window
from logmq.errors import (
    BrokerClosedError,
    ConfigError,
    UnknownTopicError,
)

if TYPE_CHECKING:
    from logmq.storage.interface import LogStore

__all__ = ["GroupConfig", "ShareGroup", "Member", "QueueStats"]


class ShareGroup(Window, Actions, DeadLetters):
    """State of ``group`` on ``topic``; created and cached by the QueueManager."""

    #: compiled loops where built (LOGMQ_PURE=1: the reference); tests set it per group
    _hot: Impl = SELECTED

    def __init__(self, manager: GroupHost, topic: str, group: str,
                 config: GroupConfig | None) -> None:
        check_group_name(group)
        self.manager = manager
        self.clock = manager.clock
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
        #: callbacks run after records may have become available (settles, leaves, dead
        #: letters), for waiters that cannot block on ``cond`` (the Kafka wire's event loop)
        self.watchers: set[Callable[[], None]] = set()
        self.broker.partitions_for(topic)  # raises UnknownTopicError
        self.store.register(topic, group)
        self.n_due, self.due_next = self.store.due_stats(self.gt)
        ops: list = []
        with self.lock:
            self._ensure_parts(ops)
        self.journal.wait(self.journal.submit(self._range_ops(ops)))

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
            ops.append((self.db, self.store.spso_key(self.gt, p), pack_spso(spso)))
        part = _Part(p, spso, self.store.r_prefix(self.gt, p))
        self.parts.append(part)
        ranges, w, o = self.store.load_partition(self.gt, p)
        rng = part.rng
        for start, end, st in ranges:
            rng.load(start, end, st)
        for off, old in w.items():  # old format: one W key per record; now a range
            ops.append((self.db, self.store.w_key(self.gt, p, off), None))
            rng.set(off, (old.state, old.count, old.first_ms, old.error))
        for off in [x for x in rng.st if x < spso]:
            rng.drop(off)  # stale: below the SPSO
        for off, (state, count, first_ms, error) in rng.st.items():
            part.hints[off] = RecState(state, count, first_ms, error)
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
            now = self.now_ms()
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

    def next_timer_ms(self) -> int | None:
        """Wall-clock ms of the next lock expiry or due retry (None: nothing pending)."""
        with self.lock:
            return self._next_timer(self.now_ms())

    def close(self) -> None:
        with self.cond:
            self.closed = True
            for p in range(len(self.parts)):
                self.broker.remove_waiter((self.topic, p), self._on_append)
            self.cond.notify_all()
