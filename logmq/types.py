"""Plain value types shared by the public API: named tuples, cheap to build and to unpack."""

# No ``from __future__ import annotations`` here: NamedTuple fields stay real types, so
# tools that read them at run time (pdoc, pydantic) resolve them.
from typing import Any, NamedTuple

__all__ = [
    "TopicPartition",
    "Record",
    "RecordMetadata",
    "PartitionInfo",
    "TopicDescription",
    "OffsetAndTimestamp",
    "Header",
]

Header = tuple[str, bytes | None]


class TopicPartition(NamedTuple):
    """A (topic, partition) pair; plain tuples are accepted wherever one is expected."""

    topic: str
    partition: int


class Record(NamedTuple):
    """A record as consumers see it. ``value is None`` is a tombstone, distinct from b""."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: Any
    value: Any
    headers: list[Header]

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


class RecordMetadata(NamedTuple):
    """Where an acknowledged record landed."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class PartitionInfo(NamedTuple):
    partition: int
    start_offset: int
    end_offset: int
    size_bytes: int
    segments: int


class TopicDescription(NamedTuple):
    name: str
    partitions: list[PartitionInfo]
    config: dict[str, Any]
    overrides: dict[str, Any]


class OffsetAndTimestamp(NamedTuple):
    offset: int
    timestamp: int
