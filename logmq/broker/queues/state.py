"""Durable share-group state in the data directory's LMDB environment, with group commit.

What is stored, per (group, topic, partition), follows Kafka's share groups (KIP-932):

* ``S`` the share-partition start offset (SPSO): every offset below it is done (acknowledged,
  archived, filtered out) or was moved to the due-time index.
* ``R`` the *delivered* records of the in-flight window (offsets at or above the SPSO, at most
  ``max_inflight`` of them) as ranges, like KIP-932's per-batch state: one key per maximal run
  of consecutive offsets with equal state (delivered / done / scheduled), delivery count,
  first delivery time and last error (:mod:`logmq.broker.queues.ranges`). Key: ``R`` group
  \\0 topic \\0, partition (u32 BE), first offset of the run (u64 BE); value: state (u8),
  delivery count (u16, saturating), first delivery ms (i64), end offset exclusive (u64), then
  the last error in utf-8 (absent when none). A receive of 500 consecutive records writes one
  key; a change to a record inside a run splits it (at most three keys rewritten). A record
  of the window without a key was never delivered; records past the window are just log
  offsets. So millions of pending records cost nothing here, and the keys of one partition
  are bounded by the window.
* ``W`` (read only, from versions before ranges): the same state, one key per record (key
  ``W`` group \\0 topic \\0, partition u32, offset u64; value state u8, count u16, first ms
  i64, error). Opening a group migrates them: they are read with the ``R`` keys, rewritten as
  ranges and deleted, in the first commit of the group.
* ``O`` records outside the window that came back from the due-time index (a retry after a
  backoff, or a delayed record whose time came) and wait to be delivered or are delivered.
* the due-time index (its own db): key ``group, topic, due ms, partition, offset``, so the
  earliest due record is the first key of a cursor range; value: delivery count, first
  delivery time, last error.
* ``G`` the groups registered on a topic (for queue depth and topic deletion).

Durability: every state change goes through :class:`Journal`. Changes are submitted in the
order they were made (under the share group's lock) and committed by whichever waiting
thread comes first, all pending changes in one LMDB write transaction (group commit). A
thread that needs durability (ack, acquisition) waits until its change is committed; LMDB's
synchronous commit makes it durable when the wait returns. A crash therefore leaves a prefix
of the changes, never a torn one.

The dedup index for producers' message ids lives here too (:class:`DedupIndex`).
"""

from __future__ import annotations

import errno
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, cast

import lmdb

from logmq.broker.names import group_id_problem
from logmq.broker.queues.ranges import St, unpack_range
from logmq.errors import (
    DiskFullError,
    InvalidGroupIdError,
    LogMQError,
    StorageError,
)

__all__ = [
    "Journal",
    "ShareStateStore",
    "DedupIndex",
    "DELIVERED",
    "DONE",
    "SCHEDULED",
    "RecState",
    "now_ms",
    "check_group_name",
    "group_name_problem",
]

#: W/O key states
DELIVERED = 1  # delivered at least once, not done: available again after a restart
DONE = 2  # acknowledged / archived / filtered; deleted once the SPSO passes it
SCHEDULED = 3  # moved to the due-time index (the index entry holds its counts)

_Q = struct.Struct(">q")
_PO = struct.Struct(">IQ")  # partition, offset
_DPO = struct.Struct(">QIQ")  # due ms, partition, offset
_VAL = struct.Struct(">BHq")  # state, delivery count, first delivery ms
_ERR_MAX = 512


#: packers of a W/O key's (partition, offset) suffix and of an error-free W value, for the
#: share group's hot loops (they build keys as ``w_prefix(gt) + PACK_PO(p, off)``)
PACK_PO = _PO.pack
PACK_VAL = _VAL.pack


def w_prefix(gt: bytes) -> bytes:
    """Prefix of a group's window-state keys (``W`` + group/topic)."""
    return b"W" + gt


def o_prefix(gt: bytes) -> bytes:
    """Prefix of a group's out-of-window (back from the due index) keys."""
    return b"O" + gt


def pack_spso(offset: int) -> bytes:
    """The value of an SPSO key."""
    return _Q.pack(offset)


