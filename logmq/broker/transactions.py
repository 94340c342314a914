"""The transaction coordinator: Kafka's exactly-once transactions on one node.

A transactional producer (``transactional.id``) gets a producer id and an epoch from
InitProducerId; each call bumps the epoch, which fences every older instance of the same id
(their requests get PRODUCER_FENCED, their writes INVALID_PRODUCER_EPOCH). A transaction is:
AddPartitionsToTxn (and AddOffsetsToTxn for a consumer group) moving the id to ``Ongoing``,
transactional Produce to those partitions (checked here: :meth:`check_produce`),
TxnOffsetCommit holding offsets back, then EndTxn. EndTxn writes ``PrepareCommit`` /
``PrepareAbort`` to LMDB, a COMMIT/ABORT marker to every partition of the transaction, applies
(commit) or drops (abort) the held offsets, and writes ``CompleteCommit`` / ``CompleteAbort``.
The protocol is Kafka's transaction version 1 (no KIP-890 implicit partition adds: logmq does
not advertise the ``transaction.version`` feature, so Kafka 4 clients fall back to v1).

Crash safety: every state change is committed to LMDB before it is answered. On start a
transaction found in a ``Prepare*`` state is completed (markers written again where they may be
missing: a second marker of the same kind is harmless), and an ``Ongoing`` one is aborted once
its ``transaction.timeout.ms`` has passed since it started, as Kafka does; the timeout thread
does the same while the broker runs (bumping the epoch, so the timed-out producer is fenced).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from logmq.broker.names import group_id_problem
from logmq.broker.txn_store import (
    COMPLETE_ABORT,
    COMPLETE_COMMIT,
    ONGOING,
    PREPARE_ABORT,
    PREPARE_COMMIT,
    Offsets,
    TxnMetadata,
    TxnStore,
)
from logmq.clock import SYSTEM_CLOCK, Clock
from logmq.errors import (
    BrokerClosedError,
    ConcurrentTransactionsError,
    InvalidGroupIdError,
    InvalidProducerEpochError,
    InvalidProducerIdMappingError,
    InvalidTransactionalIdError,
    InvalidTransactionTimeoutError,
    InvalidTxnStateError,
    LogMQError,
    ProducerFencedError,
    TransactionalIdNotFoundError,
)
from logmq.storage.log import PartitionLog
from logmq.storage.txn_ops import write_marker

__all__ = ["TransactionCoordinator", "TxnMetadata", "MAX_TIMEOUT_MS", "MAX_EPOCH"]

_log = logging.getLogger("logmq.transactions")
T = TypeVar("T")
#: Kafka's transaction.max.timeout.ms default (15 minutes)
MAX_TIMEOUT_MS = 900_000
#: epochs run up to Short.MAX_VALUE - 1; then the id gets a new producer id at epoch 0
MAX_EPOCH = 32766


class TransactionCoordinator:
    """Transactional ids -> producer ids, epochs and open transactions (thread-safe)."""

    def __init__(self, store: TxnStore, partition_log: Callable[[str, int], PartitionLog],
                 commit_offsets: Callable[[str, Offsets], None],
                 allocate_producer_id: Callable[[], int], *, clock: Clock = SYSTEM_CLOCK,
                 max_timeout_ms: int = MAX_TIMEOUT_MS) -> None:
        self.store = store
        self._partition_log = partition_log
        self._commit_offsets = commit_offsets
        self._allocate = allocate_producer_id
        self.clock = clock
        self.max_timeout_ms = max_timeout_ms
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self.txns: dict[str, TxnMetadata] = store.load()
        self._by_pid: dict[int, TxnMetadata] = {m.producer_id: m for m in self.txns.values()}
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Complete what a crash interrupted, then start the timeout thread."""
        with self._lock:
            for md in list(self.txns.values()):
                if md.state in (PREPARE_COMMIT, PREPARE_ABORT):
                    _log.info("transaction %r was %s at shutdown: completing it",
                              md.transactional_id, md.state)
                    self._complete(md)
        self._thread = threading.Thread(target=self._expire_loop, daemon=True,
                                        name="logmq-txn-timeouts")
        self._thread.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(5)

    def _now_ms(self) -> int:
        return int(self.clock.time() * 1000)

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerClosedError("the transaction coordinator is closed")

    # ------------------------------------------------------------------ InitProducerId
    def init_producer_id(self, transactional_id: str, timeout_ms: int,
                         producer_id: int = -1, producer_epoch: int = -1) -> tuple[int, int]:
        """(producer id, epoch) for a new instance of ``transactional_id``; fences older ones.

        An open transaction of the id is aborted first (the epoch bump fences its writes).
        ``producer_id``/``producer_epoch`` (InitProducerId v3+) identify a running instance
        asking for a fresh epoch; a stale pair is PRODUCER_FENCED.
        """
        if not transactional_id:
            raise InvalidTransactionalIdError("the transactional id is empty")
        if not 0 < timeout_ms <= self.max_timeout_ms:
            raise InvalidTransactionTimeoutError(
                f"transaction.timeout.ms={timeout_ms} must be 1..{self.max_timeout_ms} "
                "(transaction.max.timeout.ms)")
        with self._lock:
            self._check_open()
            md = self.txns.get(transactional_id)
            if md is None:
                md = TxnMetadata(transactional_id, self._allocate(), 0, timeout_ms,
                                 update_ms=self._now_ms())
                self._persist(md)
                self._by_pid[md.producer_id] = md
                return md.producer_id, md.producer_epoch
            if producer_id >= 0 and (producer_id != md.producer_id or producer_epoch not in (
                    md.producer_epoch, md.last_epoch)):
                raise ProducerFencedError(
                    f"producer {producer_id} epoch {producer_epoch} is not the current "
                    f"instance of {transactional_id!r}")
            if md.state in (PREPARE_COMMIT, PREPARE_ABORT):
                raise ConcurrentTransactionsError(f"{transactional_id!r} is completing")
            if md.state == ONGOING:
                self._bump(md)  # fence the old instance, then abort with the new epoch
                self._end(md, commit=False)
            self._bump(md)
            md.last_epoch = -1
            md.timeout_ms = timeout_ms
            md.update_ms = self._now_ms()
            self._persist(md)
            return md.producer_id, md.producer_epoch

    def _bump(self, md: TxnMetadata) -> None:
        if md.producer_epoch >= MAX_EPOCH:
            self._by_pid.pop(md.producer_id, None)
            md.producer_id, md.producer_epoch = self._allocate(), 0
            self._by_pid[md.producer_id] = md
        else:
            md.producer_epoch += 1

    # ------------------------------------------------------------------ checks
    def _current(self, transactional_id: str, producer_id: int, producer_epoch: int
                 ) -> TxnMetadata:
        self._check_open()
        md = self.txns.get(transactional_id)
        if md is None or md.producer_id != producer_id:
            raise InvalidProducerIdMappingError(
                f"producer {producer_id} is not the producer of {transactional_id!r}")
        if producer_epoch != md.producer_epoch:
            raise ProducerFencedError(
                f"producer {producer_id} epoch {producer_epoch} was fenced by epoch "
                f"{md.producer_epoch} of {transactional_id!r}")
        if md.state in (PREPARE_COMMIT, PREPARE_ABORT):
            raise ConcurrentTransactionsError(f"{transactional_id!r} is completing")
        return md

    def _begin(self, md: TxnMetadata) -> None:
        if md.state != ONGOING:
            md.state = ONGOING
            md.start_ms = self._now_ms()
            md.partitions = set()
            md.offsets = {}
            self._wake.notify_all()  # a new deadline for the timeout thread

    # ------------------------------------------------------------------ the transaction
    def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                       partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """AddPartitionsToTxn: error code per partition (all or nothing, as Kafka)."""
        from logmq.kafka_codes import ErrorCode as E

        wanted = list(partitions)
        errors: dict[tuple[str, int], int] = {}
        for tp in wanted:
            try:
                self._partition_log(*tp)
            except LogMQError as e:
                errors[tp] = e.kafka_code
        if errors:
            return {tp: errors.get(tp, E.OPERATION_NOT_ATTEMPTED) for tp in wanted}
        with self._lock:
            md = self._current(transactional_id, producer_id, producer_epoch)
            if md.state == ONGOING and md.partitions.issuperset(wanted):
                return dict.fromkeys(wanted, 0)
            self._begin(md)
            md.partitions.update(wanted)
            self._persist(md)
        return dict.fromkeys(wanted, 0)

    def add_offsets(self, transactional_id: str, producer_id: int, producer_epoch: int,
                    group_id: str) -> None:
        """AddOffsetsToTxn: the group's offsets may now be committed inside the transaction."""
        _check_group(group_id)
        with self._lock:
            md = self._current(transactional_id, producer_id, producer_epoch)
            self._begin(md)
            md.offsets.setdefault(group_id, {})
            self._persist(md)

    def txn_offset_commit(self, transactional_id: str, group_id: str, producer_id: int,
                          producer_epoch: int, offsets: Offsets) -> None:
        """TxnOffsetCommit: offsets held in the transaction, committed only with it."""
        for tp in offsets:  # refused now, not found unwritable at commit time
            self._partition_log(*tp)
        with self._lock:
            md = self._current(transactional_id, producer_id, producer_epoch)
            if md.state != ONGOING or group_id not in md.offsets:
                raise InvalidTxnStateError(
                    f"group {group_id!r} was not added to {transactional_id!r}'s transaction "
                    "(AddOffsetsToTxn first)")
            md.offsets[group_id].update(offsets)
            self._persist(md)

    def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int,
                commit: bool) -> None:
        """EndTxn: write the markers and complete; a retried EndTxn of the same outcome is OK."""
        with self._lock:
            md = self._current(transactional_id, producer_id, producer_epoch)
            if md.state == ONGOING:
                self._end(md, commit)
                return
            done = COMPLETE_COMMIT if commit else COMPLETE_ABORT
            if md.state == done:
                return  # a retry after a lost response
            raise InvalidTxnStateError(
                f"{transactional_id!r} is {md.state}: there is no transaction to "
                f"{'commit' if commit else 'abort'}")

    def _end(self, md: TxnMetadata, commit: bool) -> None:
        md.state = PREPARE_COMMIT if commit else PREPARE_ABORT
        md.update_ms = self._now_ms()
        self._persist(md)
        self._complete(md)

    def _complete(self, md: TxnMetadata) -> None:
        commit = md.state == PREPARE_COMMIT
        for tp in sorted(md.partitions):
            try:
                write_marker(self._partition_log(*tp), md.producer_id, md.producer_epoch,
                             commit)
            except LogMQError as e:  # the topic was deleted meanwhile: nothing to mark
                _log.warning("transaction %r: no %s marker for %s-%d (%s)",
                             md.transactional_id, "COMMIT" if commit else "ABORT", tp[0],
                             tp[1], e)
        if commit:
            for group, offsets in md.offsets.items():
                try:
                    self._commit_offsets(group, offsets)
                except Exception:  # never leave the transaction stuck in PrepareCommit
                    _log.exception("transaction %r: offsets of group %r not committed",
                                   md.transactional_id, group)
        md.state = COMPLETE_COMMIT if commit else COMPLETE_ABORT
        md.partitions = set()
        md.offsets = {}
        md.update_ms = self._now_ms()
        self._persist(md)

    # ------------------------------------------------------------------ produce
    def append_transactional(self, topic: str, partition: int, producer_id: int,
                             producer_epoch: int, append: Callable[[], T]) -> T:
        """Run ``append`` (of a transactional batch) if the producer may write there now.

        Check and append happen under the coordinator's lock, so an EndTxn cannot write its
        marker in between (data after the marker would open a transaction no one ends).
        """
        with self._lock:
            self.check_produce(topic, partition, producer_id, producer_epoch)
            return append()

    def check_produce(self, topic: str, partition: int, producer_id: int,
                      producer_epoch: int) -> None:
        """A transactional batch is accepted only inside its producer's open transaction
        that added the partition (Kafka's partition verification)."""
        with self._lock:
            md = self._by_pid.get(producer_id)
            if md is None:
                raise InvalidProducerIdMappingError(
                    f"producer {producer_id} has no transactional id")
            if producer_epoch < md.producer_epoch:
                raise InvalidProducerEpochError(
                    f"producer {producer_id} epoch {producer_epoch} is older than "
                    f"{md.producer_epoch}")
            if md.state != ONGOING or (topic, partition) not in md.partitions \
                    or producer_epoch != md.producer_epoch:
                raise InvalidTxnStateError(
                    f"{topic}-{partition} is not in an open transaction of producer "
                    f"{producer_id}")

    def write_partition_marker(self, topic: str, partition: int, producer_id: int,
                               producer_epoch: int, commit: bool,
                               coordinator_epoch: int = 0) -> None:
        """A marker for one partition, as WriteTxnMarkers asks (an operator aborting a
        hanging transaction). A stale epoch is refused; the transaction's coordinator state,
        if any, forgets the partition."""
        plog = self._partition_log(topic, partition)
        with self._lock:
            entry = plog.producer_state.producers.get(producer_id)
            if entry is not None and producer_epoch < entry.epoch:
                raise InvalidProducerEpochError(
                    f"producer {producer_id} epoch {producer_epoch} is older than {entry.epoch}")
            write_marker(plog, producer_id, producer_epoch, commit, coordinator_epoch)
            md = self._by_pid.get(producer_id)
            if md is not None and (topic, partition) in md.partitions:
                md.partitions.discard((topic, partition))
                self._persist(md)

    # ------------------------------------------------------------------ timeouts
    def _expire_loop(self) -> None:
        with self._lock:
            while not self._closed:
                now = self._now_ms()
                wait: float | None = None
                for md in list(self.txns.values()):
                    if md.state != ONGOING:
                        continue
                    due = md.start_ms + md.timeout_ms
                    if due <= now:
                        self._expire(md)
                    else:
                        left = (due - now) / 1000
                        wait = left if wait is None else min(wait, left)
                self._wake.wait(wait)

    def _expire(self, md: TxnMetadata) -> None:
        _log.info("transaction %r (producer %d) timed out after %d ms: aborting it",
                  md.transactional_id, md.producer_id, md.timeout_ms)
        try:
            md.last_epoch = md.producer_epoch
            self._bump(md)
            self._end(md, commit=False)
        except LogMQError as e:  # the log is closing or offline: retried on the next start
            _log.warning("transaction %r: timeout abort failed (%s)", md.transactional_id, e)

    def abort_expired(self) -> None:
        """Abort every transaction past its timeout now (what the timeout thread does)."""
        with self._lock:
            now = self._now_ms()
            for md in list(self.txns.values()):
                if md.state == ONGOING and md.start_ms + md.timeout_ms <= now:
                    self._expire(md)

    # ------------------------------------------------------------------ describe
    def describe(self, transactional_id: str) -> TxnMetadata:
        with self._lock:
            md = self.txns.get(transactional_id)
            if md is None:
                raise TransactionalIdNotFoundError(f"no transactional id {transactional_id!r}")
            return _copy(md)

    def list(self, states: Iterable[str] = (), producer_ids: Iterable[int] = (),
             min_duration_ms: int = -1) -> list[TxnMetadata]:
        states, pids = set(states), set(producer_ids)
        now = self._now_ms()
        with self._lock:
            out = []
            for md in self.txns.values():
                if states and md.state not in states:
                    continue
                if pids and md.producer_id not in pids:
                    continue
                if min_duration_ms >= 0 and (md.state != ONGOING
                                             or now - md.start_ms < min_duration_ms):
                    continue
                out.append(_copy(md))
            return sorted(out, key=lambda m: m.transactional_id)

    def pending_offsets(self, group_id: str) -> set[tuple[str, int]]:
        """Partitions of ``group_id`` with offsets held in an open transaction: OffsetFetch
        with ``require_stable`` (v7+) answers UNSTABLE_OFFSET_COMMIT for these, as Kafka."""
        with self._lock:
            out: set[tuple[str, int]] = set()
            for md in self.txns.values():
                if md.state in (ONGOING, PREPARE_COMMIT):
                    out.update(md.offsets.get(group_id, {}))
            return out

    def transactional_id_of(self, producer_id: int) -> str | None:
        with self._lock:
            md = self._by_pid.get(producer_id)
            return md.transactional_id if md is not None else None

    # ------------------------------------------------------------------ persistence
    def _persist(self, md: TxnMetadata) -> None:
        self.store.put(md)
        self.txns[md.transactional_id] = md


def _check_group(group_id: str) -> None:
    """Group ids the offset store can key (logmq.broker.names), and not empty."""
    problem = group_id_problem(group_id)
    if problem:
        raise InvalidGroupIdError(f"group id {group_id[:80]!r} cannot hold offsets: {problem}")


def _copy(md: TxnMetadata) -> TxnMetadata:
    return TxnMetadata(md.transactional_id, md.producer_id, md.producer_epoch, md.timeout_ms,
                       md.state, md.start_ms, md.update_ms, set(md.partitions),
                       {g: dict(o) for g, o in md.offsets.items()}, md.last_epoch)


def describe_row(md: TxnMetadata) -> dict[str, Any]:
    """A DescribeTransactions entry (Kafka's field names)."""
    by_topic: dict[str, list[int]] = {}
    for t, p in sorted(md.partitions):
        by_topic.setdefault(t, []).append(p)
    return {"error_code": 0, "transactional_id": md.transactional_id,
            "transaction_state": md.state, "transaction_timeout_ms": md.timeout_ms,
            "transaction_start_time_ms": md.start_ms if md.state == ONGOING else -1,
            "producer_id": md.producer_id, "producer_epoch": md.producer_epoch,
            "topics": [{"topic": t, "partitions": ps} for t, ps in by_topic.items()]}
