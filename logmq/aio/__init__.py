"""logmq for asyncio: the same engine, awaited instead of blocked on.

::

    import logmq.aio

    async with logmq.aio.open("logmq-data") as log:
        await log.create_topic("orders", partitions=4, exist_ok=True)
        async with log.producer() as p:
            md = await p.send("orders", b'{"id": 1}', key=b"customer-7")
        c = log.consumer("orders", group="billing", auto_offset_reset="earliest")
        batch = await c.getmany(timeout_ms=1000)
        await c.commit()
        q = log.queue("orders", group="workers")
        for rec in await q.receive(10, timeout=1):
            await rec.ack()

Nothing here blocks the event loop: file and LMDB work runs on a small pool owned by the log
(no thread per call), consumers wait for appends on the loop through the broker's append
notifications, and results come back as futures resolved in batches. Names follow aiokafka
where the two overlap (``getmany``, ``getone``, ``seek_to_committed``, ``send_and_wait``,
``start``/``stop``). One difference: :meth:`AioProducer.send` returns the metadata once the
record is appended (aiokafka's ``send`` returns a future: that is :meth:`AioProducer.send_nowait`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Generator, Mapping
from typing import Any

import logmq
from logmq import Broker
from logmq.aio._engine import Engine
from logmq.aio.consumer import AioConsumer
from logmq.aio.producer import AioProducer
from logmq.aio.queue import AioQueue, AioQueueRecord
from logmq.errors import BrokerClosedError, TopicExistsError
from logmq.types import OffsetAndTimestamp, TopicDescription, TopicPartition

__all__ = ["AioLog", "AioProducer", "AioConsumer", "AioQueue", "AioQueueRecord", "open"]


class AioLog:
    """An open data directory for asyncio code: ``async with logmq.aio.open(path) as log``.

    ``await logmq.aio.open(path)`` works too (then ``await log.close()``). Config is
    :func:`logmq.open`'s, plus ``workers`` (pool threads for file and LMDB work, default 4).
    """

    def __init__(self, path: str | os.PathLike[str] = "logmq-data", *, workers: int = 4,
                 **config: Any) -> None:
        self.path = os.fspath(path)
        self._config = config
        self._workers = workers
        self._broker: Broker | None = None
        self._engine: Engine | None = None

    # ------------------------------------------------------------------ lifecycle
    async def _open(self) -> AioLog:
        if self._broker is not None:
            return self
        engine = Engine(asyncio.get_running_loop(), self._workers)
        try:
            self._broker = await engine.run(lambda: logmq.open(self.path, **self._config))
        except BaseException:
            engine.close()
            raise
        self._engine = engine
        return self

    def __await__(self) -> Generator[Any, None, AioLog]:
        return self._open().__await__()

    async def __aenter__(self) -> AioLog:
        return await self._open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the log cleanly (fsync, checkpoint) without blocking the loop."""
        broker, engine = self._broker, self._engine
        if broker is None or engine is None:
            return
        await engine.run(broker.close)
        self._broker = None
        await asyncio.get_running_loop().run_in_executor(None, engine.close)
        self._engine = None

    @property
    def sync(self) -> Broker:
        """The open :class:`logmq.Broker` (thread-safe; its calls block)."""
        if self._broker is None:
            raise BrokerClosedError("the log is not open (use 'async with' or 'await')")
        return self._broker

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise BrokerClosedError("the log is not open (use 'async with' or 'await')")
        return self._engine

    # ------------------------------------------------------------------ topics
    async def create_topic(self, name: str, partitions: int | None = None,
                           config: Mapping[str, Any] | None = None, *,
                           exist_ok: bool = False) -> TopicDescription:
        """Create a topic; with ``exist_ok`` an existing one is returned as it is."""
        broker = self.sync

        def create() -> TopicDescription:
            try:
                return broker.create_topic(name, partitions=partitions, config=config)
            except TopicExistsError:
                if not exist_ok:
                    raise
                return broker.describe_topic(name)

        return await self.engine.run(create)

    async def delete_topic(self, name: str) -> None:
        await self.engine.run(self.sync.delete_topic, name)

    async def list_topics(self) -> list[str]:
        return self.sync.list_topics()

    async def describe_topic(self, name: str) -> TopicDescription:
        return await self.engine.run(self.sync.describe_topic, name)

    async def alter_topic_config(self, name: str, config: Mapping[str, Any], *,
                                 replace: bool = False) -> dict[str, Any]:
        broker = self.sync
        return await self.engine.run(
            lambda: broker.alter_topic_config(name, config, replace=replace))

    async def offsets(self, tp: Any) -> tuple[int, int]:
        """(log start offset, log end offset) of a partition."""
        return self.sync.offsets(tp)

    async def end_offset(self, tp: Any) -> int:
        return self.sync.end_offset(tp)

    async def offsets_for_times(self, timestamps: Mapping[Any, int]
                                ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        return await self.engine.run(self.sync.offsets_for_times, dict(timestamps))

    async def flush(self) -> None:
        """fsync every partition now."""
        await self.engine.run(self.sync.flush)

    # ------------------------------------------------------------------ clients
    def producer(self, **config: Any) -> AioProducer:
        """An :class:`AioProducer` (``async with log.producer() as p``)."""
        return AioProducer(self.sync, self.engine, **config)

    def consumer(self, *topics: str, **config: Any) -> AioConsumer:
        """An :class:`AioConsumer` on ``topics`` (config as :meth:`logmq.Broker.consumer`)."""
        return AioConsumer(self.sync, self.engine, *topics, **config)

    def queue(self, topic: str, group: str = "workers", **config: Any) -> AioQueue:
        """An :class:`AioQueue`: one member of share group ``group`` on ``topic``."""
        return AioQueue(self.sync, self.engine, topic, group, **config)

    def __repr__(self) -> str:
        return f"<logmq.aio.AioLog {self.path!r} {'open' if self._broker else 'closed'}>"


def open(path: str | os.PathLike[str] = "logmq-data", **config: Any) -> AioLog:  # noqa: A001
    """``async with logmq.aio.open(path, **config) as log`` (or ``log = await ...``)."""
    return AioLog(path, **config)
