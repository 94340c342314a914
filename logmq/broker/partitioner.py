"""Choosing a partition for a record.

Keyed records go to ``xxh3_64(key) % partitions`` (xxhash's XXH3, 64-bit, seed 0): fast, well
mixed, and stable across processes and versions, so a key always lands on the same partition
of a topic whose partition count does not change. This is not Kafka's murmur2: records
produced through the wire server are partitioned by the Kafka client itself, and embedded
producers that must match a Kafka cluster can pass ``partitioner=murmur2_partitioner``.

Null keys use a sticky partition per topic: every null-key record of one batch goes to the same
partition, and the producer moves to the next partition when that batch is sent, which keeps
batches large (Kafka's KIP-480) while spreading load over time.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import xxhash

__all__ = ["Partitioner", "key_partition", "StickyPartitioner", "murmur2", "murmur2_partitioner"]

#: A custom partitioner: ``(key_bytes_or_None, num_partitions) -> partition``.
Partitioner = Callable[[bytes | None, int], int]

_xxh3 = xxhash.xxh3_64_intdigest


def key_partition(key: bytes, num_partitions: int) -> int:
    return _xxh3(key) % num_partitions


class StickyPartitioner:
    """Per-topic sticky choice for null keys; :meth:`next` moves on after a batch is sent."""

    def __init__(self) -> None:
        self._current: dict[str, int] = {}
        self._counter = itertools.count()

    def partition(self, topic: str, num_partitions: int) -> int:
        p = self._current.get(topic)
        if p is None or p >= num_partitions:
            p = next(self._counter) % num_partitions
            self._current[topic] = p
        return p

    def next(self, topic: str, num_partitions: int) -> int:
        p = (self._current.get(topic, -1) + 1) % num_partitions
        self._current[topic] = p
        return p


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's default key hash), as a signed 32-bit int."""
    m = 0x5BD1E995
    r = 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[i * 4 : i * 4 + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length & 3
    tail = n4 * 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def murmur2_partitioner(key: bytes | None, num_partitions: int) -> int:
    """Kafka-compatible placement of keyed records (``toPositive(murmur2(key)) % n``)."""
    if key is None:
        raise ValueError("murmur2_partitioner needs a key; null keys use the sticky partitioner")
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions
