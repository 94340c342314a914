"""A share group's in-memory records: states, per-record and per-partition state, settings."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

from logmq.broker.queues.ranges import RangeMap
from logmq.broker.queues.state import Journal, RecState, ShareStateStore
from logmq.clock import Clock
from logmq.errors import ConfigError
from logmq.types import Record

if TYPE_CHECKING:
    from logmq.storage.interface import LogStore

__all__ = ["GroupConfig", "QueueStats", "Member", "GroupHost", "GroupState"]

# in-memory record states
AVAILABLE = 0
ACQUIRED = 1
DYING = 2  # being copied to the dead-letter topic
GONE = 3  # done or scheduled: no longer in this group's memory
RELEASED = 4  # transient: lock given up, next state being decided

_FETCH_BYTES = 1 << 20
_FILL_BUDGET = 20_000  # records read per fill call at most (bounds the time a lock is held)
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


def validate_lock_ms(lock_ms: Any) -> int:
    """A member's lock duration (ms), checked the same way for local and remote members."""
    try:
        n = int(lock_ms)
    except (TypeError, ValueError):
        n = 0
    if isinstance(lock_ms, bool) or n < 1:
        raise ConfigError(f"lock_ms must be >= 1 (ms), got {lock_ms!r}")
    return n


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
    """One in-window or out-of-window record of a share group and its delivery state.

    ``_native_queue.Rec`` is its compiled twin (the same fields, the same initial values;
    tests/test_queue_native.py compares them): a change here goes there too.
    """

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
    __slots__ = ("p", "spso", "speo", "win", "win_order", "out", "done_keyed", "hints", "cache",
                 "rng")

    def __init__(self, p: int, spso: int, range_prefix: bytes = b"") -> None:
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
        #: the durable state of the window's delivered records, stored as ranges
        self.rng = RangeMap(range_prefix)


Settled = tuple[int, int, int]  # partition, offset, delivery count: one acquisition


class GroupHost(Protocol):
    """What a share group needs of the queue engine that owns it."""

    broker: LogStore
    store: ShareStateStore
    clock: Clock

    def room_changed(self) -> None: ...

    def lazy_commit(self) -> None: ...


class GroupState:
    """The attributes a :class:`~logmq.broker.queues.group.ShareGroup` holds, declared once so
    its parts (window, actions, dead letters) type-check on their own."""

    manager: GroupHost
    broker: LogStore
    store: ShareStateStore
    journal: Journal
    db: Any
    topic: str
    group: str
    configured: bool
    cfg: GroupConfig
    gt: bytes
    lock: threading.Lock
    cond: threading.Condition
    parts: list[_Part]
    avail: list[tuple[int, int, int, int, _Rec, int]]
    _avail_seq: Iterator[int]
    avail_live: int
    locks: list[tuple[int, int, _Rec, int]]
    n_acquired: int
    n_out: int
    due_next: int | None
    n_due: int
    _due_dirty: bool
    members: dict[str, Member]
    _ids: Iterator[int]
    _appended: bool
    _n_waiting: int
    closed: bool
    acked: int
    dead_lettered: int
    archived: int
    watchers: set[Callable[[], None]]
    clock: Clock
    #: the per-record loops and record class in use (``hot.Impl``: compiled or reference)
    _hot: Any

    def _notify_watchers(self) -> None:
        for fn in list(self.watchers):
            fn()

    def _range_ops(self, ops: list) -> list:
        """``ops`` plus the range key writes of every partition's changed window records.

        Called right before each journal submit, under the group's lock, so the range keys
        are committed with (and in the order of) the change that made them.
        """
        db = self.db
        flush = self._hot.flush  # RangeMap.flush, or its compiled twin
        for part in self.parts:
            if part.rng.dirty:
                flush(part.rng, db, ops)
        return ops

    def now_ms(self) -> int:
        """Wall-clock ms from the injected clock (due times, locks, TTLs, timestamps)."""
        return int(self.clock.time() * 1000)

    if TYPE_CHECKING:  # the parts call each other through ShareGroup's MRO
        def _key_of(self, rec: _Rec) -> bytes: ...
        def _advance(self, part: _Part, ops: list) -> None: ...
        def _note_due(self, due: int) -> None: ...
        def _put_state(self, rec: _Rec, ops: list) -> None: ...
        def _push_avail(self, rec: _Rec) -> None: ...
        def _read_record(self, p: int, off: int) -> Record | None: ...
        def _new_rec(self, p: int, off: int, record: Record, in_window: bool) -> _Rec: ...
        def _check_open(self) -> None: ...
        def _ensure_parts(self, ops: list) -> None: ...
        def _bury(self, dead: list) -> None: ...
        def _fill(self, now: int, ops: list, dead: list) -> None: ...
        def _expire(self, rec: _Rec, ops: list, dead: list) -> None: ...
        def _unacquire(self, rec: _Rec) -> None: ...
        def _done(self, rec: _Rec, ops: list) -> None: ...
        def _next_timer(self, now: int) -> int | None: ...
