"""The values every part of :mod:`logmq.streams` shares: expected-version words, events.

Their own module so the store, the subscriptions and the snapshots import them from one place
below all three (no import cycle).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ANY", "NO_STREAM", "STREAM_EXISTS", "Headers", "StreamEvent"]

ANY = "any"
NO_STREAM = "no_stream"
STREAM_EXISTS = "stream_exists"

Headers = list[tuple[str, bytes | None]]


class StreamEvent(NamedTuple):
    """One event of a stream: a record plus its stream version."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    version: int | None