def group_name_problem(group: str) -> str | None:
    """Why ``group`` cannot name a share group, or None: ``G`` keys join topic and group with a
    NUL, so a NUL inside a name would make two groups share keys; an empty name is no group;
    group and topic must fit in an LMDB key. (The Kafka handlers answer INVALID_GROUP_ID with
    this text.)"""
    return group_id_problem(group)


def check_group_name(group: str) -> None:
    """ConfigError for a name :func:`group_name_problem` refuses."""
    problem = group_name_problem(group)
    if problem:
        raise InvalidGroupIdError(problem)


def now_ms() -> int:
    return int(time.time() * 1000)


class RecState(NamedTuple):
    """A stored record state (W/O keys and due-index values)."""

    state: int
    count: int  # type: ignore[assignment]  # shadows tuple.count on purpose: the stored name
    first_ms: int
    error: str | None


def pack_state(state: int, count: int, first_ms: int, error: str | None) -> bytes:
    err = b"" if not error else error.encode("utf-8", "replace")[:_ERR_MAX]
    return _VAL.pack(state, min(count, 0xFFFF), first_ms) + err


def unpack_state(raw: bytes) -> RecState:
    state, count, first = _VAL.unpack_from(raw)
    err = raw[_VAL.size:]
    return RecState(state, count, first, err.decode("utf-8", "replace") if err else None)


class Journal:
    """Ordered state changes committed in batches; ``wait(seq)`` returns once seq is durable.

    ``submit`` is cheap (a list append under a small lock) so callers can submit while holding
    their own locks, which is what keeps the journal order equal to the order of the changes.
    Committing happens outside those locks, by the first thread that waits (the others find
    their changes committed by it, or commit the next batch): concurrent acks of many workers
    share one LMDB transaction and one fsync.
    """

    def __init__(self, env: lmdb.Environment) -> None:
        self.env = env
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._pending: list[tuple[Any, bytes, bytes | None]] = []
        self._submitted = 0
        self._committed = 0
        self._error: BaseException | None = None

    def submit(self, ops: list[tuple[Any, bytes, bytes | None]]) -> int:
        """Queue ``(db, key, value or None to delete)`` changes; returns their sequence."""
        with self._lock:
            if ops:
                self._pending.extend(ops)
                self._submitted += 1
            return self._submitted

    def wait(self, seq: int) -> None:
        """Block until every submission up to ``seq`` is committed (durable)."""
        if seq <= self._committed:
            return
        with self._commit_lock:
            if seq <= self._committed:
                return
            with self._lock:
                ops = self._pending
                self._pending = []
                upto = self._submitted
            if ops:
                try:
                    self._write(ops)
                except BaseException as e:
                    with self._lock:  # keep them: the next commit retries
                        self._pending[:0] = ops
                    typed = _storage_error(e)
                    if typed is e:
                        raise
                    raise typed from e
            self._committed = upto

    def flush(self) -> None:
        self.wait(self._submitted)

    @property
    def committed(self) -> int:
        return self._committed

    def _write(self, ops: list[tuple[Any, bytes, bytes | None]]) -> None:
        with self.env.begin(write=True) as txn:
            for db, key, value in ops:
                if value is None:
                    txn.delete(key, db=db)
                else:
                    txn.put(key, value, db=db)


def _storage_error(e: BaseException) -> BaseException:
    """A failed commit as a logmq.errors type (callers catch StorageError, not lmdb's tree)."""
    if isinstance(e, LogMQError) or not isinstance(e, (OSError, lmdb.Error)):
        return e
    full = (isinstance(e, lmdb.MapFullError) or getattr(e, "errno", None) == errno.ENOSPC
            or "No space" in str(e))
    cls = DiskFullError if full else StorageError
    return cls(f"share-group state was not committed ({e}); nothing changed for the caller, "
               "the change is retried with the next commit", errno=getattr(e, "errno", None))


