"""Catch-up subscriptions: replay from a position, then follow new appends, no gap, no repeat.

Both kinds read the log itself (``subscribe_all``) or the key index (``subscribe_stream``)
from a position the subscription advances only past what it handed out, and wait on the
broker's append notifications when there is nothing new. The wake-up flag is cleared
*before* each read, so an append that lands between the read and the wait is never missed;
the catch-up phase and the live phase are the same loop, which is why there is no gap or
duplicate at the switch.

Checkpoints: ``sub.checkpoint`` (a ``{partition: next offset}`` dict for ``subscribe_all``,
the next version for a stream) is what a projection stores with its own state, in its own
transaction, and passes back as ``from_position`` / ``from_version`` to restart exactly
there. ``subscribe_all(..., group="name")`` instead keeps the checkpoint as the committed
offsets of a consumer group (``commit()``), visible to Kafka tools like any group's.

Versions: from the ``logmq.version`` header; a keyed record without it (a plain producer's)
gets the version the index counted for it (``index_versions=False`` skips that lookup and
the index catch-up it needs, leaving None).

The asyncio flavours never block the loop: reads run in a worker thread
(``asyncio.to_thread``) and the append notification is passed with
``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from logmq.codec.batch import LOG_OVERHEAD, parse_header
from logmq.codec.records import decode_batch
from logmq.errors import ConfigError, OffsetOutOfRangeError
from logmq.streams.index import OP_HEADER, VERSION_HEADER
from logmq.streams.model import StreamEvent

__all__ = ["AllSubscription", "StreamSubscription", "AsyncAllSubscription",
           "AsyncStreamSubscription"]

_READ_BYTES = 1 << 20


def _version(headers: list[tuple[str, bytes | None]]) -> int | None:
    for k, v in headers:
        if k == VERSION_HEADER and v is not None:
            try:
                return int(v)
            except ValueError:
                return None
    return None


class _Base:
    """The shared loop: ``_pull`` reads what is there, ``_wake`` is set by every append."""

    def __init__(self, streams: Any, topic: str, batch_size: int) -> None:
        if batch_size < 1:
            raise ConfigError("batch_size must be >= 1")
        self.streams = streams
        self.broker = streams.broker
        self.topic = topic
        self.batch_size = batch_size
        self._wake = threading.Event()
        self._stopped = False
        self._buf: deque[StreamEvent] = deque()
        self._tps: list[tuple[str, int]] = []
        self._callbacks: list[Callable[[], None]] = [self._wake.set]

    def _watch(self, tps: list[tuple[str, int]]) -> None:
        self._tps = tps
        for tp in tps:
            self.broker.add_waiter(tp, self._notify)

    def _notify(self) -> None:
        for cb in self._callbacks:
            cb()

    def _pull(self) -> list[StreamEvent]:
        raise NotImplementedError

    @property
    def checkpoint(self) -> Any:
        raise NotImplementedError

    def poll(self, timeout: float = 0.0) -> list[StreamEvent]:
        """Up to ``batch_size`` events, waiting at most ``timeout`` s for the first one."""
        deadline = time.monotonic() + timeout
        while not self._stopped:
            self._wake.clear()
            evs = self._pull()
            if evs:
                return evs
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            self._wake.wait(min(left, 0.5))
        return []

    def __iter__(self) -> Iterator[StreamEvent]:
        return self

    def __next__(self) -> StreamEvent:
        while not self._buf:
            if self._stopped:
                raise StopIteration
            self._buf.extend(self.poll(0.5))
        return self._buf.popleft()

    def stop(self) -> None:
        """End the subscription; a blocked iteration returns within half a second."""
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        for tp in self._tps:
            self.broker.remove_waiter(tp, self._notify)

    close = stop

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AllSubscription(_Base):
    """Every record of a topic in log order per partition (partitions interleave)."""

    def __init__(self, streams: Any, topic: str, from_position: Any = None, *,
                 group: str | None = None, include_ops: bool = False,
                 batch_size: int = 500, index_versions: bool = True) -> None:
        super().__init__(streams, topic, batch_size)
        self.index_versions = index_versions
        n = self.broker.ensure_topic(topic)
        self.group = group
        self.include_ops = include_ops
        self.position: dict[int, int] = {}
        committed: dict[int, int] = {}
        if group is not None and from_position is None:
            from logmq.broker.membership import coordinator_for

            got = coordinator_for(self.broker).fetch_offsets(
                group, [(topic, p) for p in range(n)])
            committed = {tp[1]: off for tp, (off, _) in got.items()}
        for p in range(n):
            if isinstance(from_position, dict):
                pos = from_position.get(p, 0)
            elif from_position == "end":
                pos = self.broker.end_offset((topic, p))
            elif isinstance(from_position, int):
                if n != 1:
                    raise ConfigError(f"topic {topic!r} has {n} partitions: pass "
                                      "from_position as {partition: offset}")
                pos = from_position
            elif from_position is None:
                pos = committed.get(p, 0)
            else:
                raise ConfigError(f"from_position must be None, 'end', an offset or a "
                                  f"{{partition: offset}} dict, got {from_position!r}")
            self.position[p] = int(pos)
        self._next_p = 0
        self._watch([(topic, p) for p in range(n)])

    @property
    def checkpoint(self) -> dict[int, int]:
        """``{partition: next offset}`` after the last event handed out."""
        return dict(self.position)

    def commit(self) -> None:
        """Store the checkpoint as the group's committed offsets (durable on return)."""
        if self.group is None:
            raise ConfigError("commit() needs subscribe_all(..., group=...)")
        from logmq.broker.membership import coordinator_for

        coordinator_for(self.broker).commit_offsets(
            self.group, -1, "", {(self.topic, p): (off, None)
                                 for p, off in self.position.items()})

    def _pull(self) -> list[StreamEvent]:
        parts = list(self.position)
        out: list[StreamEvent] = []
        for i in range(len(parts)):
            p = parts[(self._next_p + i) % len(parts)]
            self._pull_partition(p, out)
            if len(out) >= self.batch_size:
                self._next_p = (self._next_p + i + 1) % len(parts)
                break
        return out

    def _pull_partition(self, p: int, out: list[StreamEvent]) -> None:
        plog = self.broker.partition_log(self.topic, p)
        pos = self.position[p]
        if pos >= plog.next_offset:
            return
        pos = max(pos, plog.log_start_offset)  # retention removed what was not read yet
        try:
            data = plog.read_bytes(pos, _READ_BYTES)
        except OffsetOutOfRangeError:
            return
        at = 0
        n = len(data)
        topic = self.topic
        counted: Iterator[tuple[int, int]] | None = None
        c_off, c_ver = -1, -1
        while n - at >= LOG_OVERHEAD and len(out) < self.batch_size:
            h = parse_header(data, at)
            if at + h.size > n:
                break
            _, recs = decode_batch(data, at, validate=False)
            for off, ts, key, value, headers in recs:
                if off < pos:
                    continue
                pos = off + 1
                if not self.include_ops and any(k == OP_HEADER for k, _ in headers):
                    continue
                v = _version(headers)
                if v is None and key is not None and self.index_versions:
                    if counted is None:  # a plain producer's records: what the index counted
                        self.streams.index.catch_up(topic, p)
                        counted = self.streams.index.iter_counted(topic, p, off)
                    while c_off < off:
                        c_off, c_ver = next(counted, (1 << 62, -1))
                    v = c_ver if c_off == off else None
                out.append(StreamEvent(topic, p, off, ts, key, value, headers, v))
            pos = max(pos, h.next_offset)  # whole batches are handed out
            at += h.size
        if counted is not None:
            counted.close()  # type: ignore[attr-defined]
        self.position[p] = pos


class StreamSubscription(_Base):
    """The events of one stream, from a version on, via the key index."""

    def __init__(self, streams: Any, topic: str, key: bytes,
                 from_version: int | None = None, *, batch_size: int = 500) -> None:
        super().__init__(streams, topic, batch_size)
        self.key = key
        self.next_version = 0 if from_version is None else int(from_version)
        p = streams.partition_for(topic, key)
        self._watch([(topic, p)])

    @property
    def checkpoint(self) -> int:
        """The next version this subscription will hand out."""
        return self.next_version

    def _pull(self) -> list[StreamEvent]:
        evs = self.streams.read_stream(self.topic, self.key, self.next_version,
                                       limit=self.batch_size)
        if evs:
            last = evs[-1].version
            assert last is not None
            self.next_version = last + 1
        return evs


class _Async:
    """asyncio wrapper of a sync subscription: reads in a thread, wake-ups via the loop."""

    def __init__(self, sub: _Base) -> None:
        self.sub = sub
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def _bind(self) -> asyncio.Event:
        if self._event is None:
            self._loop = asyncio.get_running_loop()
            self._event = asyncio.Event()
            loop, ev = self._loop, self._event

            def wake() -> None:
                try:
                    loop.call_soon_threadsafe(ev.set)
                except RuntimeError:  # the loop is closed
                    pass

            self.sub._callbacks.append(wake)
        return self._event

    async def poll(self, timeout: float = 0.0) -> list[StreamEvent]:
        ev = self._bind()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.sub._stopped:
            ev.clear()
            evs = await asyncio.to_thread(self.sub._pull)
            if evs:
                return evs
            left = deadline - loop.time()
            if left <= 0:
                return []
            try:
                await asyncio.wait_for(ev.wait(), min(left, 0.5))
            except TimeoutError:
                pass
        return []

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[StreamEvent]:
        while not self.sub._stopped:
            for e in await self.poll(0.5):
                yield e

    @property
    def checkpoint(self) -> Any:
        return self.sub.checkpoint

    def stop(self) -> None:
        self.sub.stop()
        if self._event is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._event.set)

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()


class AsyncAllSubscription(_Async):
    def __init__(self, streams: Any, topic: str, from_position: Any = None,
                 **kw: Any) -> None:
        super().__init__(AllSubscription(streams, topic, from_position, **kw))

    def commit(self) -> None:
        assert isinstance(self.sub, AllSubscription)
        self.sub.commit()


class AsyncStreamSubscription(_Async):
    def __init__(self, streams: Any, topic: str, key: bytes,
                 from_version: int | None = None, **kw: Any) -> None:
        super().__init__(StreamSubscription(streams, topic, key, from_version, **kw))
