"""One token bucket for every rate limit (queue workers, ``logmq replay --rate``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from logmq.errors import ConfigError

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up (default a tenth of a second's
    worth, at least 1); it starts full, so short runs are not slowed at their start.

    :meth:`take` grants what is there without blocking (workers decide how to wait);
    :meth:`acquire` sleeps until its tokens are there. ``clock`` and ``sleep`` are injectable
    so tests drive time without sleeping. Thread-safe.
    """

    def __init__(self, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, *, name: str = "rate") -> None:
        if rate <= 0:
            raise ConfigError(f"{name} must be > 0")
        self.rate = float(rate)
        self.capacity = max(1.0, float(burst) if burst is not None else self.rate / 10)
        self.tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now

    def take(self, want: int) -> tuple[int, float]:
        """(tokens granted now, 0..want; seconds until one more is available)."""
        with self._lock:
            self._refill()
            n = min(want, int(self.tokens))
            if n >= 1:
                self.tokens -= n
                return n, 0.0
            return 0, (1 - self.tokens) / self.rate

    def acquire(self, n: float = 1.0) -> None:
        """Take ``n`` tokens, sleeping until they are there (above the capacity: debt)."""
        while True:
            with self._lock:
                self._refill()
                want = min(n, self.capacity)
                if self.tokens >= want - 1e-9:  # float slack: a sleep may refill a hair short
                    self.tokens -= n
                    return
                wait = (want - self.tokens) / self.rate
            self._sleep(wait)
