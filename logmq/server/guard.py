"""What the server keeps to defend itself: a byte budget, rate-limited logs, counters.

Kept apart from the connection code so each piece can be tested on its own and the connection
loop reads as the protocol it implements.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

__all__ = ["BytePool", "RateLimitedLog", "ServerStats"]


class BytePool:
    """A global budget of bytes (Kafka's queued.max.request.bytes memory pool).

    A connection reserves the announced size of a request frame before reading its body and
    gives it back once the request has been handled. When the budget is spent, readers wait in
    arrival order, so one client announcing huge frames cannot starve the others forever; the
    waiter's own request-arrival deadline still runs.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    async def acquire(self, n: int, timeout: float | None) -> bool:
        """Reserve ``n`` bytes; False if they did not become free within ``timeout`` s."""
        if not self._waiters and self.used + n <= self.capacity:
            self.used += n
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, fut)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release(n)  # granted just as the waiter was cancelled
            raise
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
        return True

    def release(self, n: int) -> None:
        self.used -= n
        self._grant()

    def _grant(self) -> None:
        while self._waiters:
            n, fut = self._waiters[0]
            if fut.done():  # timed out or cancelled: it never got the bytes
                self._waiters.pop(0)
                continue
            if self.used + n > self.capacity:
                return
            self._waiters.pop(0)
            self.used += n
            fut.set_result(None)


class RateLimitedLog:
    """At most ``per_minute`` lines a minute per kind; the rest are counted and summarized.

    Malformed input is the attacker's choice of volume: logging every frame lets an
    unauthenticated client fill the disk.
    """

    def __init__(self, logger: logging.Logger, per_minute: int) -> None:
        self.logger = logger
        self.per_minute = per_minute
        self._window = time.monotonic()
        self._lines: Counter[str] = Counter()
        self._suppressed: Counter[str] = Counter()

    def log(self, level: int, kind: str, msg: str, *args: Any, exc_info: bool = False) -> None:
        now = time.monotonic()
        if now - self._window >= 60:
            for k, n in sorted(self._suppressed.items()):
                self.logger.warning("%d more %s events in the last minute (not logged)", n, k)
            self._window = now
            self._lines.clear()
            self._suppressed.clear()
        if self._lines[kind] >= self.per_minute:
            self._suppressed[kind] += 1
            return
        self._lines[kind] += 1
        self.logger.log(level, msg, *args, exc_info=exc_info)


class ServerStats(Counter[str]):
    """Counters of refused and closed connections and malformed input (names are stable).

    ``malformed_frames``: undecodable frames; ``refused_connections``: over max.connections;
    ``idle_closed`` / ``slow_closed``: idle or request-arrival timeouts; ``client_gone``: long
    polls ended because their client disconnected; ``handler_errors``:
    unexpected exceptions in a handler (bugs: the connection is closed).
    """
