"""``ClusterConsumer``: the embedded Consumer's API on a librdkafka consumer.

Positions are kept here, as the embedded consumer keeps them, and handed to librdkafka as
explicit offsets whenever the assignment or a position changes: so ``position()`` answers at
once after ``assign()`` (from the committed offset or the reset policy, resolved when asked,
as embedded), ``seek`` before the first fetch works, and ``commit()`` commits exactly what
``poll()`` returned. Without ``group`` a consumer is a plain reader (librdkafka still needs a
group id: a private one that never commits). With ``group`` it joins a Kafka consumer group
through the cluster's coordinator; librdkafka's own auto-commit commits what was returned.

``poll(timeout)`` returns as soon as one record is there, plus whatever else is already
fetched (up to ``max_poll_records``): the embedded consumer's contract, not confluent's
``consume()``, which waits for the full count.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from confluent_kafka import OFFSET_STORED, KafkaError, KafkaException
from confluent_kafka import Consumer as CKConsumer
from confluent_kafka import TopicPartition as CKTopicPartition

from logmq import errors
from logmq.broker.seeking import Seeking, as_tp
from logmq.cluster.common import ClusterContext, translate
from logmq.types import Record, TopicPartition

__all__ = ["ClusterConsumer"]

_RESETS = {"earliest": "earliest", "latest": "latest", "none": "error"}
_ASSIGNORS = {"range": "range", "roundrobin": "roundrobin", "sticky": "cooperative-sticky"}
_SLICE = 0.1  # longest wait inside poll() between checks for wakeup()/close()


_tp = as_tp  # the name the code below uses


class ClusterConsumer(Seeking):
    """Reads records from a cluster with the embedded :class:`~logmq.Consumer`'s API.

    Config as embedded (``group``, ``auto_offset_reset``, ``max_poll_records``,
    ``fetch_max_bytes``, ``key_deserializer``/``value_deserializer``, ``consumer_timeout_ms``,
    ``filter``, ``session_timeout_ms``, ``heartbeat_interval_ms``, ``rebalance_timeout_ms``,
    ``enable_auto_commit``, ``auto_commit_interval_ms``, ``assignor``, ``client_id``), plus
    ``kafka_config`` for raw librdkafka settings.
    """

    def __init__(
        self,
        broker: ClusterContext,
        *topics: str,
        group: str | None = None,
        auto_offset_reset: str = "latest",
        max_poll_records: int = 500,
        fetch_max_bytes: int = 1 << 20,
        key_deserializer: Callable[[bytes | None], Any] | None = None,
        value_deserializer: Callable[[bytes | None], Any] | None = None,
        check_crcs: bool = True,
        consumer_timeout_ms: float | None = None,
        filter: Any = None,  # noqa: A002 - the name users expect
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 1_000,
        rebalance_timeout_ms: int = 30_000,
        enable_auto_commit: bool = True,
        auto_commit_interval_ms: int = 5_000,
        assignor: str = "range",
        client_id: str = "logmq",
        isolation_level: str = "read_uncommitted",
        kafka_config: dict[str, Any] | None = None,
    ) -> None:
        if isolation_level not in ("read_uncommitted", "read_committed"):
            raise errors.ConfigError("isolation_level must be read_uncommitted or read_committed")
        if auto_offset_reset not in _RESETS:
            raise errors.ConfigError(f"auto_offset_reset must be one of {tuple(_RESETS)}")
        if max_poll_records < 1 or fetch_max_bytes < 1:
            raise errors.ConfigError("max_poll_records and fetch_max_bytes must be >= 1")
        if assignor not in _ASSIGNORS:
            raise errors.ConfigError(f"assignor must be among {tuple(_ASSIGNORS)}")
        if group is not None and not group:
            raise errors.ConfigError("group id must be a non-empty string")
        self._broker = broker
        self.group = group
        self._auto_commit = enable_auto_commit and group is not None
        self._commit_every = auto_commit_interval_ms / 1000
        self._next_commit = time.monotonic() + self._commit_every
        self._assignor = assignor
        self.auto_offset_reset = auto_offset_reset
        self.max_poll_records = max_poll_records
        self._kdes, self._vdes = key_deserializer, value_deserializer
        self._filter: Callable[[Record], bool] | None = None
        if filter is not None:
            from logmq.broker.queues.filters import make_filter

            self._filter = make_filter(filter)
        self._timeout = None if consumer_timeout_ms is None else consumer_timeout_ms / 1000
        cfg = broker.client_config({
            "group.id": group or f"logmq-reader-{uuid.uuid4().hex}",
            # commits are ours (positions, as embedded): librdkafka's own would also commit on
            # close(), where close(commit=False) must not
            "enable.auto.commit": False,
            "auto.offset.reset": _RESETS[auto_offset_reset],
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": heartbeat_interval_ms,
            "max.poll.interval.ms": max(rebalance_timeout_ms, session_timeout_ms),
            "partition.assignment.strategy": _ASSIGNORS[assignor],
            "fetch.max.bytes": max(fetch_max_bytes, 1024),
            "max.partition.fetch.bytes": max(fetch_max_bytes, 1024),
            "check.crcs": bool(check_crcs),
            "client.id": client_id,
            "enable.partition.eof": False,
            "isolation.level": isolation_level,
        })
        cfg.update(kafka_config or {})
        self._c = CKConsumer(cfg)
        self._positions: dict[TopicPartition, int] = {}
        self._assigned: list[TopicPartition] = []
        self._paused: set[TopicPartition] = set()
        self._subscribed = False
        self._dirty = False
        self._closed = False
        self._woken = False
        self._user_assign: Callable[..., None] | None = None
        self._user_revoke: Callable[..., None] | None = None
        if topics:
            if group is not None:
                self.subscribe(list(topics))
            else:
                self.assign([TopicPartition(t, p) for t in topics
                             for p in range(broker.partitions_for(t))])

    # ------------------------------------------------------------------ assignment
    def assign(self, partitions: Iterable[Any]) -> None:
        """Read exactly these partitions (no group rebalancing)."""
        if self._subscribed:
            raise errors.ConfigError("cannot assign() while subscribed to a group")
        tps = [_tp(x) for x in partitions]
        counts: dict[str, int] = {}
        for tp in tps:
            n = counts.get(tp.topic)
            if n is None:
                n = counts[tp.topic] = self._broker.partitions_for(tp.topic)
            if not 0 <= tp.partition < n:
                raise errors.InvalidPartitionError(tp.topic, tp.partition, n)
        self._set_assignment(tps)
        self._dirty = True

    def _set_assignment(self, tps: list[TopicPartition]) -> None:
        for tp in list(self._positions):
            if tp not in tps:
                del self._positions[tp]
        self._assigned = list(dict.fromkeys(tps))
        self._paused &= set(self._assigned)

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def subscribe(self, topics: Iterable[str], *, on_assign: Callable[..., None] | None = None,
                  on_revoke: Callable[..., None] | None = None) -> None:
        """Join the consumer group for these topics (needs ``group``)."""
        if self.group is None:
            raise errors.ConfigError("subscribe() needs a group; use assign() or pass group=...")
        self._user_assign, self._user_revoke = on_assign, on_revoke
        self._subscribed = True
        self._set_assignment([])
        self._c.subscribe(list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke,
                          on_lost=self._on_revoke)

    def _on_assign(self, c: Any, parts: list[Any]) -> None:
        added = [TopicPartition(p.topic, p.partition) for p in parts]
        self._set_assignment(list(dict.fromkeys(self._assigned + added)))
        c.incremental_assign(self._with_offsets(added)) if self._cooperative() else \
            c.assign(self._with_offsets(self._assigned))
        if self._user_assign is not None:
            self._user_assign(added)

    def _on_revoke(self, c: Any, parts: list[Any]) -> None:
        gone = [TopicPartition(p.topic, p.partition) for p in parts]
        if self._user_revoke is not None:
            self._user_revoke(gone)
        if self._auto_commit and not self._closed:  # hand over what was processed
            done = {tp: self._positions[tp] for tp in gone if tp in self._positions}
            if done:
                try:
                    self.commit(done)
                except errors.LogMQError:
                    pass  # the group moved on (e.g. the member was fenced): Kafka's answer
        self._set_assignment([tp for tp in self._assigned if tp not in gone])
        if self._cooperative():
            c.incremental_unassign(parts)
        else:
            c.unassign()

    def _cooperative(self) -> bool:
        return self._assignor == "sticky"

    def unsubscribe(self) -> None:
        if self._subscribed:
            self._c.unsubscribe()
            self._subscribed = False
        self._set_assignment([])
        self._dirty = True

    def pause(self, *partitions: Any) -> None:
        tps = [_tp(p) for p in partitions]
        self._paused.update(tps)
        self._c.pause([CKTopicPartition(t.topic, t.partition) for t in tps])

    def resume(self, *partitions: Any) -> None:
        tps = [_tp(p) for p in partitions]
        self._paused.difference_update(tps)
        self._c.resume([CKTopicPartition(t.topic, t.partition) for t in tps])

    # ------------------------------------------------------------------ positions
    def _with_offsets(self, tps: list[TopicPartition]) -> list[Any]:
        out = []
        for tp in tps:
            try:
                off = self.position(tp)
            except errors.NoOffsetError:
                off = OFFSET_STORED  # librdkafka reports it (auto.offset.reset=error)
            out.append(CKTopicPartition(tp.topic, tp.partition, off))
        return out

    def _sync(self) -> None:
        if self._dirty and not self._subscribed:
            self._dirty = False
            self._c.assign(self._with_offsets(self._assigned))
            if self._paused:
                self._c.pause([CKTopicPartition(t.topic, t.partition) for t in self._paused])

    def seek(self, tp: Any, offset: int) -> None:
        t = _tp(tp)
        if t not in self._assigned:
            raise errors.ConfigError(f"{t} is not assigned to this consumer")
        if offset < 0:
            raise errors.ConfigError("offset must be >= 0")
        self._positions[t] = offset
        if self._subscribed:
            try:
                self._c.seek(CKTopicPartition(t.topic, t.partition, offset))
            except KafkaException as e:
                raise translate(e, t.topic, t.partition, "seek") from None
        else:
            self._dirty = True

    def position(self, tp: Any) -> int:
        t = _tp(tp)
        pos = self._positions.get(t)
        if pos is None:
            committed = self.committed(t)
            if committed is not None:
                pos = committed
            elif self.auto_offset_reset == "earliest":
                pos = self._broker.start_offset(t)
            elif self.auto_offset_reset == "latest":
                pos = self._broker.end_offset(t)
            else:
                raise errors.NoOffsetError(
                    f"no committed offset for {t} and auto_offset_reset='none'")
            self._positions[t] = pos
        return pos

    def committed(self, tp: Any) -> int | None:
        if self.group is None:
            return None
        t = _tp(tp)
        try:
            got = self._c.committed([CKTopicPartition(t.topic, t.partition)],
                                    timeout=self._broker.request_timeout)
        except KafkaException as e:
            raise translate(e, t.topic, t.partition, "committed") from None
        off = got[0].offset if got else -1
        return off if off >= 0 else None

    def commit(self, offsets: Mapping[Any, int | tuple[int, str | None]] | None = None) -> None:
        """Commit positions (or the given offsets) for the group; durable when it returns."""
        if self.group is None:
            raise errors.ConfigError("commit() needs a group")
        items: list[Any] = []
        if offsets is None:
            pairs: list[tuple[TopicPartition, int, str | None]] = [
                (tp, off, None) for tp, off in self._positions.items() if tp in self._assigned]
        else:
            pairs = []
            for raw, v in offsets.items():
                off, meta = v if isinstance(v, tuple) else (v, None)
                pairs.append((_tp(raw), int(off), meta))
        for tp, off, meta in pairs:
            ck = CKTopicPartition(tp.topic, tp.partition, off)
            if meta:
                ck.metadata = meta
            items.append(ck)
        if not items:
            return
        try:
            self._c.commit(offsets=items, asynchronous=False)
        except KafkaException as e:
            raise translate(e, what="commit") from None

    def lag(self, tp: Any) -> int:
        t = _tp(tp)
        return self._broker.end_offset(t) - self.position(t)

    # ------------------------------------------------------------------ polling
    def poll(self, timeout: float = 0.0, max_records: int | None = None) -> list[Record]:
        """Records from the assigned partitions; waits up to ``timeout`` seconds for some."""
        if self._closed:
            raise errors.BrokerClosedError("consumer is closed")
        limit = self.max_poll_records if max_records is None else max_records
        if self._auto_commit and time.monotonic() >= self._next_commit:
            self._next_commit = time.monotonic() + self._commit_every
            self.commit()  # what earlier polls returned, as the embedded auto-commit does
        self._sync()
        deadline = time.monotonic() + timeout
        self._woken = False
        out: list[Record] = []
        while True:
            left = deadline - time.monotonic()
            msg = self._c.poll(max(0.0, min(left, _SLICE)))
            if msg is not None:
                self._take(msg, out)
                if len(out) < limit:
                    for m in self._c.consume(limit - len(out), timeout=0):
                        self._take(m, out)
                if out:
                    return out[:limit]
            if self._closed or self._woken or time.monotonic() >= deadline:
                return out

    def _take(self, msg: Any, out: list[Record]) -> None:
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                return
            t, p = msg.topic(), msg.partition()
            if err.code() in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET):
                tp = TopicPartition(t, p)
                start, end = self._broker.offsets(tp)
                raise errors.OffsetOutOfRangeError(t, p, self._positions.get(tp, -1), start, end)
            raise translate(err, t, p, "fetch")
        tp = TopicPartition(msg.topic(), msg.partition())
        if tp not in self._assigned:
            return  # a prefetched record of a partition no longer ours
        off = msg.offset()
        self._positions[tp] = off + 1
        k, v = msg.key(), msg.value()
        if self._kdes is not None:
            k = self._kdes(k)
        if self._vdes is not None:
            v = self._vdes(v)
        rec = Record(tp.topic, tp.partition, off, msg.timestamp()[1], k, v,
                     list(msg.headers() or []))
        if self._filter is None or self._filter(rec):
            out.append(rec)

    def __iter__(self) -> Iterator[Record]:
        while not self._closed:
            batch = self.poll(self._timeout if self._timeout is not None else 3600.0)
            if not batch:
                if self._timeout is not None:
                    return
                continue
            yield from batch

    # ------------------------------------------------------------------ lifecycle
    def close(self, commit: bool = True) -> None:
        """Leave the group (committing positions first if auto-commit is on) and stop."""
        if self._closed:
            return
        self._closed = True
        try:
            if commit and self.group is not None and self._auto_commit and self._positions:
                self.commit()
        finally:
            self._c.close()

    def wakeup(self) -> None:
        """Make a blocked :meth:`poll` return early (from another thread)."""
        self._woken = True

    def __enter__(self) -> ClusterConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
