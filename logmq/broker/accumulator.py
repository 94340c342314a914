"""The producer's accumulator: per-partition batches sealed at ``batch_size`` or after
``linger_ms``, drained one at a time per partition so batches land in send order.

A mixin of :class:`~logmq.broker.producer.Producer` (whose ``send`` fills the batches); the
state it works on is the producer's.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from logmq.broker.futures import _Batch
from logmq.broker.partitioner import StickyPartitioner
from logmq.codec.records import encode_batch

if TYPE_CHECKING:
    from logmq.storage.interface import LogStore

__all__ = ["Accumulator"]


class Accumulator:
    """Sealing, draining, appending and the lingerer thread."""

    if TYPE_CHECKING:
        _broker: LogStore
        _lock: threading.Lock
        _space: threading.Condition
        _linger_wake: threading.Condition
        _lingerer: threading.Thread | None
        _open: dict[tuple[str, int], _Batch]
        _ready: dict[tuple[str, int], deque[_Batch]]
        _drain_locks: dict[tuple[str, int], threading.Lock]
        _seqs: dict[tuple[str, int], int]
        _buffered: int
        _closed: bool
        linger: float
        compression: int
        producer_id: int
        _sticky: StickyPartitioner

    def _seal(self, tp: tuple[str, int], batch: _Batch) -> None:
        """Move an open batch to the ready queue (caller holds the lock)."""
        del self._open[tp]
        self._ready.setdefault(tp, deque()).append(batch)
        if tp not in self._drain_locks:
            self._drain_locks[tp] = threading.Lock()
        if batch.records and batch.records[0][0] is None:
            n = self._broker.partitions_for(tp[0])
            if self._sticky.partition(tp[0], n) == tp[1]:
                self._sticky.next(tp[0], n)

    def _drain(self, tp: tuple[str, int]) -> None:
        """Append every ready batch of ``tp`` in FIFO order; one drainer per partition."""
        with self._drain_locks[tp]:
            while True:
                with self._lock:
                    q = self._ready.get(tp)
                    if not q:
                        return
                    batch = q.popleft()
                self._append(batch)
                with self._lock:
                    self._buffered -= batch.size
                    self._space.notify_all()

    def _append(self, batch: _Batch) -> None:
        topic, p = batch.tp
        if self.producer_id >= 0:  # the caller holds the partition's drain lock
            try:
                first = self._append_stamped(batch.tp, batch.records, timestamps=batch.timestamps)
            except BaseException as e:
                batch.complete(-1, e)
                return
            batch.complete(first, None)
            return
        try:
            ts = batch.timestamps
            if ts[0] == ts[-1] and min(ts) == max(ts):
                data = encode_batch(batch.records, timestamp=ts[0], compression=self.compression)
            else:
                data = encode_batch(batch.records, timestamps=ts, compression=self.compression)
            first, _ = self._broker.partition_log(topic, p).append(data, validate=False)
        except BaseException as e:  # the futures carry it to the caller
            batch.complete(-1, e)
            return
        batch.complete(first, None)

    def _drain_lock(self, tp: tuple[str, int]) -> threading.Lock:
        with self._lock:
            lock = self._drain_locks.get(tp)
            if lock is None:
                lock = self._drain_locks[tp] = threading.Lock()
            return lock

    def _append_stamped(self, tp: tuple[str, int], records: Sequence[Sequence[Any]], *,
                        timestamp: int | None = None, timestamps: Sequence[int] | None = None,
                        expected_offset: int | None = None) -> int:
        """Encode and append one batch now, with idempotent sequence numbers if enabled.

        The caller holds ``tp``'s drain lock, so sequence numbers follow append order.
        """
        pid = self.producer_id
        seq = -1
        if pid >= 0:
            seq = self._seqs.get(tp, 0)
        if timestamps is not None and min(timestamps) == max(timestamps):
            timestamp, timestamps = timestamps[0], None
        data = encode_batch(records, timestamp=timestamp, timestamps=timestamps,
                            compression=self.compression, producer_id=pid,
                            producer_epoch=0 if pid >= 0 else -1, base_sequence=seq)
        first, _ = self._broker.partition_log(tp[0], tp[1]).append(
            data, validate=False, expected_offset=expected_offset)
        if pid >= 0:
            self._seqs[tp] = (seq + len(records)) & 0x7FFFFFFF
        return first

    # ------------------------------------------------------------------ linger
    def _ensure_lingerer(self) -> None:
        if self._lingerer is None:
            self._lingerer = threading.Thread(target=self._linger_loop, name="logmq-linger",
                                              daemon=True)
            self._lingerer.start()

    def _linger_loop(self) -> None:
        while True:
            due: list[tuple[str, int]] = []
            with self._lock:
                if self._closed and not self._open:
                    return
                now = time.monotonic()
                wait = None
                for tp, b in list(self._open.items()):
                    left = b.created + self.linger - now
                    if left <= 0 or self._closed:
                        self._seal(tp, b)
                        due.append(tp)
                    elif wait is None or left < wait:
                        wait = left
                if not due:
                    self._linger_wake.wait(wait)
                    continue
            for tp in due:
                self._drain(tp)
