"""``log.queue(topic, group)`` on a Kafka cluster: a KIP-932 share group member.

The embedded queue engine and Kafka's share groups are the same model (per-record locks,
delivery counts, a share-partition start offset), so most of the API maps one to one on
confluent-kafka's ``ShareConsumer`` in explicit acknowledgement mode:

==========================  ===============================================================
embedded                    on Kafka (4.4)
==========================  ===============================================================
``ack()``                   ACCEPT, committed (``commit_sync``) before it returns
``nack()`` / ``nack(0)``    RELEASE: available again at once (Kafka has no retry backoff)
``nack(delay=s > 0)``       UnsupportedOnClusterError (no delayed redelivery in Kafka)
``reject(reason)``          REJECT: to the dead-letter topic; Kafka writes its own reason
``release()``               RELEASE; Kafka counts it as a delivery either way
``renew()``                 UnsupportedOnClusterError (confluent-kafka 2.16 has no RENEW)
``delivery_count``          the broker's delivery count (``Message.delivery_count()``)
``max_attempts``            group config ``share.delivery.count.limit`` (Kafka: 2..10)
``lock_ms``                 group config ``share.record.lock.duration.ms`` (15 s..60 s):
                            the whole group's, not one member's
``auto_offset_reset``       group config ``share.auto.offset.reset`` (default earliest, as
                            embedded; Kafka's own default is latest)
``max_inflight``            group config ``share.partition.max.record.locks``
dead-letter topic           Kafka's own DLQ (KIP-1191): group config
                            ``errors.deadletterqueue.topic.name`` with the original record
                            copied; default ``dlq.<topic>`` (Kafka requires the ``dlq.``
                            prefix unless its broker says otherwise), created here with
                            ``errors.deadletterqueue.group.enable=true``; headers are Kafka's
                            ``__dlq.errors.*`` (topic, partition, offset, group,
                            delivery.count, message)
``filter``                  client side: records that do not match are ACCEPTed unseen (an
                            embedded filter archives them too)
backoff, priorities, TTL    UnsupportedOnClusterError when asked for (``backoff_*``,
                            ``priority_aging_ms``, ``dead_letter_expired``); the producer
                            refuses ``priority``/``delay_ms``/``ttl`` sends on a cluster
``stats()``                 depth from DescribeShareGroupOffsets' lag, the DLQ's size;
                            -1 for what Kafka does not report (available, in flight)
``reply()``                 UnsupportedOnClusterError
==========================  ===============================================================

Kafka's share consumer must have every record of one poll acknowledged before it polls
again, and is not thread-safe. So records of a poll are handed out over several
``receive()`` calls, one lock serialises the consumer, and ``receive()`` waits in short
slices so acks from other threads get in between. A ``receive()`` while records handed out
earlier are still unsettled and nothing is buffered raises RecordStateError: Kafka would
refuse the poll.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from confluent_kafka import AcknowledgeType, KafkaError, KafkaException, ShareConsumer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from logmq import errors
from logmq.broker.queues.filters import FilterSpec, make_filter
from logmq.broker.queues.model import GroupConfig, QueueStats, validate_lock_ms
from logmq.broker.queues.queue import QueueRecord, SettleVerbs
from logmq.cluster.common import ClusterContext, translate
from logmq.types import Record

__all__ = ["ClusterQueue", "DLQ_ENABLE", "dlq_topic_for"]

#: topic config a Kafka 4.4 broker needs on a topic before it writes a group's dead letters
DLQ_ENABLE = "errors.deadletterqueue.group.enable"
_SLICE = 0.1  # longest a receive() holds the consumer lock per poll
_DEFAULT_LOCK_MS = 30_000

#: GroupConfig keys with no Kafka equivalent, and why (raised only when set to non-defaults)
_NOT_ON_KAFKA = {
    "backoff_base_ms": "Kafka redelivers a released record at once (no retry backoff)",
    "backoff_max_ms": "Kafka redelivers a released record at once (no retry backoff)",
    "backoff_jitter": "Kafka redelivers a released record at once (no retry backoff)",
    "priority_aging_ms": "Kafka share groups deliver in log order (no priorities)",
    "dead_letter_expired": "Kafka records have no per-record TTL",
}


def dlq_topic_for(topic: str, configured: str | None) -> str | None:
    """The dead-letter topic of a queue on ``topic`` on Kafka (None: no DLQ, archive)."""
    if configured == "":
        return None
    return configured or f"dlq.{topic}"


def _unsupported(what: str, why: str) -> errors.UnsupportedOnClusterError:
    return errors.UnsupportedOnClusterError(f"{what} on a Kafka cluster: {why}")


class ClusterQueue(SettleVerbs):
    """One member of share group ``group`` on ``topic`` on a cluster (see the module table)."""

    def __init__(self, broker: ClusterContext, topic: str, group: str = "workers", *,
                 lock_ms: int | None = None, filter: FilterSpec | None = None,  # noqa: A002
                 key_deserializer: Callable[[Any], Any] | None = None,
                 value_deserializer: Callable[[Any], Any] | None = None,
                 kafka_config: dict[str, Any] | None = None,
                 **group_config: Any) -> None:
        if not group or "\x00" in group:
            raise errors.ConfigError("a group name must be non-empty and contain no NUL")
        given = dict(group_config)
        cfg, rest = GroupConfig.split(dict(group_config))
        if rest:
            raise errors.ConfigError(f"unknown queue config: {', '.join(sorted(rest))}")
        cfg = cfg or GroupConfig()
        defaults = GroupConfig()
        for key, why in _NOT_ON_KAFKA.items():
            if key in given and getattr(cfg, key) != getattr(defaults, key):
                raise _unsupported(f"log.queue({key}=...)", why)
        self._broker = broker
        self.topic = topic
        self.group = group
        self.lock_ms = validate_lock_ms(lock_ms if lock_ms is not None else _DEFAULT_LOCK_MS)
        self.dead_letter_topic = dlq_topic_for(topic, cfg.dead_letter_topic)
        self._cfg = cfg
        self._filter = make_filter(filter)
        self._kdes, self._vdes = key_deserializer, value_deserializer
        n = broker.partitions_for(topic)  # UnknownTopicError before anything changes
        if self.dead_letter_topic is not None:
            self._ensure_dlq(self.dead_letter_topic, n)
        self._configure_group(cfg, lock_ms)
        self.member_id = f"{group}-{uuid.uuid4().hex[:12]}"
        conf = broker.client_config({"group.id": group, "share.acknowledgement.mode": "explicit",
                                     "client.id": "logmq-queue"})
        conf.update(kafka_config or {})
        self._c = ShareConsumer(conf)
        self._lock = threading.RLock()
        #: polled (acquired) and not handed out yet, with the wall-clock ms of the poll
        self._buffer: deque[tuple[Any, int]] = deque()
        self._out: dict[tuple[int, int], Any] = {}  # handed out, not settled: message by key
        self._closed = False
        self._woken = False
        self._acked = 0
        try:
            self._c.subscribe([topic])
        except KafkaException as e:
            self._c.close()
            raise translate(e, topic, None, "share subscribe") from None

    @property
    def config(self) -> GroupConfig:
        return self._cfg

    # ------------------------------------------------------------------ group setup
    def _ensure_dlq(self, name: str, partitions: int) -> None:
        """The DLQ topic exists and the broker may write dead letters into it."""
        b = self._broker
        try:
            b.partitions_for(name)
        except errors.UnknownTopicError:
            b.create_topic(name, partitions, {DLQ_ENABLE: "true"}, exist_ok=True)
            return
        if str(b.topic_config(name).get(DLQ_ENABLE, "")).lower() != "true":
            b.alter_topic_config(name, {DLQ_ENABLE: "true"})

    def _configure_group(self, cfg: GroupConfig, lock_ms: int | None) -> None:
        """Group settings as share-group configs; Kafka checks the ranges (ConfigError)."""
        sets = {
            "share.auto.offset.reset": cfg.auto_offset_reset,
            "share.delivery.count.limit": str(cfg.max_attempts),
        }
        if lock_ms is not None:
            sets["share.record.lock.duration.ms"] = str(self.lock_ms)
        if cfg.max_inflight != GroupConfig().max_inflight:
            sets["share.partition.max.record.locks"] = str(cfg.max_inflight)
        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                   for k, v in sets.items()]
        if self.dead_letter_topic is not None:
            entries += [
                ConfigEntry("errors.deadletterqueue.topic.name", self.dead_letter_topic,
                            incremental_operation=AlterConfigOpType.SET),
                ConfigEntry("errors.deadletterqueue.copy.record.enable", "true",
                            incremental_operation=AlterConfigOpType.SET)]
        else:
            entries.append(ConfigEntry("errors.deadletterqueue.topic.name", None,
                                       incremental_operation=AlterConfigOpType.DELETE))
        res = ConfigResource(ResourceType.GROUP, self.group, incremental_configs=entries)
        admin = self._broker.admin
        fut = admin.incremental_alter_configs(
            [res], request_timeout=self._broker.request_timeout)[res]
        self._broker.result(fut, what=f"share group {self.group!r} configs")
        if lock_ms is None:  # the group's lock duration, whoever set it
            self.lock_ms = self._group_lock_ms()

    def _group_lock_ms(self) -> int:
        res = ConfigResource(ResourceType.GROUP, self.group)
        try:
            fut = self._broker.admin.describe_configs(
                [res], request_timeout=self._broker.request_timeout)[res]
            entries = self._broker.result(fut, what=f"share group {self.group!r} configs")
            return int(entries["share.record.lock.duration.ms"].value)
        except (errors.LogMQError, KeyError, TypeError, ValueError):
            return _DEFAULT_LOCK_MS  # Kafka's default too

    # ------------------------------------------------------------------ receive
    def receive(self, max_records: int = 1, timeout: float = 0.0) -> list[QueueRecord]:
        """Acquire up to ``max_records`` records; wait up to ``timeout`` s for the first."""
        if max_records < 1:
            raise errors.ConfigError("max_records must be >= 1")
        deadline = time.monotonic() + timeout
        self._woken = False
        while True:
            with self._lock:
                self._check_open()
                got = self._take(max_records)
                if got:
                    return got
                if self._out:
                    raise errors.RecordStateError(
                        f"{len(self._out)} record(s) received earlier are not settled: on "
                        "Kafka every record of one share fetch must be acked, nacked, "
                        "rejected or released before more can be received")
                left = deadline - time.monotonic()
                self._poll(max(0.0, min(left, _SLICE)))
                got = self._take(max_records)
                if got:
                    return got
            if self._woken or self._closed or time.monotonic() >= deadline:
                return []

    def _poll(self, timeout: float) -> None:
        try:
            msgs = self._c.poll(timeout)
        except KafkaException as e:
            raise translate(e, self.topic, None, "share fetch") from None
        skipped = False
        polled = int(time.time() * 1000)
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise translate(err, self.topic, m.partition(), "share fetch")
            if self._filter is not None and not self._filter(self._record(m)):
                self._c.acknowledge(m, AcknowledgeType.ACCEPT)  # archived, as embedded
                skipped = True
                continue
            self._buffer.append((m, polled))
        if skipped:
            self._commit("filtered records")

    def _record(self, m: Any) -> Record:
        k, v = m.key(), m.value()
        if self._kdes is not None:
            k = self._kdes(k)
        if self._vdes is not None:
            v = self._vdes(v)
        return Record(m.topic(), m.partition(), m.offset(), m.timestamp()[1], k, v,
                      list(m.headers() or []))

    def _take(self, n: int) -> list[QueueRecord]:
        out: list[QueueRecord] = []
        while self._buffer and len(out) < n:
            m, polled = self._buffer.popleft()
            self._out[(m.partition(), m.offset())] = m
            out.append(QueueRecord(self, self._record(m), int(m.delivery_count() or 1),
                                   polled + self.lock_ms))
        return out

    def __iter__(self) -> Iterator[QueueRecord]:
        """Receive forever, one record at a time (settle each before the next)."""
        while not self._closed:
            yield from self.receive(1, timeout=3600.0)

    # ------------------------------------------------------------------ settle
    def _settle(self, records: Iterable[QueueRecord], action: str, **kw: Any) -> list[int]:
        recs = list(records)
        if not recs:
            return []
        if action == "renew":
            raise _unsupported("renew()", "confluent-kafka's share consumer has no RENEW "
                               "acknowledgement; keep processing within the group's "
                               "share.record.lock.duration.ms")
        delay = kw.get("delay_ms")
        if action == "nack" and delay:
            raise _unsupported("nack(delay=...)", "Kafka redelivers a released record at "
                               "once; there are no delayed redeliveries")
        kind = {"ack": AcknowledgeType.ACCEPT, "nack": AcknowledgeType.RELEASE,
                "release": AcknowledgeType.RELEASE, "reject": AcknowledgeType.REJECT}[action]
        with self._lock:
            self._check_open()
            msgs = []
            now = int(time.time() * 1000)
            for r in recs:
                if r._consumer is not self:
                    raise errors.ConfigError(
                        "a record can only be settled by the consumer that received it")
                m = self._out.get((r.partition, r.offset))
                if m is None:
                    raise errors.RecordStateError(
                        f"{r.topic}-{r.partition}@{r.offset} is not held by this member "
                        "(settled already)")
                if now > r.lock_deadline_ms:
                    # librdkafka reports a late acknowledgement as a success while the
                    # broker has handed the record on: refuse it here, as embedded does
                    del self._out[(r.partition, r.offset)]
                    self._c.acknowledge(m, AcknowledgeType.RELEASE)  # librdkafka wants all
                    r.settled = "release"
                    raise errors.RecordStateError(
                        f"{r.topic}-{r.partition}@{r.offset}: its lock "
                        f"({self.lock_ms} ms) expired before {action}(); the group may "
                        "have delivered it again")
                msgs.append((r, m))
            for r, m in msgs:
                self._c.acknowledge(m, kind)
                del self._out[(r.partition, r.offset)]
                r.settled = action
            self._commit(action)
            if action == "ack":
                self._acked += len(msgs)
        return [0 for _ in recs]

    def _commit(self, what: str) -> None:
        try:
            res = self._c.commit_sync(self._broker.request_timeout)
        except KafkaException as e:
            raise translate(e, self.topic, None, what) from None
        for tp, err in (res or {}).items():
            if err is None:
                continue
            ke = err.args[0] if isinstance(err, KafkaException) and err.args else err
            code = ke.code() if isinstance(ke, KafkaError) else None
            if code == KafkaError.INVALID_RECORD_STATE:
                raise errors.RecordStateError(
                    f"{what} on {tp.topic}-{tp.partition}: the broker no longer holds this "
                    "member's lock on the record (it expired and the record moved on)")
            raise translate(ke, tp.topic, tp.partition, what)

    def reply(self, record: QueueRecord, value: Any, **kw: Any) -> Any:
        raise _unsupported("reply()", "request-reply needs logmq's reply router; use a "
                           "producer to answer on a topic of your choice")

    # ------------------------------------------------------------------ misc
    def stats(self) -> QueueStats:
        """The group's depth as Kafka reports it (DescribeShareGroupOffsets lag) and its
        dead-letter count; what Kafka does not report is -1 (available, in flight), and
        ``scheduled`` is 0: Kafka holds nothing back for a delay."""
        from logmq.cluster.sharegroups import ShareGroupAdmin

        b = self._broker
        offs = ShareGroupAdmin(b.bootstrap, b.settings, b.request_timeout).describe(self.group)
        dlq = 0
        if self.dead_letter_topic is not None:
            try:
                for p in range(b.partitions_for(self.dead_letter_topic)):
                    start, end = b.offsets((self.dead_letter_topic, p))
                    dlq += end - start
            except errors.UnknownTopicError:
                dlq = 0
        return QueueStats(self.topic, self.group, depth=offs.depth(self.topic), available=-1,
                          in_flight=-1, scheduled=0, oldest_unacked_age_ms=None,
                          dlq_size=dlq, acked=self._acked, dead_lettered=-1, archived=-1,
                          members=-1)

    def wakeup(self) -> None:
        """Make a blocked :meth:`receive` return (empty) now, from another thread."""
        self._woken = True

    def _check_open(self) -> None:
        if self._closed:
            raise errors.BrokerClosedError("queue consumer is closed")

    def close(self, release: bool = True) -> None:
        """Leave the share group; with ``release`` records still held are released first."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if release:
                    held = list(self._out.values()) + [m for m, _ in self._buffer]
                    for m in held:
                        self._c.acknowledge(m, AcknowledgeType.RELEASE)
                    if held:
                        self._c.commit_sync(self._broker.request_timeout)
            finally:
                self._out.clear()
                self._buffer.clear()
                self._c.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> ClusterQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ClusterQueue {self.topic!r} group={self.group!r} member={self.member_id}>"