class ShareStateStore:
    """Key layout and loading of share-group state (see the module docstring)."""

    def __init__(self, env: lmdb.Environment) -> None:
        self.env = env
        self.db = env.open_db(b"queues")
        self.due_db = env.open_db(b"queue_due")
        self.journal = Journal(env)

    # ------------------------------------------------------------------ keys
    @staticmethod
    def gt(group: str, topic: str) -> bytes:
        return group.encode() + b"\x00" + topic.encode() + b"\x00"

    def spso_key(self, gt: bytes, p: int) -> bytes:
        return b"S" + gt + struct.pack(">I", p)

    def w_key(self, gt: bytes, p: int, off: int) -> bytes:
        """A per-record window key of the old format (read and deleted by migration)."""
        return b"W" + gt + _PO.pack(p, off)

    def r_prefix(self, gt: bytes, p: int) -> bytes:
        """Prefix of a partition's range keys: a key is it + the run's first offset (u64)."""
        return b"R" + gt + struct.pack(">I", p)

    def o_key(self, gt: bytes, p: int, off: int) -> bytes:
        return b"O" + gt + _PO.pack(p, off)

    def due_key(self, gt: bytes, due: int, p: int, off: int) -> bytes:
        return gt + _DPO.pack(max(0, due), p, off)

    @staticmethod
    def group_key(topic: str, group: str) -> bytes:
        return b"G" + topic.encode() + b"\x00" + group.encode()

    # ------------------------------------------------------------------ loading
    def register(self, topic: str, group: str) -> None:
        check_group_name(group)
        with self.env.begin(db=self.db, write=True) as txn:
            txn.put(self.group_key(topic, group), b"", overwrite=False)

    def groups_of(self, topic: str) -> list[str]:
        prefix = b"G" + topic.encode() + b"\x00"
        out = []
        with self.env.begin(db=self.db) as txn:
            cur = txn.cursor()
            if cur.set_range(prefix):
                for k in cur.iternext(values=False):
                    if not k.startswith(prefix):
                        break
                    out.append(k[len(prefix):].decode())
        return out

    def load_spso(self, gt: bytes, p: int) -> int | None:
        with self.env.begin(db=self.db) as txn:
            raw = txn.get(self.spso_key(gt, p))
        return None if raw is None else _Q.unpack(raw)[0]

    def _scan(self, txn: lmdb.Transaction, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        cur = txn.cursor(db=self.db)
        if not cur.set_range(prefix):
            return
        for k, v in cur:
            kb = cast(bytes, k)  # lmdb returns bytes unless opened with buffers=True
            if not kb.startswith(prefix):
                return
            yield kb, cast(bytes, v)

    def load_partition(self, gt: bytes, p: int
                       ) -> tuple[list[tuple[int, int, St]], dict[int, RecState],
                                  dict[int, RecState]]:
        """(window ranges as (start, end, state), old-format window keys by offset,
        out-of-window keys by offset) of one partition."""
        pp = struct.pack(">I", p)
        ranges: list[tuple[int, int, St]] = []
        w: dict[int, RecState] = {}
        o: dict[int, RecState] = {}
        with self.env.begin(db=self.db) as txn:
            prefix = b"R" + gt + pp
            n = len(prefix)
            for k, v in self._scan(txn, prefix):
                end, st = unpack_range(v)
                ranges.append((_Q.unpack(k[n:n + 8])[0], end, st))
            for prefix, dest in ((b"W" + gt + pp, w), (b"O" + gt + pp, o)):
                n = len(prefix)
                for k, v in self._scan(txn, prefix):
                    dest[_Q.unpack(k[n:n + 8])[0]] = unpack_state(v)
        return ranges, w, o

    def due_stats(self, gt: bytes) -> tuple[int, int | None]:
        """(entries, earliest due ms) of a group's due-time index."""
        n = 0
        first = None
        with self.env.begin(db=self.due_db) as txn:
            cur = txn.cursor()
            if cur.set_range(gt):
                for k in cur.iternext(values=False):
                    if not k.startswith(gt):
                        break
                    if first is None:
                        first = _DPO.unpack_from(k, len(gt))[0]
                    n += 1
        return n, first

    def due_until(self, gt: bytes, until: int, limit: int
                  ) -> tuple[list[tuple[bytes, int, int, int, RecState]], int | None]:
        """Up to ``limit`` due entries with due <= until, and the next due time after them."""
        out: list[tuple[bytes, int, int, int, RecState]] = []
        nxt = None
        with self.env.begin(db=self.due_db) as txn:
            cur = txn.cursor()
            if cur.set_range(gt):
                for k, v in cur:
                    if not k.startswith(gt):
                        break
                    due, p, off = _DPO.unpack_from(k, len(gt))
                    if due > until or len(out) >= limit:
                        nxt = due
                        break
                    out.append((bytes(k), due, p, off, unpack_state(v)))
        return out, nxt

    def delete_prefixes(self, gts: list[bytes]) -> None:
        """Remove every key of these (group, topic) pairs (topic deletion)."""
        with self.env.begin(write=True) as txn:
            for gt in gts:
                for db, prefixes in ((self.db, [b"S" + gt, b"W" + gt, b"R" + gt, b"O" + gt]),
                                     (self.due_db, [gt])):
                    cur = txn.cursor(db=db)
                    for prefix in prefixes:
                        while cur.set_range(prefix) and cur.key().startswith(prefix):
                            cur.delete()

    def unregister_topic(self, topic: str) -> list[str]:
        groups = self.groups_of(topic)
        self.delete_prefixes([self.gt(g, topic) for g in groups])
        with self.env.begin(db=self.db, write=True) as txn:
            for g in groups:
                txn.delete(self.group_key(topic, g))
        return groups


class DedupIndex:
    """Message ids seen per topic within their dedup window, with an expiry index.

    ``M topic \\0 msg-id`` -> (expires ms, partition, offset, timestamp) and
    ``E expires ms, topic \\0 msg-id`` for purging. An id is reserved in memory while its first
    send is in flight, so a concurrent duplicate waits for (and returns) that send's result
    instead of appending too. The index entry is committed right after the append is
    acknowledged; a crash between the two can let one later duplicate through.
    """

    _VAL = struct.Struct(">qiqq")

    def __init__(self, store: ShareStateStore, *,
                 time_fn: Callable[[], float] = time.time) -> None:
        self.env = store.env
        self._time = time_fn
        self.db = self.env.open_db(b"queue_dedup")
        self.journal = store.journal
        self._lock = threading.Lock()
        self.pending: dict[bytes, object] = {}
        self._writes = 0

    @staticmethod
    def key(topic: str, msg_id: bytes) -> bytes:
        return b"M" + topic.encode() + b"\x00" + msg_id

    def lookup(self, key: bytes, now: int) -> tuple[int, int, int] | None:
        """(partition, offset, timestamp) of an unexpired earlier send, or None."""
        with self.env.begin(db=self.db) as txn:
            raw = txn.get(key)
        if raw is None:
            return None
        expires, p, off, ts = self._VAL.unpack(raw)
        if expires <= now:
            return None
        return p, off, ts

    def record(self, key: bytes, expires: int, p: int, off: int, ts: int) -> int:
        ops: list[tuple[Any, bytes, bytes | None]] = [
            (self.db, key, self._VAL.pack(expires, p, off, ts)),
            (self.db, b"E" + _Q.pack(expires) + key, b""),
        ]
        self._writes += 1
        if self._writes % 64 == 0:
            ops.extend(self._purge_ops(int(self._time() * 1000)))
        return self.journal.submit(ops)

    def _purge_ops(self, now: int, limit: int = 1000) -> list[tuple[Any, bytes, bytes | None]]:
        ops: list[tuple[Any, bytes, bytes | None]] = []
        with self.env.begin(db=self.db) as txn:
            cur = txn.cursor()
            if not cur.set_range(b"E"):
                return ops
            for k in cur.iternext(values=False):
                if not k.startswith(b"E") or len(ops) >= limit:
                    break
                expires = _Q.unpack_from(k, 1)[0]
                if expires > now:
                    break
                mkey = bytes(k[9:])
                raw = txn.get(mkey)
                if raw is not None and self._VAL.unpack(raw)[0] <= now:
                    ops.append((self.db, mkey, None))
                ops.append((self.db, bytes(k), None))
        return ops

    def delete_topic(self, topic: str) -> None:
        prefix = b"M" + topic.encode() + b"\x00"
        with self.env.begin(db=self.db, write=True) as txn:
            cur = txn.cursor()
            while cur.set_range(prefix) and cur.key().startswith(prefix):
                cur.delete()
