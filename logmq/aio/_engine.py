"""The bridge between the thread-safe sync engine and one asyncio event loop.

Blocking engine work (segment reads and writes, fsyncs, LMDB commits) runs on a small thread
pool owned by the log; its results come back as asyncio futures. Completions are queued and
handed to the loop in one ``call_soon_threadsafe`` per burst, a bounded number per loop
iteration, so 100k records acknowledged at once cost the loop many short callbacks instead of
one wake-up per record or one long stall.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

#: completions delivered per loop callback before yielding to other tasks
_DRAIN_CHUNK = 1000


class Engine:
    """A worker pool plus batched future completion for one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, workers: int = 4) -> None:
        self.loop = loop
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="logmq-aio")
        self._done: deque[tuple[asyncio.Future[Any], Any, BaseException | None]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self._closed = False

    # ------------------------------------------------------------------ completion
    def complete(self, fut: asyncio.Future[Any], result: Any = None,
                 error: BaseException | None = None) -> None:
        """Resolve ``fut`` on the loop (callable from any thread)."""
        self._done.append((fut, result, error))
        self._kick()

    def _kick(self) -> None:
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            with self._lock:
                self._scheduled = False

    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False
        done = self._done
        for _ in range(_DRAIN_CHUNK):
            try:
                fut, result, error = done.popleft()
            except IndexError:
                return
            if fut.done():  # cancelled by its awaiter
                continue
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)
        if done:
            self._kick()  # more left: let other callbacks run first

    # ------------------------------------------------------------------ work
    def run(self, fn: Callable[..., T], *args: Any,
            executor: ThreadPoolExecutor | None = None) -> asyncio.Future[T]:
        """Run ``fn(*args)`` on the pool (or ``executor``); the future resolves on the loop."""
        fut: asyncio.Future[T] = self.loop.create_future()
        (executor or self.pool).submit(self._call, fut, fn, args)
        return fut

    def _call(self, fut: asyncio.Future[Any], fn: Callable[..., Any],
              args: tuple[Any, ...]) -> None:
        try:
            result = fn(*args)
        except BaseException as e:  # delivered to the awaiting task, re-raised there
            self.complete(fut, None, e)
        else:
            self.complete(fut, result)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the pool, fire and forget (``fn`` reports by itself)."""
        self.pool.submit(fn, *args)

    def close(self) -> None:
        self._closed = True
        self.pool.shutdown(wait=True)


class LoopEvent:
    """An asyncio.Event the engine's threads can set cheaply and often (append waiters).

    ``notify`` runs on every append to a watched partition, in the appending thread: it only
    schedules a loop callback when the event is not already pending.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()
        self._pending = False

    def notify(self) -> None:
        if self._pending:
            return
        self._pending = True
        try:
            self.loop.call_soon_threadsafe(self._set)
        except RuntimeError:
            pass

    def _set(self) -> None:
        self.event.set()

    def clear(self) -> None:
        self._pending = False
        self.event.clear()

    async def wait(self, timeout: float) -> bool:
        if self.event.is_set():
            return True
        try:
            async with asyncio.timeout(timeout):
                await self.event.wait()
        except TimeoutError:
            return False
        return True
