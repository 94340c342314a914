"""One injectable clock: wall time for timestamps and ages, monotonic time for deadlines.

The facade hands the same :class:`Clock` to the storage manager, the cleaner, the group
coordinator and the queue engine, so a test can drive retention ages, retry backoffs,
delayed deliveries and session expiry with a :class:`ManualClock` instead of sleeping.
"""

from __future__ import annotations

import threading
import time as _time
from typing import Protocol

__all__ = ["Clock", "SystemClock", "ManualClock", "SYSTEM_CLOCK"]


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch (record timestamps, retention and TTL ages)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (timeouts, session deadlines)."""
        ...


class SystemClock:
    """The real clocks (``time.time`` / ``time.monotonic``)."""

    # the builtins themselves, so reading this clock costs no more than calling time.time()
    time = staticmethod(_time.time)
    monotonic = staticmethod(_time.monotonic)


class ManualClock:
    """A clock that moves only when told to (tests); both readings advance together."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall = float(start)
        self._mono = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        with self._lock:
            self._wall += seconds
            self._mono += seconds


SYSTEM_CLOCK: Clock = SystemClock()
