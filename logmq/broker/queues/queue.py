"""The queue consumer: receive records under a lock, then ack, nack, reject, renew or reply.

``log.queue(topic, group="workers")`` returns a :class:`QueueConsumer`, one member of a share
group. Members of a group (threads here, processes through :mod:`~logmq.broker.queues.remote`)
share the topic's records record by record, unlike consumer groups, which share partitions::

    q = log.queue("jobs", group="workers", lock_ms=30_000, max_attempts=5)
    for rec in q.receive(10, timeout=5):
        try:
            handle(rec.value)
            rec.ack()                    # done: durable when it returns, never redelivered
        except Exception as e:
            rec.nack(error=repr(e))      # again later, with exponential backoff and jitter

A record is locked for its receiver until ``lock_ms`` passes (``renew()`` extends it); then it
is available to the group again. ``reject()`` sends it straight to the dead-letter topic.
Group settings (``max_attempts``, backoff, dead-letter topic, priority aging, window size,
start position) are documented on :class:`~logmq.broker.queues.group.GroupConfig`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from logmq.broker.queues import options as O
from logmq.broker.queues.filters import FilterSpec, make_filter
from logmq.broker.queues.group import GroupConfig, Member, QueueStats, ShareGroup
from logmq.broker.queues.model import validate_lock_ms
from logmq.errors import ConfigError
from logmq.types import Header, Record, RecordMetadata, TopicPartition


class QueueHost(Protocol):
    """What a queue member needs of the queue engine (its group, and replies)."""

    def share_group(self, topic: str, group: str,
                    config: GroupConfig | None = None) -> ShareGroup: ...

    def reply(self, request_headers: Iterable[Header] | None, value: Any, *, key: Any = None,
              headers: Iterable[Header] | None = None) -> RecordMetadata: ...

__all__ = ["QueueConsumer", "QueueRecord"]


class QueueRecord:
    """A received record and its acquisition: settle it exactly once (ack, nack or reject).

    Fields are those of :class:`logmq.Record` plus ``delivery_count`` (1 on the first
    delivery) and ``lock_deadline_ms`` (wall-clock ms after which the lock is gone).
    """

    __slots__ = ("_consumer", "topic", "partition", "offset", "timestamp", "key", "value",
                 "headers", "delivery_count", "lock_deadline_ms", "settled")

    def __init__(self, consumer: Any, record: Record, count: int, deadline: int) -> None:
        self._consumer = consumer
        self.topic, self.partition, self.offset, self.timestamp, self.key, self.value, \
            self.headers = record
        self.delivery_count = count
        self.lock_deadline_ms = deadline
        #: "ack", "nack", "reject" or "release" once settled (by anyone: record or consumer)
        self.settled: str | None = None

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    @property
    def token(self) -> tuple[int, int, int]:
        """(partition, offset, delivery count): identifies this acquisition."""
        return (self.partition, self.offset, self.delivery_count)

    @property
    def priority(self) -> int:
        return O.record_options(self.headers).priority

    def header(self, name: str) -> bytes | None:
        return O.header(self.headers, name)

    def ack(self) -> None:
        """Done: never delivered to this group again. Durable when it returns."""
        self._consumer.ack(self)

    def nack(self, delay: float | None = None, error: str | None = None) -> None:
        """Give it back for redelivery after ``delay`` seconds (None: the group's backoff).

        A record that has been delivered ``max_attempts`` times is dead-lettered instead.
        """
        self._consumer.nack(self, delay=delay, error=error)

    def reject(self, reason: str | None = None) -> None:
        """Send it straight to the dead-letter topic (``reason`` goes in its headers)."""
        self._consumer.reject(self, reason)

    def renew(self, lock_ms: int | None = None) -> int:
        """Extend the lock by ``lock_ms`` (default: the consumer's) from now; new deadline."""
        return self._consumer.renew(self, lock_ms)

    def release(self, count_attempt: bool = False) -> None:
        """Give it back unprocessed, available at once; by default not counted as an attempt."""
        self._consumer.release([self], count_attempt=count_attempt)

    def reply(self, value: Any, *, key: Any = None, headers: Any = None,
              ack: bool = True) -> RecordMetadata:
        """Answer a request (``log.request``): send to its reply-to topic, then ack it."""
        md = self._consumer.reply(self, value, key=key, headers=headers)
        if ack:
            self.ack()
        return md

    def to_record(self) -> Record:
        return Record(self.topic, self.partition, self.offset, self.timestamp, self.key,
                      self.value, self.headers)

    def __repr__(self) -> str:
        return (f"QueueRecord({self.topic}-{self.partition}@{self.offset}, "
                f"delivery={self.delivery_count}, key={self.key!r}, value={self.value!r})")


class SettleVerbs:
    """ack / nack / reject / renew / release, for a member that has a ``_settle`` (in-process
    or remote): one place for what the verbs mean, whichever way they travel."""

    def _settle(self, records: Iterable[QueueRecord], action: str, **kw: Any) -> list[int]:
        raise NotImplementedError

    def ack(self, *records: QueueRecord) -> None:
        """Acknowledge records (one LMDB commit for all of them)."""
        self._settle(records, "ack")

    def ack_many(self, records: Iterable[QueueRecord]) -> None:
        self._settle(records, "ack")

    def nack(self, record: QueueRecord, delay: float | None = None,
             error: str | None = None) -> None:
        self.nack_many([record], delay=delay, error=error)

    def nack_many(self, records: Iterable[QueueRecord], delay: float | None = None,
                  error: str | None = None) -> None:
        delay_ms = None if delay is None else max(0, int(delay * 1000))
        self._settle(records, "nack", delay_ms=delay_ms, error=error)

    def reject(self, record: QueueRecord, reason: str | None = None) -> None:
        self._settle([record], "reject", error=reason)

    def renew(self, record: QueueRecord, lock_ms: int | None = None) -> int:
        deadline = self._settle([record], "renew", lock_ms=lock_ms)[0]
        record.lock_deadline_ms = deadline
        return deadline

    def release(self, records: Iterable[QueueRecord], count_attempt: bool = False) -> None:
        """Hand records back unprocessed (graceful shutdown); available again at once."""
        self._settle(records, "release", count_attempt=count_attempt)



class QueueConsumer(SettleVerbs):
    """One member of a share group on one topic (thread-safe; one receiver at a time is usual).

    Member config: ``lock_ms`` (default 30 000), ``filter`` (a predicate or a declarative
    match, see :mod:`~logmq.broker.queues.filters`), ``key_deserializer`` /
    ``value_deserializer``. Every other keyword is a group setting
    (:class:`~logmq.broker.queues.group.GroupConfig`).
    """

    def __init__(self, manager: QueueHost, topic: str, group: str = "workers", *,
                 lock_ms: int = 30_000, filter: FilterSpec | None = None,  # noqa: A002
                 key_deserializer: Callable[[Any], Any] | None = None,
                 value_deserializer: Callable[[Any], Any] | None = None,
                 **group_config: Any) -> None:
        lock_ms = validate_lock_ms(lock_ms)
        cfg, rest = GroupConfig.split(dict(group_config))
        if rest:
            raise ConfigError(f"unknown queue config: {', '.join(sorted(rest))}")
        self.manager = manager
        self.topic = topic
        self.group = group
        self.lock_ms = lock_ms
        self._filter = make_filter(filter)
        self._kdes = key_deserializer
        self._vdes = value_deserializer
        self._share: ShareGroup = manager.share_group(topic, group, cfg)
        self._member: Member = self._share.add_member(lock_ms)
        self._closed = False

    @property
    def member_id(self) -> str:
        return self._member.id

    @property
    def config(self) -> GroupConfig:
        return self._share.cfg

    # ------------------------------------------------------------------ receive
    def receive(self, max_records: int = 1, timeout: float = 0.0) -> list[QueueRecord]:
        """Acquire up to ``max_records`` available records; wait up to ``timeout`` s for one.

        Higher priorities come first, then the oldest. Each acquisition is durable (its
        delivery count survives a crash) before this returns.
        """
        if max_records < 1:
            raise ConfigError("max_records must be >= 1")
        got = self._share.receive(self._member, max_records, timeout, self._filter)
        kd, vd = self._kdes, self._vdes
        if kd is None and vd is None:
            paused = gc.isenabled()  # as in ShareGroup.receive: allocations only, no garbage
            if paused:
                gc.disable()
            try:
                return [QueueRecord(self, rec.record, count, deadline)
                        for rec, count, deadline in got]
            finally:
                if paused:
                    gc.enable()
        out = []
        for rec, count, deadline in got:
            r = rec.record
            if kd is not None or vd is not None:
                r = r._replace(key=kd(r.key) if kd else r.key,
                               value=vd(r.value) if vd else r.value)
            out.append(QueueRecord(self, r, count, deadline))
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
        for r in recs:
            if r._consumer is not self:
                raise ConfigError("a record can only be settled by the consumer that received it")
        try:
            return self._share.settle(self._member, [r.token for r in recs], action, **kw)
        finally:
            if action != "renew":
                for r in recs:
                    r.settled = action

    def reply(self, record: QueueRecord, value: Any, *, key: Any = None,
              headers: Iterable[Header] | None = None) -> RecordMetadata:
        return self.manager.reply(record.headers, value, key=key, headers=headers)

    # ------------------------------------------------------------------ misc
    def stats(self) -> QueueStats:
        """Depth, in flight, scheduled, oldest unacked age and DLQ size of this group."""
        return self._share.stats()

    def wakeup(self) -> None:
        """Make a blocked :meth:`receive` return (empty) now, from another thread."""
        self._share.wakeup(self._member)

    def close(self, release: bool = True) -> None:
        """Leave the group; records still held become available at once."""
        if self._closed:
            return
        self._closed = True
        self._share.remove_member(self._member, release=release)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> QueueConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<QueueConsumer {self.topic!r} group={self.group!r} member={self.member_id}>"
