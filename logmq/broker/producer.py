"""The embedded producer: batching by size and linger, partitioning, futures, backpressure.

Records wait in a per-partition accumulator until the batch reaches ``batch_size`` bytes (the
sending thread then encodes and appends it itself) or until ``linger_ms`` passes (a small
lingerer thread sends it). A batch is appended as one RecordBatch v2 and its futures complete
together. ``send_batch`` skips the accumulator: it encodes one batch per partition and appends
it synchronously, which is the fast path for bulk loads.

Ordering: within a partition, batches are appended in the order their records were sent, even
when several threads send concurrently (one drain at a time per partition, FIFO).

When a send is acknowledged: the future completes after the batch was written to the
partition's segment file, i.e. it survives a crash of this process; whether it survives a power
loss is the topic's ``fsync`` policy (``always``: fsynced before the future completes).
"""

from __future__ import annotations

import gc
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from time import time as _time
from typing import TYPE_CHECKING, Any

from xxhash import xxh3_64_intdigest

from logmq.broker.partitioner import Partitioner, StickyPartitioner, key_partition
from logmq.codec.records import codec_id, encode_batch
from logmq.errors import (
    BrokerClosedError,
    BufferFullError,
    ConfigError,
    InvalidPartitionError,
    KafkaTimeoutError,
    RecordTooLargeError,
)
from logmq.types import RecordMetadata

if TYPE_CHECKING:
    from logmq.broker.broker import Broker

__all__ = ["Producer", "RecordFuture"]

_RECORD_OVERHEAD = 16  # rough per-record framing, for buffer accounting only


def _to_bytes(v: Any, what: str) -> bytes | None:
    if v is None or isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, bytearray | memoryview):
        return bytes(v)
    raise TypeError(f"{what} must be bytes, str or None (or set a {what}_serializer), "
                    f"got {type(v).__name__}")


def _norm_headers(headers: Any) -> list[tuple[str, bytes | None]] | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    return [(str(k), _to_bytes(v, "header value")) for k, v in items]


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
                    pass

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


class Producer:
    """Sends records to a :class:`~logmq.broker.broker.Broker`'s topics. Thread-safe.

    Config: ``batch_size`` (bytes, default 64 KiB), ``linger_ms`` (default 5),
    ``buffer_memory`` (bytes waiting or being appended, default 32 MiB), ``max_block_ms``
    (how long send blocks on a full buffer before :class:`BufferFullError`, default 60 s),
    ``compression`` (none, gzip, lz4, zstd, snappy), ``partitioner``,
    ``key_serializer`` / ``value_serializer``.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        batch_size: int = 64 * 1024,
        linger_ms: float = 5,
        buffer_memory: int = 32 << 20,
        max_block_ms: float = 60_000,
        compression: str | int | None = None,
        partitioner: Partitioner | None = None,
        key_serializer: Callable[[Any], bytes | None] | None = None,
        value_serializer: Callable[[Any], bytes | None] | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise ConfigError(f"unknown producer config: {', '.join(sorted(unknown))}")
        if batch_size < 1 or buffer_memory < batch_size:
            raise ConfigError("batch_size must be >= 1 and buffer_memory >= batch_size")
        self._broker = broker
        self.batch_size = batch_size
        self.linger = linger_ms / 1000
        self.buffer_memory = buffer_memory
        self.max_block = max_block_ms / 1000
        self.compression = codec_id(compression or 0)
        self._partitioner = partitioner
        self._key_ser = key_serializer
        self._value_ser = value_serializer
        self._sticky = StickyPartitioner()
        self._topic_limits: dict[str, tuple[int, Any]] = {}
        self._topics_version = -1
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._open: dict[tuple[str, int], _Batch] = {}
        self._ready: dict[tuple[str, int], deque[_Batch]] = {}
        self._drain_locks: dict[tuple[str, int], threading.Lock] = {}
        self._buffered = 0
        self._closed = False
        self._linger_wake = threading.Condition(self._lock)
        self._lingerer: threading.Thread | None = None

    def _topic_info(self, topic: str) -> tuple[int, Any]:
        """(partition count, partition 0's log) of a topic, cached until it changes."""
        n = self._broker.ensure_topic(topic)
        info = (n, self._broker.partition_log(topic, 0))
        self._topic_limits[topic] = info
        return info

    # ------------------------------------------------------------------ partitioning
    def _choose(self, topic: str, key: bytes | None, partition: int | None, n: int) -> int:
        if partition is not None:
            if not 0 <= partition < n:
                raise InvalidPartitionError(topic, partition, n)
            return partition
        if self._partitioner is not None:
            p = self._partitioner(key, n)
            if not 0 <= p < n:
                raise InvalidPartitionError(topic, p, n)
            return p
        if key is None:
            return self._sticky.partition(topic, n)
        return key_partition(key, n)

    # ------------------------------------------------------------------ send
    def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: Any = None,
        partition: int | None = None,
        timestamp: int | None = None,
    ) -> RecordFuture:
        """Queue one record; the returned future resolves when its batch is appended."""
        if self._closed:
            raise BrokerClosedError("producer is closed")
        k = self._key_ser(key) if self._key_ser else key
        if k.__class__ is not bytes and k is not None:
            k = _to_bytes(k, "key")
        v = self._value_ser(value) if self._value_ser else value
        if v.__class__ is not bytes and v is not None:
            v = _to_bytes(v, "value")
        hdrs = _norm_headers(headers) if headers else None
        ts = int(_time() * 1000) if timestamp is None else int(timestamp)
        if self._topics_version != self._broker.topics_version:
            self._topic_limits.clear()
            self._topics_version = self._broker.topics_version
        limits = self._topic_limits.get(topic)
        if limits is None:
            limits = self._topic_info(topic)
        n, plog0 = limits
        size = (len(k) if k else 0) + (len(v) if v else 0) + _RECORD_OVERHEAD
        if hdrs:
            size += sum(len(hk) + len(hv or b"") + 4 for hk, hv in hdrs)
        if size > plog0.config.max_message_bytes:
            raise RecordTooLargeError(f"record of about {size} bytes exceeds max.message.bytes")
        full: tuple[str, int] | None = None
        deadline: float | None = None
        while True:
            with self._lock:
                if self._buffered + size <= self.buffer_memory or self._buffered == 0:
                    p = self._choose(topic, k, partition, n)
                    tp = (topic, p)
                    batch = self._open.get(tp)
                    if batch is None:
                        batch = self._open[tp] = _Batch(tp)
                        if self.linger > 0:
                            self._ensure_lingerer()
                            self._linger_wake.notify()
                    i = len(batch.records)
                    batch.records.append((k, v, hdrs) if hdrs else (k, v))
                    batch.timestamps.append(ts)
                    batch.size += size
                    self._buffered += size
                    if batch.size >= self.batch_size or self.linger <= 0:
                        self._seal(tp, batch)
                        full = tp
                    break
                # Buffer full: send what is open ourselves, then wait for in-flight appends.
                to_drain = []
                for otp, ob in list(self._open.items()):
                    self._seal(otp, ob)
                    to_drain.append(otp)
            for otp in to_drain:
                self._drain(otp)
            with self._lock:
                if self._buffered + size <= self.buffer_memory:
                    continue
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.max_block
                if now >= deadline:
                    raise BufferFullError(
                        f"producer buffer ({self.buffer_memory} bytes) stayed full for "
                        f"{self.max_block * 1000:.0f} ms"
                    )
                self._space.wait(deadline - now)
        if full is not None:
            self._drain(full)
        return RecordFuture(batch, i)

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

    # ------------------------------------------------------------------ bulk
    def send_batch(
        self,
        topic: str,
        records: Iterable[Sequence[Any]],
        partition: int | None = None,
        timestamp: int | None = None,
    ) -> list[RecordMetadata]:
        """Append many ``(key, value)`` / ``(key, value, headers)`` records now.

        Records are partitioned like :meth:`send` and written as one batch per partition
        (split at ``batch_size``); returns the metadata of the first record of each batch
        appended, in append order. Blocks until appended; no futures, no accumulator.
        """
        if self._closed:
            raise BrokerClosedError("producer is closed")
        paused = gc.isenabled()
        if paused:  # nothing here builds cycles; see Consumer._fetch for the rationale
            gc.disable()
        try:
            return self._send_batch(topic, records, partition, timestamp)
        finally:
            if paused:
                gc.enable()

    def _send_batch(self, topic: str, records: Iterable[Sequence[Any]], partition: int | None,
                    timestamp: int | None) -> list[RecordMetadata]:
        n = self._broker.ensure_topic(topic)
        ts = int(time.time() * 1000) if timestamp is None else int(timestamp)
        kser, vser = self._key_ser, self._value_ser
        if kser is None and vser is None and partition is None and self._partitioner is None:
            if not isinstance(records, list):
                records = list(records)
            fast = self._bucket_plain(topic, records, n)
            if fast is not None:
                return self._append_buckets(topic, fast, ts)
        buckets: dict[int, list[tuple]] = {}
        custom = self._partitioner
        sticky_p = None
        h = key_partition
        for rec in records:
            k = rec[0]
            v = rec[1]
            if kser is not None:
                k = kser(k)
            if vser is not None:
                v = vser(v)
            if k.__class__ is not bytes and k is not None:
                k = _to_bytes(k, "key")
            if v.__class__ is not bytes and v is not None:
                v = _to_bytes(v, "value")
            if len(rec) > 2 and rec[2]:
                item: tuple = (k, v, _norm_headers(rec[2]))
            else:
                item = (k, v)
            if partition is not None:
                p = partition
            elif custom is not None:
                p = custom(k, n)
            elif k is None:
                if sticky_p is None:
                    sticky_p = self._sticky.partition(topic, n)
                p = sticky_p
            else:
                p = h(k, n)
            b = buckets.get(p)
            if b is None:
                if not 0 <= p < n:
                    raise InvalidPartitionError(topic, p, n)
                b = buckets[p] = []
            b.append(item)
        if sticky_p is not None:
            self._sticky.next(topic, n)
        return self._append_buckets(topic, buckets, ts)

    def _bucket_plain(self, topic: str, records: list, n: int) -> dict[int, list] | None:
        """Partition plain ``(bytes key, bytes value)`` records with a per-call key cache.

        Returns None as soon as a record needs the general path (headers, str values, null
        keys...), so callers with such records pay one aborted pass at most.
        """
        h = xxh3_64_intdigest
        cache: dict[bytes, list] = {}
        buckets: dict[int, list] = {}
        try:
            for rec in records:
                k, v = rec  # records with headers do not unpack: general path
                if v.__class__ is not bytes:
                    return None
                b = cache.get(k)
                if b is None:
                    if k.__class__ is not bytes:
                        return None
                    p = h(k) % n
                    b = buckets.get(p)
                    if b is None:
                        b = buckets[p] = []
                    cache[k] = b
                b.append(rec)
        except (TypeError, ValueError):
            return None
        return buckets

    def _append_buckets(self, topic: str, buckets: dict[int, list], ts: int
                        ) -> list[RecordMetadata]:
        out: list[RecordMetadata] = []
        for p, recs in buckets.items():
            plog = self._broker.partition_log(topic, p)
            limit = max(1, plog.config.max_message_bytes // 2)
            chunk = self._chunk_len(recs, min(limit, max(self.batch_size, 1 << 20)))
            for start in range(0, len(recs), chunk):
                data = encode_batch(recs[start : start + chunk], timestamp=ts,
                                    compression=self.compression)
                first, _ = plog.append(data, validate=False)
                out.append(RecordMetadata(topic, p, first, ts))
        return out

    @staticmethod
    def _chunk_len(recs: list[tuple], max_bytes: int) -> int:
        sample = recs[: min(len(recs), 64)]
        avg = sum((len(r[0]) if r[0] else 0) + (len(r[1]) if r[1] else 0) + 16
                  for r in sample) / max(1, len(sample))
        if any(len(r) > 2 for r in sample):
            avg *= 2
        return max(1, int(max_bytes // max(avg, 1)))

    # ------------------------------------------------------------------ lifecycle
    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued and wait until it is appended."""
        with self._lock:
            pending = list(self._open.items())
            for tp, b in pending:
                self._seal(tp, b)
            tps = list(self._ready)
        for tp in tps:
            self._drain(tp)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._buffered > 0:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise KafkaTimeoutError("flush timed out")
                self._space.wait(left)

    def close(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        self.flush(timeout)
        with self._lock:
            self._closed = True
            self._linger_wake.notify_all()
        if self._lingerer is not None:
            self._lingerer.join(timeout)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
