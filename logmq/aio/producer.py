"""The asyncio producer: the sync producer's batching, driven from one actor job at a time.

``send`` never touches a file on the loop: records are queued on the loop side and handed in
bursts to a pool thread, which feeds them to the sync :class:`~logmq.Producer` (accumulator,
linger, partitioning, idempotence, queue options all as there). Each sync batch's completion
resolves its records' asyncio futures through the engine's batched callbacks. One burst is
in flight per producer, so send order is append order, as with the sync producer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Unpack

from logmq import Producer, RecordFuture
from logmq.aio._engine import Engine
from logmq.broker.queues.options import SendOptions
from logmq.errors import BrokerClosedError, BufferFullError, ConfigError
from logmq.types import RecordMetadata

if TYPE_CHECKING:
    from logmq import Broker
    from logmq.broker.txn_producer import TransactionalProducer

__all__ = ["AioProducer"]

# a queued send: (topic, value, key, headers, partition, timestamp, options, future)
_Send = tuple[str, Any, Any, Any, "int | None", "int | None", dict[str, Any],
              "asyncio.Future[RecordMetadata]"]
# a queued call run in order with the sends (send_batch, flush)
_Call = tuple[Callable[[], Any], "asyncio.Future[Any]"]


class AioProducer:
    """Sends records without blocking the event loop; use ``async with log.producer()``.

    Config is the sync :class:`~logmq.Producer`'s plus ``max_pending`` (records queued on the
    loop side and not yet handed to the engine, default 100 000: past it ``send`` waits and
    ``send_nowait`` raises :class:`~logmq.errors.BufferFullError`).
    """

    def __init__(self, broker: Broker, engine: Engine, *, max_pending: int = 100_000,
                 **config: Any) -> None:
        if max_pending < 1:
            raise ConfigError("max_pending must be >= 1")
        self._engine = engine
        self._sync: Producer = broker.producer(**config)
        self.max_pending = max_pending
        self._queue: list[_Send | _Call] = []
        self._lock = threading.Lock()
        self._running = False
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False

    @property
    def sync(self) -> Producer:
        """The underlying sync producer (for use from other threads)."""
        return self._sync

    # ------------------------------------------------------------------ send
    def send_nowait(self, topic: str, value: Any = None, key: Any = None, headers: Any = None,
                    partition: int | None = None, timestamp: int | None = None, *,
                    timestamp_ms: int | None = None,
                    **options: Unpack[SendOptions]) -> asyncio.Future[RecordMetadata]:
        """Queue one record now; the future resolves to its metadata once appended.

        The pipelining form (aiokafka's ``send`` returns such a future): queue many, then
        ``await`` the futures or :meth:`flush`. ``timestamp_ms`` is aiokafka's name for
        ``timestamp``.
        """
        if timestamp_ms is not None:
            if timestamp is not None:
                raise ConfigError("give timestamp or timestamp_ms, not both")
            timestamp = timestamp_ms
        if self._closed:
            raise BrokerClosedError("producer is closed")
        if len(self._queue) >= self.max_pending:
            raise BufferFullError(f"{self.max_pending} records already waiting (max_pending)")
        fut: asyncio.Future[RecordMetadata] = self._engine.loop.create_future()
        self._push((topic, value, key, headers, partition, timestamp, dict(options), fut))
        return fut

    async def send(self, topic: str, value: Any = None, key: Any = None, headers: Any = None,
                   partition: int | None = None, timestamp: int | None = None, *,
                   timestamp_ms: int | None = None,
                   **options: Unpack[SendOptions]) -> RecordMetadata:
        """Send one record and return its :class:`~logmq.RecordMetadata` once appended.

        Same arguments and options as :meth:`logmq.Producer.send`. To send many without
        awaiting each, use :meth:`send_nowait` or :meth:`send_batch`.
        """
        while len(self._queue) >= self.max_pending:
            self._room.clear()
            await self._room.wait()
        return await self.send_nowait(topic, value, key, headers, partition, timestamp,
                                      timestamp_ms=timestamp_ms, **options)

    send_and_wait = send  # aiokafka's name for the same thing

    async def send_batch(self, topic: str, records: Iterable[Sequence[Any]],
                         partition: int | None = None, timestamp: int | None = None, *,
                         expected_offset: int | None = None) -> list[RecordMetadata]:
        """:meth:`logmq.Producer.send_batch`, after everything sent before it."""
        recs = list(records)
        return await self._call(lambda: self._sync.send_batch(
            topic, recs, partition, timestamp, expected_offset=expected_offset))

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until everything sent so far is appended."""
        await self._call(lambda: self._sync.flush(timeout))

    # ------------------------------------------------------------------ transactions
    # With ``transactional_id=`` (aiokafka's names); each runs in order with the sends.
    async def begin_transaction(self) -> None:
        await self._call(self._txn().begin_transaction)

    async def commit_transaction(self) -> None:
        await self._call(self._txn().commit_transaction)

    async def abort_transaction(self) -> None:
        await self._call(self._txn().abort_transaction)

    async def send_offsets_to_transaction(self, offsets: Any, group_id: str) -> None:
        txn = self._txn()
        await self._call(lambda: txn.send_offsets_to_transaction(offsets, group_id))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AioProducer]:
        """``async with producer.transaction():`` commits, or aborts on an exception."""
        await self.begin_transaction()
        try:
            yield self
        except BaseException:
            await self.abort_transaction()
            raise
        await self.commit_transaction()

    def _txn(self) -> TransactionalProducer:
        from logmq.broker.txn_producer import TransactionalProducer

        if not isinstance(self._sync, TransactionalProducer):
            raise ConfigError("transactions need log.producer(transactional_id=...)")
        return self._sync

    def _call(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        if self._closed:
            raise BrokerClosedError("producer is closed")
        fut: asyncio.Future[Any] = self._engine.loop.create_future()
        self._push((fn, fut))
        return fut

    def _push(self, item: _Send | _Call) -> None:
        with self._lock:
            self._queue.append(item)
            if self._running:
                return
            self._running = True
        self._engine.submit(self._run)

    # ------------------------------------------------------------------ engine side
    def _run(self) -> None:
        """Pool thread: hand queued sends to the sync producer until the queue is empty."""
        engine, sync = self._engine, self._sync
        while True:
            with self._lock:
                items, self._queue = self._queue, []
                if not items:
                    self._running = False
                    break
            engine.loop.call_soon_threadsafe(self._room.set)
            for item in items:
                if len(item) == 2:
                    fn, cfut = item
                    try:
                        engine.complete(cfut, fn())
                    except BaseException as e:
                        engine.complete(cfut, None, e)
                    continue
                topic, value, key, headers, partition, ts, options, fut = item
                try:
                    rf = sync.send(topic, value, key, headers, partition, ts, **options)
                except BaseException as e:
                    engine.complete(fut, None, e)
                    continue
                rf.add_done_callback(self._completer(fut))

    def _completer(self, fut: asyncio.Future[RecordMetadata]) -> Callable[[RecordFuture], None]:
        engine = self._engine

        def done(rf: RecordFuture) -> None:
            err = rf.exception(0)
            engine.complete(fut, None if err is not None else rf.result(0), err)

        return done

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Nothing to connect (aiokafka compatibility)."""

    async def close(self) -> None:
        """Flush, then close the sync producer."""
        if self._closed:
            return
        await self.flush()
        self._closed = True
        await self._engine.run(self._sync.close)

    stop = close  # aiokafka's name

    async def __aenter__(self) -> AioProducer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
