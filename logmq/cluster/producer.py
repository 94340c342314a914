"""``ClusterProducer``: the embedded Producer's ``send``/``flush``/``close`` on librdkafka.

The embedded producer's settings map onto librdkafka's (``batch_size`` -> batch.size,
``linger_ms`` -> linger.ms, ``compression`` -> compression.type, ``idempotent`` ->
enable.idempotence, ``buffer_memory`` -> queue.buffering.max.kbytes). Keyed records are
placed as the embedded producer places them (xxh3 of the key, not the Java client's murmur2),
so after ``logmq mirror`` a key's new records join its old ones in the same partition; pass
``partitioner=logmq.murmur2_partitioner`` to share placement with Java clients instead.
Sends always wait for acks=all, as an embedded append is durable (per the fsync policy) before
its future resolves.

A thread polls the client for delivery reports, so futures complete without the caller
polling; ``send`` blocks up to ``max_block_ms`` when librdkafka's queue is full, then raises
:class:`~logmq.errors.BufferFullError` as embedded.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer as CKProducer

from logmq import errors
from logmq.broker.partitioner import key_partition
from logmq.broker.serde import _norm_headers, serialize_kv
from logmq.cluster.common import ClusterContext, translate
from logmq.types import RecordMetadata

__all__ = ["ClusterProducer", "ClusterFuture"]

#: send options that only an embedded log's queue engine or storage can honour
_LOCAL_OPTIONS = {
    "expected_offset": "conditional appends need the partition's end offset checked and the "
                       "append done atomically, which Kafka's produce request cannot express",
    "msg_id": "dedup by id is logmq's own; use idempotent=True for retries of one producer",
    "delay_ms": "delays apply to log.queue() consumers, which are not built on clusters yet",
    "deliver_at": "delays apply to log.queue() consumers, which are not built on clusters yet",
    "ttl_ms": "TTLs apply to log.queue() consumers, which are not built on clusters yet",
    "priority": "priorities apply to log.queue() consumers, not built on clusters yet",
}


class ClusterFuture:
    """Resolves to :class:`~logmq.types.RecordMetadata` when the cluster acknowledges."""

    __slots__ = ("_event", "_meta", "_error", "_callbacks", "_lock")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._meta: RecordMetadata | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[ClusterFuture], None]] = []
        self._lock = threading.Lock()

    def _complete(self, meta: RecordMetadata | None, error: BaseException | None) -> None:
        with self._lock:
            self._meta, self._error = meta, error
            self._event.set()
            cbs, self._callbacks = self._callbacks, []
        for cb in cbs:
            cb(self)

    def done(self) -> bool:
        return self._event.is_set()

    def result(self, timeout: float | None = None) -> RecordMetadata:
        if not self._event.wait(timeout):
            raise errors.KafkaTimeoutError(f"record not acknowledged within {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._meta is not None
        return self._meta

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if not self._event.wait(timeout):
            raise errors.KafkaTimeoutError(f"record not acknowledged within {timeout} s")
        return self._error

    def add_done_callback(self, fn: Callable[[ClusterFuture], None]) -> None:
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(fn)
                return
        fn(self)


class ClusterProducer:
    """Sends records to a cluster's topics with the embedded Producer's API. Thread-safe."""

    def __init__(
        self,
        broker: ClusterContext,
        *,
        batch_size: int = 64 * 1024,
        linger_ms: float = 5,
        buffer_memory: int = 32 << 20,
        max_block_ms: float = 60_000,
        compression: str | None = None,
        partitioner: Callable[..., int] | None = None,
        key_serializer: Callable[[Any], bytes | None] | None = None,
        value_serializer: Callable[[Any], bytes | None] | None = None,
        idempotent: bool = False,
        delivery_timeout_ms: int = 120_000,
        kafka_config: dict[str, Any] | None = None,
        **unknown: Any,
    ) -> None:
        unknown.pop("dedup_window_ms", None)  # only meaningful with msg_id, refused per send
        if unknown:
            raise errors.ConfigError(f"unknown producer config: {', '.join(sorted(unknown))}")
        if batch_size < 1 or buffer_memory < batch_size:
            raise errors.ConfigError("batch_size must be >= 1 and buffer_memory >= batch_size")
        self._broker = broker
        self.max_block = max_block_ms / 1000
        self._partitioner = partitioner
        self._key_ser, self._value_ser = key_serializer, value_serializer
        cfg = broker.client_config({
            "acks": "all", "batch.size": batch_size, "linger.ms": linger_ms,
            "queue.buffering.max.kbytes": max(1, buffer_memory // 1024),
            "compression.type": str(compression or "none"),
            "enable.idempotence": bool(idempotent), "partitioner": "murmur2_random",
            "message.timeout.ms": int(delivery_timeout_ms),
            "client.id": f"logmq-{uuid.uuid4().hex[:8]}",
        })
        cfg.update(kafka_config or {})
        self._p = CKProducer(cfg)
        self._partitions: dict[str, int] = {}
        self._closed = False
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="logmq-cluster-producer",
                                        daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._p.poll(0.05)

    def _partition_count(self, topic: str) -> int:
        n = self._partitions.get(topic)
        if n is None:
            n = self._partitions[topic] = self._broker.partitions_for(topic)
        return n

    def send(self, topic: str, value: Any = None, key: Any = None, headers: Any = None,
             partition: int | None = None, timestamp: int | None = None,
             **options: Any) -> ClusterFuture:
        """Queue one record; the future resolves when the cluster acknowledges it (acks=all).
        Unknown topics raise at once, as embedded with ``auto_create_topics`` off."""
        for name in options:
            reason = _LOCAL_OPTIONS.get(name)
            if reason is None:
                raise errors.ConfigError(f"unknown send option {name!r}")
            raise errors.UnsupportedOnClusterError(f"send({name}=...) on a cluster: {reason}")
        if self._closed:
            raise errors.BrokerClosedError("producer is closed")
        if timestamp is not None and timestamp < 0:
            raise errors.InvalidTimestampError(f"timestamp must be >= 0, got {timestamp}")
        k, v = serialize_kv(self._key_ser, self._value_ser, key, value)
        hdrs = _norm_headers(headers) if headers else None
        n = self._partition_count(topic)
        if partition is None and self._partitioner is not None:
            partition = self._partitioner(k, n)
        elif partition is None and k is not None:
            partition = key_partition(k, n)  # the embedded placement: keys keep partitions
        if partition is not None and not 0 <= partition < n:
            raise errors.InvalidPartitionError(topic, partition, n)
        fut = ClusterFuture()

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                fut._complete(None, translate(err, topic, partition, "send"))
            else:
                fut._complete(RecordMetadata(msg.topic(), msg.partition(), msg.offset(),
                                             msg.timestamp()[1]), None)

        kw: dict[str, Any] = {"value": v, "key": k, "on_delivery": delivered}
        if partition is not None:
            kw["partition"] = partition
        if timestamp is not None:
            kw["timestamp"] = int(timestamp)
        if hdrs:
            kw["headers"] = hdrs
        deadline = time.monotonic() + self.max_block
        while True:
            try:
                self._p.produce(topic, **kw)
                return fut
            except BufferError:
                if time.monotonic() >= deadline:
                    raise errors.BufferFullError(
                        f"producer queue stayed full for {self.max_block * 1000:.0f} ms"
                    ) from None
                self._p.poll(0.05)  # serves delivery reports, which is what frees room
            except Exception as e:
                from confluent_kafka import KafkaException

                if isinstance(e, KafkaException):
                    raise translate(e, topic, partition, "send") from None
                raise

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued record is acknowledged (or failed)."""
        left = self._p.flush(-1 if timeout is None else timeout)
        if left:
            raise errors.KafkaTimeoutError(f"{left} record(s) not acknowledged in {timeout} s")

    def close(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.flush(timeout)
        finally:
            self._stop.set()
            self._poller.join(5)

    def __enter__(self) -> ClusterProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
