"""The seeks every consumer shares, written once over three primitives.

The embedded :class:`~logmq.Consumer` and the cluster one (``logmq.cluster``) both position
partitions from the same offset lookups; they differ only in ``seek`` itself and in where
``start_offset``/``end_offset``/``offsets_for_times`` come from (``_broker``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from logmq.storage.manager import as_tp
from logmq.types import OffsetAndTimestamp, TopicPartition

__all__ = ["Seeking", "as_tp"]


class Seeking:
    """Mixin: seek to the beginning, the end or a time, for the assigned or given partitions."""

    _broker: Any  # start_offset, end_offset and offsets_for_times, by TopicPartition
    _assigned: list[TopicPartition]

    def seek(self, tp: Any, offset: int) -> None:
        raise NotImplementedError

    def _targets(self, partitions: tuple[Any, ...]) -> list[TopicPartition]:
        return [as_tp(p) for p in partitions] or list(self._assigned)

    def seek_to_beginning(self, *partitions: Any) -> None:
        for t in self._targets(partitions):
            self.seek(t, self._broker.start_offset(t))

    def seek_to_end(self, *partitions: Any) -> None:
        for t in self._targets(partitions):
            self.seek(t, self._broker.end_offset(t))

    def offsets_for_times(self, timestamps: Mapping[Any, int]
                          ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        result: dict[TopicPartition, OffsetAndTimestamp | None] = (
            self._broker.offsets_for_times(timestamps))
        return result

    def seek_to_timestamp(self, timestamp_ms: int, *partitions: Any) -> None:
        """Position each partition at its first record with timestamp >= ``timestamp_ms``."""
        tps = self._targets(partitions)
        found = self.offsets_for_times({t: timestamp_ms for t in tps})
        for t in tps:
            hit = found[t]
            self.seek(t, hit.offset if hit is not None else self._broker.end_offset(t))
