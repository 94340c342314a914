"""The embedded transactional producer: ``log.producer(transactional_id=...)``.

The same :class:`~logmq.broker.producer.Producer` (batching, linger, futures), with Kafka's
transactional contract: :meth:`init` (done on creation) takes the id's producer id and a new
epoch, fencing any older instance; records are sent between :meth:`begin_transaction` and
:meth:`commit_transaction` / :meth:`abort_transaction`, and become visible to
``isolation_level="read_committed"`` consumers (embedded or over the wire) only on commit.
:meth:`send_offsets_to_transaction` commits a consumer group's offsets with the transaction,
for consume-transform-produce exactly once. The coordinator is the broker's, so embedded and
wire producers of one transactional id fence each other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from logmq.broker.futures import RecordFuture
from logmq.broker.producer import Producer
from logmq.broker.seeking import as_tp
from logmq.codec.records import encode_batch
from logmq.errors import ConfigError, InvalidTxnStateError
from logmq.types import RecordMetadata

if TYPE_CHECKING:
    from logmq.broker.transactions import TransactionCoordinator
    from logmq.storage.interface import LogStore

__all__ = ["TransactionalProducer", "transaction_scope"]

P = TypeVar("P")


@contextlib.contextmanager
def transaction_scope(producer: P) -> Iterator[P]:
    """One transaction of any producer with begin/commit/abort (embedded or cluster): commit
    on success, abort on an exception."""
    producer.begin_transaction()  # type: ignore[attr-defined]
    try:
        yield producer
    except BaseException:
        producer.abort_transaction()  # type: ignore[attr-defined]
        raise
    producer.commit_transaction()  # type: ignore[attr-defined]


class TransactionalProducer(Producer):
    """A producer whose sends belong to transactions. Thread-safe for sends; the
    begin/commit/abort calls are the owning thread's (as in Kafka clients)."""

    def __init__(self, broker: LogStore, coordinator: TransactionCoordinator,
                 transactional_id: str, *, transaction_timeout_ms: int = 60_000,
                 **config: Any) -> None:
        if not transactional_id:
            raise ConfigError("transactional_id must be a non-empty string")
        if config.pop("idempotent", True) is False:
            raise ConfigError("a transactional producer is always idempotent")
        super().__init__(broker, **config)
        self.transactional_id = transactional_id
        self.transaction_timeout_ms = transaction_timeout_ms
        self._coordinator = coordinator
        self.producer_epoch = -1
        self._in_txn = False
        self._added: set[tuple[str, int]] = set()
        self._has_offsets = False
        #: the first append of the open transaction that failed: it can only be aborted
        self._txn_error: BaseException | None = None
        self.init()

    def init(self) -> None:
        """(Re)take the transactional id: a new epoch; an open transaction of an older
        instance is aborted and that instance fenced."""
        self.producer_id, self.producer_epoch = self._coordinator.init_producer_id(
            self.transactional_id, self.transaction_timeout_ms)
        self._seqs.clear()
        self._in_txn = False
        self._added.clear()
        self._has_offsets = False

    # ------------------------------------------------------------------ transactions
    def begin_transaction(self) -> None:
        if self._in_txn:
            raise InvalidTxnStateError("a transaction is already open")
        self._in_txn = True

    def commit_transaction(self) -> None:
        """Flush what was sent, then commit: every record and offset becomes visible."""
        self._finish(True)

    def abort_transaction(self) -> None:
        """Flush what was sent, then abort: read_committed consumers never see it."""
        self._finish(False)

    def _finish(self, commit: bool) -> None:
        if not self._in_txn:
            raise InvalidTxnStateError("no transaction is open (begin_transaction first)")
        try:
            self.flush()
        except BaseException as e:  # the records' fate is unknown: only an abort is safe
            self._txn_error = self._txn_error or e
        if commit and self._txn_error is not None:
            raise InvalidTxnStateError(
                f"a send of this transaction failed ({self._txn_error!r}): it must be "
                "aborted (abort_transaction)") from self._txn_error
        if self._added or self._has_offsets:  # one that sent nothing has nothing to end
            self._coordinator.end_txn(self.transactional_id, self.producer_id,
                                      self.producer_epoch, commit)
        self._in_txn = False
        self._added.clear()
        self._has_offsets = False
        self._txn_error = None

    def transaction(self) -> contextlib.AbstractContextManager[TransactionalProducer]:
        """``with producer.transaction():`` commits on success, aborts on an exception."""
        return transaction_scope(self)

    def send_offsets_to_transaction(self, offsets: Mapping[Any, int], group_id: str) -> None:
        """Commit ``group_id``'s offsets (next offset to read, per partition) with the
        transaction: visible to the group only if the transaction commits."""
        if not self._in_txn:
            raise InvalidTxnStateError("no transaction is open (begin_transaction first)")
        c = self._coordinator
        c.add_offsets(self.transactional_id, self.producer_id, self.producer_epoch, group_id)
        self._has_offsets = True
        held: dict[tuple[str, int], tuple[int, str | None]] = {}
        for tp, o in offsets.items():
            t = as_tp(tp)
            held[(t.topic, t.partition)] = (int(o), None)
        c.txn_offset_commit(self.transactional_id, group_id, self.producer_id,
                            self.producer_epoch, held)

    # ------------------------------------------------------------------ the append
    def send(self, topic: str, *args: Any, **kwargs: Any) -> RecordFuture:
        """As :meth:`Producer.send`, inside a transaction only."""
        self._require_txn()
        try:
            return super().send(topic, *args, **kwargs)
        except BaseException as e:  # as Kafka's producers: any failed send is abort-only
            self._txn_error = self._txn_error or e
            raise

    def send_batch(self, topic: str, *args: Any, **kwargs: Any) -> list[RecordMetadata]:
        self._require_txn()
        try:
            return super().send_batch(topic, *args, **kwargs)
        except BaseException as e:
            self._txn_error = self._txn_error or e
            raise

    def _require_txn(self) -> None:
        if not self._in_txn:
            raise InvalidTxnStateError(
                "a transactional producer sends inside a transaction (begin_transaction)")

    def _append_stamped(self, tp: tuple[str, int], records: Sequence[Sequence[Any]], *,
                        timestamp: int | None = None, timestamps: Sequence[int] | None = None,
                        expected_offset: int | None = None) -> int:
        try:
            return self._append_txn(tp, records, timestamp=timestamp, timestamps=timestamps,
                                    expected_offset=expected_offset)
        except BaseException as e:
            self._txn_error = self._txn_error or e
            raise

    def _append_txn(self, tp: tuple[str, int], records: Sequence[Sequence[Any]], *,
                        timestamp: int | None = None, timestamps: Sequence[int] | None = None,
                        expected_offset: int | None = None) -> int:
        """Append one transactional batch (the caller holds ``tp``'s drain lock)."""
        self._require_txn()
        tp = (tp[0], tp[1])
        c = self._coordinator
        plog = self._broker.partition_log(tp[0], tp[1])  # an unknown partition raises here
        if tp not in self._added:
            c.add_partitions(self.transactional_id, self.producer_id, self.producer_epoch, [tp])
            self._added.add(tp)
        seq = self._seqs.get(tp, 0)
        if timestamps is not None and min(timestamps) == max(timestamps):
            timestamp, timestamps = timestamps[0], None
        data = encode_batch(records, timestamp=timestamp, timestamps=timestamps,
                            compression=self.compression, producer_id=self.producer_id,
                            producer_epoch=self.producer_epoch, base_sequence=seq,
                            transactional=True)
        first, _ = c.append_transactional(
            tp[0], tp[1], self.producer_id, self.producer_epoch,
            lambda: plog.append(data, validate=False, expected_offset=expected_offset))
        self._seqs[tp] = (seq + len(records)) & 0x7FFFFFFF
        return first
