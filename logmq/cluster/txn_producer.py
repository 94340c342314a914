"""``connect("kafka://...").producer(transactional_id=...)``: the embedded transactional
producer's API (begin/commit/abort, ``send_offsets_to_transaction``, ``with
producer.transaction():``) on librdkafka's transactions, so exactly-once code moves to a cluster
by its target string. librdkafka does the protocol (InitProducerId, AddPartitionsToTxn,
EndTxn, TxnOffsetCommit); this class keeps the embedded contract around it: sends only inside
a transaction, and a transaction whose send failed can only be aborted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from logmq import errors
from logmq.broker.seeking import as_tp
from logmq.broker.txn_producer import transaction_scope
from logmq.cluster.common import translate
from logmq.cluster.producer import ClusterFuture, ClusterProducer

if TYPE_CHECKING:
    from logmq.cluster.common import ClusterContext

__all__ = ["ClusterTransactionalProducer"]


class ClusterTransactionalProducer(ClusterProducer):
    """A cluster producer whose sends belong to transactions (the owning thread begins,
    commits and aborts them, as in Kafka clients)."""

    def __init__(self, broker: ClusterContext, transactional_id: str, *,
                 transaction_timeout_ms: int = 60_000, **config: Any) -> None:
        if not transactional_id:
            raise errors.ConfigError("transactional_id must be a non-empty string")
        if config.pop("idempotent", True) is False:
            raise errors.ConfigError("a transactional producer is always idempotent")
        kc = dict(config.pop("kafka_config", None) or {})
        kc.setdefault("transactional.id", transactional_id)
        kc.setdefault("transaction.timeout.ms", int(transaction_timeout_ms))
        # librdkafka: a record may not outlive its transaction
        config["delivery_timeout_ms"] = min(int(config.get("delivery_timeout_ms", 120_000)),
                                            int(transaction_timeout_ms))
        super().__init__(broker, idempotent=True, kafka_config=kc, **config)
        self.transactional_id = transactional_id
        self._in_txn = False
        self._txn_error: BaseException | None = None
        self._groups: dict[str, Any] = {}  # group id -> librdkafka's group metadata
        self._call("init", self._p.init_transactions)

    def _call(self, what: str, fn: Any, *args: Any) -> None:
        from confluent_kafka import KafkaException

        try:
            fn(*args, self.max_block)
        except KafkaException as e:
            raise translate(e, what=f"{what} transaction {self.transactional_id!r}") from None

    def _require_txn(self) -> None:
        if not self._in_txn:
            raise errors.InvalidTxnStateError(
                "no transaction is open (begin_transaction first)")

    def begin_transaction(self) -> None:
        if self._in_txn:
            raise errors.InvalidTxnStateError("a transaction is already open")
        self._p.begin_transaction()
        self._in_txn = True

    def commit_transaction(self) -> None:
        """Flush what was sent, then commit: every record and offset becomes visible."""
        self._require_txn()
        if self._txn_error is not None:
            raise errors.InvalidTxnStateError(
                f"a send of this transaction failed ({self._txn_error!r}): it must be "
                "aborted (abort_transaction)") from self._txn_error
        self._call("commit", self._p.commit_transaction)
        self._in_txn = False

    def abort_transaction(self) -> None:
        """Abort: read_committed consumers never see what was sent."""
        self._require_txn()
        self._call("abort", self._p.abort_transaction)
        self._in_txn = False
        self._txn_error = None

    def transaction(self) -> contextlib.AbstractContextManager[ClusterTransactionalProducer]:
        """``with producer.transaction():`` commits on success, aborts on an exception."""
        return transaction_scope(self)

    def send_offsets_to_transaction(self, offsets: Mapping[Any, int], group_id: str) -> None:
        """Commit ``group_id``'s offsets (next offset to read, per partition) with the
        transaction. The group is named by id, as embedded: it commits as an admin would
        (no member generation), which Kafka accepts for a group without live members."""
        from confluent_kafka import Consumer as CKConsumer
        from confluent_kafka import TopicPartition as CKTopicPartition

        self._require_txn()
        meta = self._groups.get(group_id)
        if meta is None:
            probe = CKConsumer(self._broker.client_config({"group.id": group_id}))
            try:
                meta = self._groups[group_id] = probe.consumer_group_metadata()
            finally:
                probe.close()
        tps = []
        for tp, o in offsets.items():
            t = as_tp(tp)
            tps.append(CKTopicPartition(t.topic, t.partition, int(o)))
        self._call("send offsets to", self._p.send_offsets_to_transaction, tps, meta)

    def send(self, topic: str, *args: Any, **kwargs: Any) -> ClusterFuture:
        """As :meth:`ClusterProducer.send`, inside a transaction only."""
        self._require_txn()
        try:
            fut = super().send(topic, *args, **kwargs)
        except BaseException as e:  # as Kafka's producers: any failed send is abort-only
            self._txn_error = self._txn_error or e
            raise
        fut.add_done_callback(self._on_delivery)
        return fut

    def _on_delivery(self, fut: ClusterFuture) -> None:
        e = fut.exception(0)
        if e is not None and self._txn_error is None:
            self._txn_error = e
