"""Producer futures: one accumulator batch's records complete together when it is appended."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from logmq.errors import KafkaTimeoutError
from logmq.types import RecordMetadata

__all__ = ["RecordFuture", "completed_future"]


class _Batch:
    """Records bound for one partition, and the shared completion state of their futures."""

    __slots__ = ("tp", "records", "timestamps", "size", "created", "base_offset", "error",
                 "done", "callbacks", "_event")

    def __init__(self, tp: tuple[str, int]) -> None:
        self.tp = tp
        self.records: list[tuple] = []
        self.timestamps: list[int] = []
        self.size = 0
        self.created = time.monotonic()
        self.base_offset = -1
        self.error: BaseException | None = None
        self.done = False
        self.callbacks: list[tuple[Callable[..., None], int]] | None = None
        self._event: threading.Event | None = None

    def complete(self, base_offset: int, error: BaseException | None) -> None:
        self.base_offset = base_offset
        self.error = error
        self.done = True
        ev = self._event
        if ev is not None:
            ev.set()
        if self.callbacks:
            for fn, i in self.callbacks:
                try:
                    fn(RecordFuture(self, i))
                except Exception:  # a failing user callback must not break the producer
                    logging.getLogger("logmq.producer").exception(
                        "producer callback %r failed", fn)

    def wait(self, timeout: float | None) -> bool:
        if self.done:
            return True
        ev = self._event
        if ev is None:
            ev = self._event = threading.Event()
            if self.done:
                return True
        return ev.wait(timeout)


class RecordFuture:
    """Result of :meth:`Producer.send`: ``result()`` gives the :class:`RecordMetadata`.

    Lighter than ``concurrent.futures.Future`` (no lock per record): all futures of a batch
    share its completion state.
    """

    __slots__ = ("_batch", "_i")

    def __init__(self, batch: _Batch, index: int) -> None:
        self._batch = batch
        self._i = index

    def done(self) -> bool:
        return self._batch.done

    def result(self, timeout: float | None = None) -> RecordMetadata:
        b = self._batch
        if not b.wait(timeout):
            raise KafkaTimeoutError(f"record not acknowledged within {timeout} s")
        if b.error is not None:
            raise b.error
        return RecordMetadata(b.tp[0], b.tp[1], b.base_offset + self._i, b.timestamps[self._i])

    get = result  # kafka-python spelling

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if not self._batch.wait(timeout):
            raise KafkaTimeoutError(f"record not acknowledged within {timeout} s")
        return self._batch.error

    def add_done_callback(self, fn: Callable[[RecordFuture], None]) -> None:
        b = self._batch
        if b.done:
            fn(self)
            return
        if b.callbacks is None:
            b.callbacks = []
        b.callbacks.append((fn, self._i))
        if b.done:  # completed while we registered: the completer may have missed us
            fn(self)


def completed_future(meta: RecordMetadata) -> RecordFuture:
    """A future that is already resolved to ``meta`` (dedup hits, conditional appends)."""
    b = _Batch((meta.topic, meta.partition))
    b.timestamps.append(meta.timestamp)
    b.complete(meta.offset, None)
    return RecordFuture(b, 0)
