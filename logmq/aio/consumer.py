"""The asyncio consumer: ``async for`` / ``getmany`` over the sync consumer, waiting on appends.

Fetching (segment reads, CRC checks, decoding) runs on the log's pool, one fetch per consumer
at a time. A group member runs its calls on a thread of its own instead: joining a group
blocks until every member has rejoined, and members blocked in joins must not be able to fill
the shared pool and starve the member everyone waits for. When a fetch finds nothing, the consumer waits on the event loop, not in a thread:
the broker's append notifications for the assigned partitions set a loop event (the same
waiters the sync consumer's ``poll`` sleeps on), bounded by the group's heartbeat timer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from logmq import Consumer
from logmq.aio._engine import Engine, LoopEvent
from logmq.errors import BrokerClosedError
from logmq.types import OffsetAndTimestamp, Record, TopicPartition

if TYPE_CHECKING:
    from logmq import Broker

__all__ = ["AioConsumer"]


def _tp(x: Any) -> TopicPartition:
    if isinstance(x, TopicPartition):
        return x
    t, p = x
    return TopicPartition(t, int(p))


class AioConsumer:
    """Reads records without blocking the event loop (names follow aiokafka's consumer).

    Same config as :class:`logmq.Consumer` (``group``, ``auto_offset_reset``,
    ``max_poll_records``, deserializers, group options...). Without ``group`` the topics are
    assigned whole; with it the consumer joins the group on the first fetch.
    """

    def __init__(self, broker: Broker, engine: Engine, *topics: str, **config: Any) -> None:
        self._broker = broker
        self._engine = engine
        self._sync: Consumer = broker.consumer(*topics, **config)
        self._own: ThreadPoolExecutor | None = None
        if config.get("group") is not None:
            self._own = ThreadPoolExecutor(max_workers=1, thread_name_prefix="logmq-aio-member")
        self._event = LoopEvent(engine.loop)
        self._watched: set[TopicPartition] = set()
        self._lock = asyncio.Lock()
        self._seeks: dict[TopicPartition, int] = {}
        self._buffer: list[Record] = []
        self._closed = False
        timeout = config.get("consumer_timeout_ms")
        self._idle = None if timeout is None else timeout / 1000

    def _run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        return self._engine.run(fn, *args, executor=self._own)

    @property
    def sync(self) -> Consumer:
        """The underlying sync consumer (not thread-safe: leave it alone while in use here)."""
        return self._sync

    # ------------------------------------------------------------------ waiting
    def _watch(self) -> bool:
        """Register append waiters for the current assignment; True if any were added."""
        now = self._sync.assignment()
        added = now - self._watched
        for tp in self._watched - now:
            self._broker.remove_waiter(tp, self._event.notify)
        for tp in added:
            self._broker.add_waiter(tp, self._event.notify)
        self._watched = now
        return bool(added)

    def _fetch(self, limit: int | None, partitions: set[TopicPartition] | None,
               seeks: dict[TopicPartition, int]) -> list[Record]:
        """Pool thread: apply queued seeks, then one non-blocking poll."""
        c = self._sync
        for tp, off in seeks.items():
            c.seek(tp, off)
        if partitions is None:
            return c.poll(0, max_records=limit)
        others = c.assignment() - partitions - self.paused()  # keep the user's pauses
        c.pause(*others)
        try:
            return c.poll(0, max_records=limit)
        finally:
            c.resume(*others)

    async def _poll(self, timeout: float, limit: int | None,
                    partitions: set[TopicPartition] | None = None) -> list[Record]:
        if self._closed:
            raise BrokerClosedError("consumer is closed")
        deadline = time.monotonic() + timeout
        async with self._lock:
            while True:
                self._watch()
                self._event.clear()
                seeks, self._seeks = self._seeks, {}
                out = await self._run(self._fetch, limit, partitions, seeks)
                if self._seeks:  # seek() during the fetch: those partitions start over
                    out = [r for r in out if (r.topic, r.partition) not in self._seeks]
                if out or self._closed:
                    return out
                if self._watch():  # a rebalance gave us partitions: look at them first
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    return out
                member = self._sync._member
                if member is not None:  # wake for heartbeats and auto-commits
                    left = min(left, max(0.001, member.max_wait()))
                await self._event.wait(left)

    # ------------------------------------------------------------------ reading
    async def getmany(self, *partitions: Any, timeout_ms: float = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        """Records by partition, waiting up to ``timeout_ms`` for the first (aiokafka's form).

        With ``partitions``, only those are read this time.
        """
        only = {_tp(p) for p in partitions} or None
        if self._buffer:
            recs, self._buffer = self._buffer, []
        else:
            recs = await self._poll(timeout_ms / 1000, max_records, only)
        out: dict[TopicPartition, list[Record]] = {}
        for r in recs:
            out.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
        return out

    async def poll(self, timeout: float = 0.0, max_records: int | None = None) -> list[Record]:
        """Like :meth:`logmq.Consumer.poll`: a flat list, waiting up to ``timeout`` seconds."""
        if self._buffer:
            recs, self._buffer = self._buffer, []
            return recs
        return await self._poll(timeout, max_records)

    async def getone(self, *partitions: Any) -> Record:
        """The next record (of ``partitions``, if given), waiting as long as it takes."""
        only = {_tp(p) for p in partitions} or None
        while True:
            for i, r in enumerate(self._buffer):
                if only is None or (r.topic, r.partition) in only:
                    return self._buffer.pop(i)
            # buffered records of other partitions stay for later calls
            self._buffer.extend(await self._poll(3600.0, None, only))

    def __aiter__(self) -> AsyncIterator[Record]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Record]:
        """Records forever, or until ``consumer_timeout_ms`` passes without one."""
        while not self._closed:
            if not self._buffer:
                batch = await self._poll(self._idle if self._idle is not None else 3600.0, None)
                if not batch:
                    if self._idle is not None:
                        return
                    continue
                self._buffer = batch
            buf, self._buffer = self._buffer, []
            for i, rec in enumerate(buf):
                if self._seeks:  # a seek inside the loop: drop what was read past it
                    rest = buf[i:]
                    self._buffer = [r for r in rest if (r.topic, r.partition) not in self._seeks]
                    break
                yield rec

    # ------------------------------------------------------------------ positions
    def seek(self, tp: Any, offset: int) -> None:
        """Next fetch of ``tp`` starts at ``offset`` (applied before the next fetch)."""
        t = _tp(tp)
        if t not in self._sync.assignment():
            self._sync.seek(t, offset)  # raises the sync consumer's error
        if offset < 0:
            self._sync.seek(t, offset)
        self._seeks[t] = offset
        self._buffer = [r for r in self._buffer if (r.topic, r.partition) != t]
        self._event.notify()

    async def _offsets(self, fn: Any, partitions: tuple[Any, ...]) -> None:
        tps = [_tp(p) for p in partitions] or sorted(self._sync.assignment())
        offs = await self._run(lambda: {t: fn(t) for t in tps})
        for t, off in offs.items():
            self.seek(t, off)

    async def seek_to_beginning(self, *partitions: Any) -> None:
        await self._offsets(self._broker.start_offset, partitions)

    async def seek_to_end(self, *partitions: Any) -> None:
        await self._offsets(self._broker.end_offset, partitions)

    async def seek_to_committed(self, *partitions: Any) -> None:
        """Back to the group's committed offsets (partitions without one keep their place)."""
        tps = [_tp(p) for p in partitions] or sorted(self._sync.assignment())
        offs = await self._run(lambda: {t: self._sync.committed(t) for t in tps})
        for t, off in offs.items():
            if off is not None:
                self.seek(t, off)

    async def seek_to_timestamp(self, timestamp_ms: int, *partitions: Any) -> None:
        """Each partition at its first record with timestamp >= ``timestamp_ms``."""
        tps = [_tp(p) for p in partitions] or sorted(self._sync.assignment())
        found = await self.offsets_for_times({t: timestamp_ms for t in tps})
        ends = await self._run(lambda: {t: self._broker.end_offset(t) for t in tps})
        for t in tps:
            hit = found[t]
            self.seek(t, hit.offset if hit is not None else ends[t])

    async def offsets_for_times(self, timestamps: Mapping[Any, int]
                                ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        return await self._run(self._broker.offsets_for_times, dict(timestamps))

    async def position(self, tp: Any) -> int:
        t = _tp(tp)
        if t in self._seeks:
            return self._seeks[t]
        async with self._lock:
            return await self._run(self._sync.position, t)

    async def committed(self, tp: Any) -> int | None:
        return await self._run(self._sync.committed, _tp(tp))

    async def commit(self, offsets: Mapping[Any, int | tuple[int, str | None]] | None = None
                     ) -> None:
        """Commit positions (or ``offsets``) for the group; durable when it returns."""
        async with self._lock:
            await self._run(self._sync.commit, offsets)

    async def end_offsets(self, partitions: Iterable[Any]) -> dict[TopicPartition, int]:
        tps = [_tp(p) for p in partitions]
        return await self._run(lambda: {t: self._broker.end_offset(t) for t in tps})

    async def beginning_offsets(self, partitions: Iterable[Any]) -> dict[TopicPartition, int]:
        tps = [_tp(p) for p in partitions]
        return await self._run(lambda: {t: self._broker.start_offset(t) for t in tps})

    # ------------------------------------------------------------------ assignment
    def assignment(self) -> set[TopicPartition]:
        return self._sync.assignment()

    def assign(self, partitions: Iterable[Any]) -> None:
        self._sync.assign(partitions)
        self._watch()

    def subscribe(self, topics: Iterable[str]) -> None:
        """Join the group for these topics (needs ``group``); effective at the next fetch."""
        self._sync.subscribe(topics)

    def pause(self, *partitions: Any) -> None:
        self._sync.pause(*partitions)

    def resume(self, *partitions: Any) -> None:
        self._sync.resume(*partitions)
        self._event.notify()

    def paused(self) -> set[TopicPartition]:
        return set(self._sync._paused)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Nothing to connect (aiokafka compatibility)."""

    async def close(self, commit: bool = True) -> None:
        """Leave the group (committing first if auto-commit is on) and stop waiting."""
        if self._closed:
            return
        self._closed = True
        self._event.notify()
        async with self._lock:
            for tp in self._watched:
                self._broker.remove_waiter(tp, self._event.notify)
            self._watched = set()
            await self._run(self._sync.close, commit)
        if self._own is not None:
            self._own.shutdown(wait=False)

    stop = close  # aiokafka's name

    async def __aenter__(self) -> AioConsumer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
