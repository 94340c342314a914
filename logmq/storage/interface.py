"""What the services above storage may use of it: a narrow, typed interface.

The cleaner, the group membership, the producer, the consumer and the queue engine are typed
against :class:`LogStore`, not against the facade, so they can be built on a bare
:class:`~logmq.storage.manager.LogManager` (or a fake in a test) and the import graph points
one way. :class:`~logmq.broker.broker.Broker` satisfies it too, by delegation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from logmq.config import TopicConfig
from logmq.storage.log import PartitionLog
from logmq.storage.meta import MetaStore
from logmq.types import OffsetAndTimestamp, TopicDescription, TopicPartition

__all__ = ["LogStore"]


class LogStore(Protocol):
    """The storage manager's methods the broker services call."""

    @property
    def path(self) -> str: ...

    @property
    def meta(self) -> MetaStore: ...

    @property
    def topics_version(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    def check_open(self) -> None: ...

    def partition_log(self, topic: str, partition: int) -> PartitionLog: ...

    def partition_logs(self) -> list[tuple[tuple[str, int], PartitionLog]]: ...

    def partitions_for(self, topic: str) -> int: ...

    def ensure_topic(self, topic: str) -> int: ...

    def create_topic(self, name: str, partitions: int | None = None,
                     config: Mapping[str, Any] | None = None) -> TopicDescription: ...

    def list_topics(self) -> list[str]: ...

    def topic_config(self, name: str) -> dict[str, Any]: ...

    def topic_settings(self, name: str) -> TopicConfig: ...

    def start_offset(self, tp: Any) -> int: ...

    def end_offset(self, tp: Any) -> int: ...

    def offsets(self, tp: Any) -> tuple[int, int]: ...

    def offsets_for_times(self, timestamps: Mapping[Any, int]
                          ) -> dict[TopicPartition, OffsetAndTimestamp | None]: ...

    def append_batches(self, tp: Any, data: bytes | bytearray | memoryview, *,
                       expected_offset: int | None = None) -> int: ...

    def add_waiter(self, tp: tuple[str, int], fn: Callable[[], None]) -> None: ...

    def remove_waiter(self, tp: tuple[str, int], fn: Callable[[], None]) -> None: ...

    def add_topic_listener(self, fn: Callable[[str], None]) -> None: ...
