"""The asyncio queue member: ``await q.receive()``, ``await rec.ack()``.

A share group's receive waits on the group's own condition (appends, lock expiries, due
times, other members' nacks all wake it), so an idle receive is run by one receiver thread
per queue member: a member's own thread, not a thread per call, exactly like a sync worker
thread. Settling (an LMDB commit each) runs on the log's pool. A cancelled ``receive`` wakes
its thread and releases whatever it acquired meanwhile, so cancellation never strands
locked records.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from logmq import QueueConsumer, QueueRecord, QueueStats
from logmq.aio._engine import Engine
from logmq.errors import BrokerClosedError, ConfigError
from logmq.types import Header, Record, RecordMetadata, TopicPartition

if TYPE_CHECKING:
    from logmq import Broker

__all__ = ["AioQueue", "AioQueueRecord"]


class AioQueueRecord:
    """A received record: the fields of :class:`logmq.QueueRecord`, with awaitable settling."""

    __slots__ = ("_q", "record")

    def __init__(self, queue: AioQueue, record: QueueRecord) -> None:
        self._q = queue
        #: the sync :class:`~logmq.QueueRecord`
        self.record = record

    topic = property(lambda self: self.record.topic)
    partition = property(lambda self: self.record.partition)
    offset = property(lambda self: self.record.offset)
    timestamp = property(lambda self: self.record.timestamp)
    key = property(lambda self: self.record.key)
    value = property(lambda self: self.record.value)
    headers = property(lambda self: self.record.headers)
    delivery_count = property(lambda self: self.record.delivery_count)
    lock_deadline_ms = property(lambda self: self.record.lock_deadline_ms)
    settled = property(lambda self: self.record.settled)

    @property
    def tp(self) -> TopicPartition:
        return self.record.tp

    def header(self, name: str) -> bytes | None:
        return self.record.header(name)

    async def ack(self) -> None:
        """Done: never delivered to this group again. Durable when it returns."""
        await self._q._run(self.record.ack)

    async def nack(self, delay: float | None = None, error: str | None = None) -> None:
        """Redeliver after ``delay`` seconds (None: the group's backoff)."""
        await self._q._run(self.record.nack, delay, error)

    async def reject(self, reason: str | None = None) -> None:
        """Straight to the dead-letter topic."""
        await self._q._run(self.record.reject, reason)

    async def renew(self, lock_ms: int | None = None) -> int:
        """Extend the lock; returns the new lock deadline (ms since the epoch)."""
        return await self._q._run(self.record.renew, lock_ms)

    async def release(self, count_attempt: bool = False) -> None:
        await self._q._run(self.record.release, count_attempt)

    async def reply(self, value: Any, *, key: Any = None,
                    headers: Iterable[Header] | None = None) -> RecordMetadata:
        """Answer a :meth:`logmq.Broker.request`."""
        return await self._q._run(lambda: self.record.reply(value, key=key, headers=headers))

    def to_record(self) -> Record:
        return self.record.to_record()

    def __repr__(self) -> str:
        return f"<AioQueueRecord {self.record!r}>"


class AioQueue:
    """One member of share group ``group`` on ``topic`` (config as :meth:`logmq.Broker.queue`)."""

    def __init__(self, broker: Broker, engine: Engine, topic: str, group: str = "workers",
                 **config: Any) -> None:
        self._engine = engine
        self._sync: QueueConsumer = broker.queue(topic, group, **config)
        self._receiver = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix=f"logmq-aio-queue-{topic}")
        self._closed = False

    @property
    def sync(self) -> QueueConsumer:
        return self._sync

    @property
    def topic(self) -> str:
        return self._sync.topic

    @property
    def group(self) -> str:
        return self._sync.group

    def _run(self, fn: Any, *args: Any) -> asyncio.Future[Any]:
        return self._engine.run(fn, *args)

    async def receive(self, max_records: int = 1, timeout: float = 0.0) -> list[AioQueueRecord]:
        """Acquire up to ``max_records`` records, waiting up to ``timeout`` s for the first."""
        if self._closed:
            raise BrokerClosedError("queue consumer is closed")
        if max_records < 1:
            raise ConfigError("max_records must be >= 1")
        loop = self._engine.loop
        cf = self._receiver.submit(self._sync.receive, max_records, timeout)
        fut = asyncio.wrap_future(cf, loop=loop)
        try:
            got = await asyncio.shield(fut)
        except asyncio.CancelledError:
            self._sync.wakeup()

            def give_back(f: Any) -> None:
                if not f.cancelled() and f.exception() is None and f.result():
                    self._engine.submit(self._sync.release, f.result(), False)

            cf.add_done_callback(give_back)
            raise
        return [AioQueueRecord(self, r) for r in got]

    def __aiter__(self) -> AsyncIterator[AioQueueRecord]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[AioQueueRecord]:
        """Records one at a time, forever (settle each before taking the next)."""
        while not self._closed:
            for rec in await self.receive(1, timeout=3600.0):
                yield rec

    async def ack_many(self, records: Iterable[AioQueueRecord]) -> None:
        """Acknowledge many records in one LMDB commit."""
        recs = [r.record for r in records]
        await self._run(self._sync.ack_many, recs)

    async def nack_many(self, records: Iterable[AioQueueRecord],
                        delay: float | None = None) -> None:
        recs = [r.record for r in records]
        await self._run(lambda: self._sync.nack_many(recs, delay))

    async def stats(self) -> QueueStats:
        return await self._run(self._sync.stats)

    async def close(self, release: bool = True) -> None:
        """Leave the group; records still held become available at once."""
        if self._closed:
            return
        self._closed = True
        self._sync.wakeup()
        await self._run(self._sync.close, release)
        self._receiver.shutdown(wait=False)

    async def __aenter__(self) -> AioQueue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
