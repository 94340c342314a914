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

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, Unpack

from logmq.broker.accumulator import Accumulator
from logmq.broker.bulk import BulkSend
from logmq.broker.futures import RecordFuture, _Batch, completed_future
from logmq.broker.partitioner import Partitioner, StickyPartitioner, key_partition
from logmq.broker.queues.options import SendOptions
from logmq.broker.send_fast import RECORD_OVERHEAD, send_fast
from logmq.broker.serde import _norm_headers, _to_bytes, serialize_kv
from logmq.clock import SYSTEM_CLOCK, Clock
from logmq.codec.records import codec_id
from logmq.errors import (
    BrokerClosedError,
    BufferFullError,
    ConfigError,
    InvalidPartitionError,
    InvalidTimestampError,
    KafkaTimeoutError,
    RecordTooLargeError,
)
from logmq.types import RecordMetadata

if TYPE_CHECKING:
    from logmq.broker.producer_ids import ProducerIdAllocator
    from logmq.storage.interface import LogStore


class QueueHooks(Protocol):
    """What the producer needs of the queue engine (depth limits and msg-id dedup)."""

    def wait_for_room(self, topic: str, limit: int, timeout: float) -> None: ...

    def dedup_send(self, topic: str, msg_id: bytes, window_ms: int,
                   send: Callable[[], RecordFuture]) -> RecordFuture: ...

__all__ = ["Producer", "RecordFuture", "completed_future"]

_SEND_OPTIONS = frozenset(SendOptions.__annotations__)

_RECORD_OVERHEAD = RECORD_OVERHEAD  # rough per-record framing, for buffer accounting only


