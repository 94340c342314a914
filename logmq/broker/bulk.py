"""The producer's bulk path: ``send_batch`` encodes one batch per partition and appends it now.

No accumulator and no futures: records are partitioned (with a per-call key cache for plain
bytes records), split at ``batch_size`` and appended synchronously, which is the fast path
for bulk loads. A mixin of :class:`~logmq.broker.producer.Producer`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from logmq.broker.partitioner import Partitioner, StickyPartitioner, key_partition
from logmq.broker.serde import _norm_headers, serialize_kv
from logmq.codec.keys import bucket_encode, bucket_keys
from logmq.codec.records import encode_batch
from logmq.errors import (
    BrokerClosedError,
    ConfigError,
    InvalidPartitionError,
    InvalidTimestampError,
)
from logmq.types import RecordMetadata

if TYPE_CHECKING:
    from logmq.storage.interface import LogStore

__all__ = ["BulkSend"]


class BulkSend:
    """``send_batch`` and its helpers; the state it reads is the producer's."""

    if TYPE_CHECKING:
        _broker: LogStore
        _closed: bool
        _wall: Callable[[], float]
        _key_ser: Callable[[Any], bytes | None] | None
        _value_ser: Callable[[Any], bytes | None] | None
        _partitioner: Partitioner | None
        _sticky: StickyPartitioner
        batch_size: int
        compression: int
        producer_id: int

        def _limits(self, topic: str) -> tuple[int, Any, Any, int | None]: ...

        def _wait_for_room(self, topic: str, limit: int) -> None: ...

        def _conditional_partition(self, topic: str, keys: list[bytes | None],
                                   partition: int | None, n: int) -> int: ...

        def _append_conditional(self, topic: str, p: int, records: list[tuple], ts: int,
                                expected: int) -> int: ...

        def _drain_lock(self, tp: tuple[str, int]) -> Any: ...

        def _append_stamped(self, tp: tuple[str, int], records: Sequence[Sequence[Any]], *,
                            timestamp: int | None = None,
                            timestamps: Sequence[int] | None = None,
                            expected_offset: int | None = None) -> int: ...

    # ------------------------------------------------------------------ bulk
    def send_batch(
        self,
        topic: str,
        records: Iterable[Sequence[Any]],
        partition: int | None = None,
        timestamp: int | None = None,
        *,
        expected_offset: int | None = None,
    ) -> list[RecordMetadata]:
        """Append many ``(key, value)`` / ``(key, value, headers)`` records now.

        Records are partitioned like :meth:`send` and written as one batch per partition
        (split at ``batch_size``); returns the metadata of the first record of each batch
        appended, in append order. Blocks until appended; no futures, no accumulator.

        With ``expected_offset`` all records go to one partition (``partition=``, or keys
        that map to one) as one batch, appended only if the partition's end offset is
        exactly ``expected_offset``, all or nothing (else ConcurrencyError): optimistic
        concurrency for event-sourced streams.
        """
        if self._closed:
            raise BrokerClosedError("producer is closed")
        if timestamp is not None and timestamp < 0:
            raise InvalidTimestampError(
                f"timestamp {timestamp} is negative (ms since the epoch, or None for now)")
        if expected_offset is not None:
            return self._send_batch_conditional(topic, records, partition, timestamp,
                                                int(expected_offset))
        paused = gc.isenabled()
        if paused:  # nothing here builds cycles; see Consumer._fetch for the rationale
            gc.disable()
        try:
            return self._send_batch(topic, records, partition, timestamp)
        finally:
            if paused:
                gc.enable()

    def _normalize(self, records: Iterable[Sequence[Any]]) -> list[tuple]:
        kser, vser = self._key_ser, self._value_ser
        out: list[tuple[Any, ...]] = []
        for rec in records:
            k, v = serialize_kv(kser, vser, rec[0], rec[1])
            if len(rec) > 2 and rec[2]:
                out.append((k, v, _norm_headers(rec[2])))
            else:
                out.append((k, v))
        return out

    def _send_batch_conditional(self, topic: str, records: Iterable[Sequence[Any]],
                                partition: int | None, timestamp: int | None,
                                expected: int) -> list[RecordMetadata]:
        items = self._normalize(records)
        if not items:
            raise ConfigError("a conditional append needs at least one record")
        n, _plog0, _cfg, qlimit = self._limits(topic)
        if qlimit is not None:
            self._wait_for_room(topic, qlimit)
        p = self._conditional_partition(topic, [r[0] for r in items], partition, n)
        ts = int(self._wall() * 1000) if timestamp is None else int(timestamp)
        first = self._append_conditional(topic, p, items, ts, expected)
        return [RecordMetadata(topic, p, first, ts)]

    def _send_batch(self, topic: str, records: Iterable[Sequence[Any]], partition: int | None,
                    timestamp: int | None) -> list[RecordMetadata]:
        n, _plog0, _cfg, qlimit = self._limits(topic)
        if qlimit is not None:
            self._wait_for_room(topic, qlimit)
        ts = int(self._wall() * 1000) if timestamp is None else int(timestamp)
        kser, vser = self._key_ser, self._value_ser
        if kser is None and vser is None and partition is None and self._partitioner is None:
            if not isinstance(records, list):
                records = list(records)
            if self.producer_id < 0 and not self.compression:
                # plain records, no sequence numbers to stamp: bucket and encode in one pass
                encoded = bucket_encode(records, n, ts, self._max_batch_bytes(topic))
                if encoded is not None:
                    return self._append_encoded(topic, encoded, ts)
            fast = bucket_keys(records, n)
            if fast is not None:
                return self._append_buckets(topic, fast, ts)
        buckets: dict[int, list[tuple]] = {}
        custom = self._partitioner
        sticky_p = None
        h = key_partition
        for rec in records:
            k, v = serialize_kv(kser, vser, rec[0], rec[1])
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

    def _max_batch_bytes(self, topic: str) -> int:
        """Bulk batches: up to half the topic's max.message.bytes, and no more than the larger
        of batch_size and 1 MiB (the encoder's buffer per partition)."""
        cfg = self._broker.partition_log(topic, 0).config
        return min(max(1, cfg.max_message_bytes // 2), max(self.batch_size, 1 << 20))

    def _append_encoded(self, topic: str, encoded: dict[int, list[bytes]], ts: int
                        ) -> list[RecordMetadata]:
        out: list[RecordMetadata] = []
        for p, batches in encoded.items():
            plog = self._broker.partition_log(topic, p)
            for data in batches:
                first, _ = plog.append(data, validate=False)
                out.append(RecordMetadata(topic, p, first, ts))
        return out

    def _append_buckets(self, topic: str, buckets: dict[int, list], ts: int
                        ) -> list[RecordMetadata]:
        out: list[RecordMetadata] = []
        for p, recs in buckets.items():
            plog = self._broker.partition_log(topic, p)
            limit = max(1, plog.config.max_message_bytes // 2)
            chunk = self._chunk_len(recs, min(limit, max(self.batch_size, 1 << 20)))
            if self.producer_id >= 0:
                with self._drain_lock((topic, p)):
                    for start in range(0, len(recs), chunk):
                        first = self._append_stamped((topic, p), recs[start:start + chunk],
                                                     timestamp=ts)
                        out.append(RecordMetadata(topic, p, first, ts))
                continue
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