class Producer(Accumulator, BulkSend):
    """Sends records to a :class:`~logmq.broker.broker.Broker`'s topics. Thread-safe.

    Config: ``batch_size`` (bytes, default 64 KiB), ``linger_ms`` (default 5),
    ``buffer_memory`` (bytes waiting or being appended, default 32 MiB), ``max_block_ms``
    (how long send blocks on a full buffer, or on a queue topic at its ``max.queue.depth``,
    before :class:`BufferFullError` / :class:`QueueFullError`, default 60 s),
    ``compression`` (none, gzip, lz4, zstd, snappy), ``partitioner``,
    ``key_serializer`` / ``value_serializer``, ``idempotent`` (stamp a producer id and
    per-partition sequence numbers in every batch, as Kafka's idempotent producer does, so a
    re-appended batch is recognised by the partition and not stored twice),
    ``dedup_window_ms`` (how long a ``msg_id`` is remembered, default 5 minutes).
    """

    def __init__(
        self,
        broker: LogStore,
        *,
        queues: Callable[[], QueueHooks] | None = None,
        producer_ids: ProducerIdAllocator | None = None,
        clock: Clock = SYSTEM_CLOCK,
        batch_size: int = 64 * 1024,
        linger_ms: float = 5,
        buffer_memory: int = 32 << 20,
        max_block_ms: float = 60_000,
        compression: str | int | None = None,
        partitioner: Partitioner | None = None,
        key_serializer: Callable[[Any], bytes | None] | None = None,
        value_serializer: Callable[[Any], bytes | None] | None = None,
        idempotent: bool = False,
        dedup_window_ms: int = 300_000,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise ConfigError(f"unknown producer config: {', '.join(sorted(unknown))}")
        if batch_size < 1 or buffer_memory < batch_size:
            raise ConfigError("batch_size must be >= 1 and buffer_memory >= batch_size")
        self._broker = broker
        self._queues = queues
        self._wall = clock.time  # record timestamps, delays and TTLs
        self.batch_size = batch_size
        self.linger = linger_ms / 1000
        self.buffer_memory = buffer_memory
        self.max_block = max_block_ms / 1000
        self.compression = codec_id(compression or 0)
        self._partitioner = partitioner
        self._key_ser = key_serializer
        self._value_ser = value_serializer
        self._sticky = StickyPartitioner()
        self._topic_limits: dict[str, tuple[int, Any, Any, int | None]] = {}
        self._topics_version = -1
        #: per topic: (topics version, partition 0's log, its config, partitions,
        #: max.message.bytes, {key: partition} cache, (topic, p) tuples), see send()
        self._fast: dict[str, tuple[int, Any, Any, int, int, dict[bytes, int],
                                    tuple[tuple[str, int], ...]]] = {}
        # where topics_version is a plain attribute (a Broker's LogManager), read it there:
        # the Broker property costs a call per send
        src = getattr(broker, "logs", broker)
        self._version_src: Any = src if hasattr(src, "topics_version") else broker
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._open: dict[tuple[str, int], _Batch] = {}
        self._ready: dict[tuple[str, int], deque[_Batch]] = {}
        self._drain_locks: dict[tuple[str, int], threading.Lock] = {}
        self._buffered = 0
        self._closed = False
        self._linger_wake = threading.Condition(self._lock)
        self._lingerer: threading.Thread | None = None
        if dedup_window_ms < 1:
            raise ConfigError("dedup_window_ms must be >= 1")
        self.dedup_window_ms = dedup_window_ms
        #: the producer id stamped in batches (-1 unless idempotent)
        self.producer_id = -1
        self._seqs: dict[tuple[str, int], int] = {}
        if idempotent:
            if producer_ids is None:
                from logmq.broker.producer_ids import ProducerIdAllocator

                producer_ids = ProducerIdAllocator(broker.meta.env)
            self.producer_id = producer_ids.allocate()

    def _topic_info(self, topic: str) -> tuple[int, Any, Any, int | None]:
        """(partitions, partition 0's log, its config, max.queue.depth), cached per topic.

        The cache is dropped when topics change (broker version) or the topic's config is
        altered (partition 0 then holds a new config object).
        """
        n = self._broker.ensure_topic(topic)
        plog0 = self._broker.partition_log(topic, 0)
        cfg = plog0.config
        qlimit = cfg.max_queue_depth
        info = (n, plog0, cfg, qlimit)
        self._topic_limits[topic] = info
        if (qlimit is None and self._key_ser is None and self._value_ser is None
                and self._partitioner is None):
            # send()'s fast path: valid while the version and partition 0's config hold
            self._fast[topic] = (self._topics_version, plog0, cfg, n, cfg.max_message_bytes,
                                 {}, tuple((topic, p) for p in range(n)))
        else:
            self._fast.pop(topic, None)
        return info

    def _limits(self, topic: str) -> tuple[int, Any, Any, int | None]:
        if self._topics_version != self._broker.topics_version:
            self._topic_limits.clear()
            self._topics_version = self._broker.topics_version
        limits = self._topic_limits.get(topic)
        if limits is None or limits[1].config is not limits[2]:
            limits = self._topic_info(topic)
        return limits

    def _queue_hooks(self) -> QueueHooks:
        if self._queues is None:
            raise ConfigError("queue options (max.queue.depth, msg_id) need the queue engine: "
                              "create the producer with Broker.producer()")
        return self._queues()

    def _wait_for_room(self, topic: str, limit: int) -> None:
        self._queue_hooks().wait_for_room(topic, limit, self.max_block)

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
        **options: Unpack[SendOptions],
    ) -> RecordFuture:
        """Queue one record; the returned future resolves when its batch is appended.

        Message options (headers documented in :mod:`logmq.broker.queues.options`):
        ``delay_ms`` / ``deliver_at`` (ms since the epoch): queue consumers do not receive
        the record before then; ``ttl_ms``: never delivered to a queue consumer after
        send time + ttl; ``priority`` 0..9; ``msg_id``: a second send with the same id to
        the same topic within ``dedup_window_ms`` appends nothing and returns the first
        send's metadata; ``expected_offset``: append now, and only if the partition's end
        offset is exactly that (else :class:`~logmq.errors.ConcurrencyError`).
        """
        if (headers is None and partition is None and timestamp is None and not options
                and not self._closed):
            # The common case (plain records): logmq.broker.send_fast, compiled where the
            # native core is built, takes it when the record joins an open batch.
            fast = self._fast.get(topic)
            if fast is not None:
                f = send_fast(self, fast, topic, key, value, RecordFuture)
                if f is not None:
                    return f
            # a new batch, a full buffer, an oversized record, another type: the general path
            return self._send_general(topic, value, key, None, None, None)
        if timestamp is not None and timestamp < 0:
            _negative_timestamp(timestamp)
        if options:
            return self._send_with_options(topic, value, key, headers, partition, timestamp,
                                           options)
        return self._send_general(topic, value, key, headers, partition, timestamp)

    def _send_general(self, topic: str, value: Any, key: Any, headers: Any,
                      partition: int | None, timestamp: int | None) -> RecordFuture:
        if self._closed:
            raise BrokerClosedError("producer is closed")
        k, v = serialize_kv(self._key_ser, self._value_ser, key, value)
        hdrs = _norm_headers(headers) if headers else None
        ts = int(self._wall() * 1000) if timestamp is None else int(timestamp)
        if self._topics_version != self._broker.topics_version:
            self._topic_limits.clear()
            self._topics_version = self._broker.topics_version
        limits = self._topic_limits.get(topic)
        if limits is None:
            limits = self._topic_info(topic)
        n, plog0, cfg, qlimit = limits
        if plog0.config is not cfg:  # the topic's config was altered
            n, plog0, cfg, qlimit = self._topic_info(topic)
        if qlimit is not None:
            self._wait_for_room(topic, qlimit)
        size = (len(k) if k else 0) + (len(v) if v else 0) + _RECORD_OVERHEAD
        if hdrs:
            size += sum(len(hk) + len(hv or b"") + 4 for hk, hv in hdrs)
        if size > cfg.max_message_bytes:
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

    # ------------------------------------------------------------------ options
    def _send_with_options(self, topic: str, value: Any, key: Any, headers: Any,
                           partition: int | None, timestamp: int | None,
                           options: SendOptions) -> RecordFuture:
        from logmq.broker.queues import options as opt

        unknown = set(options) - _SEND_OPTIONS
        if unknown:
            raise TypeError(f"send() got unexpected keyword argument(s): "
                            f"{', '.join(sorted(unknown))}")
        t = self._wall()
        now = -int(-t * 1000)  # rounded up: a delay is never shorter than asked
        if timestamp is None:  # the same clock reading as the due and expiry times
            timestamp = int(t * 1000)
        hdrs = list(_norm_headers(headers) or ())
        delay_ms = options.get("delay_ms")
        deliver_at = options.get("deliver_at")
        if delay_ms is not None and deliver_at is not None:
            raise ConfigError("pass delay_ms or deliver_at, not both")
        if delay_ms is not None:
            if delay_ms < 0:
                raise ConfigError("delay_ms must be >= 0")
            deliver_at = now + int(delay_ms)
        if deliver_at is not None:
            hdrs.append((opt.DELIVER_AT, b"%d" % int(deliver_at)))
        ttl_ms = options.get("ttl_ms")
        if ttl_ms is not None:
            if ttl_ms <= 0:
                raise ConfigError("ttl_ms must be > 0")
            hdrs.append((opt.EXPIRES_AT, b"%d" % (now + int(ttl_ms))))
        priority = options.get("priority")
        if priority is not None:
            hdrs.append((opt.PRIORITY, b"%d" % opt.check_priority(priority)))
        msg_id = options.get("msg_id")
        if msg_id is not None:
            msg_id = _to_bytes(msg_id, "msg_id")
            if not msg_id:
                raise ConfigError("msg_id must not be empty")
            hdrs.append((opt.MSG_ID, msg_id))
        expected = options.get("expected_offset")

        def send() -> RecordFuture:
            if expected is not None:
                return self._send_conditional(topic, value, key, hdrs, partition, timestamp,
                                              expected)
            return self.send(topic, value, key, hdrs or None, partition, timestamp)

        if msg_id is not None:
            return self._queue_hooks().dedup_send(topic, msg_id, self.dedup_window_ms, send)
        return send()

    def _conditional_partition(self, topic: str, keys: list[bytes | None],
                               partition: int | None, n: int) -> int:
        if partition is not None:
            return self._choose(topic, None, partition, n)
        if n == 1:
            return 0
        if keys and all(k is not None for k in keys):
            ps = {self._choose(topic, k, None, n) for k in keys}
            if len(ps) == 1:
                return ps.pop()
        raise ConfigError("a conditional append (expected_offset) needs a partition: pass "
                          "partition=, or keys that all map to one partition")

    def _append_conditional(self, topic: str, p: int, records: list[tuple], ts: int,
                            expected: int) -> int:
        tp = (topic, p)
        with self._lock:  # what this producer already queued for tp goes first
            b = self._open.get(tp)
            if b is not None:
                self._seal(tp, b)
        self._drain_lock(tp)
        self._drain(tp)
        with self._drain_locks[tp]:
            return self._append_stamped(tp, records, timestamp=ts, expected_offset=expected)

    def _send_conditional(self, topic: str, value: Any, key: Any, hdrs: list,
                          partition: int | None, timestamp: int | None,
                          expected: int) -> RecordFuture:
        if self._closed:
            raise BrokerClosedError("producer is closed")
        k, v = serialize_kv(self._key_ser, self._value_ser, key, value)
        n, _plog0, _cfg, qlimit = self._limits(topic)
        if qlimit is not None:
            self._wait_for_room(topic, qlimit)
        p = self._conditional_partition(topic, [k], partition, n)
        ts = int(self._wall() * 1000) if timestamp is None else int(timestamp)
        first = self._append_conditional(topic, p, [(k, v, hdrs) if hdrs else (k, v)], ts,
                                         int(expected))
        return completed_future(RecordMetadata(topic, p, first, ts))

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


def _negative_timestamp(ts: int) -> None:
    raise InvalidTimestampError(f"timestamp {ts} is negative (ms since the epoch, or None for now)")
