"""Consumer groups: Kafka's classic group coordinator, committed offsets and assignors.

The coordinator is the broker side (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
OffsetCommit/Fetch and the admin group APIs); assignors are the client side a group leader
runs. Both embedded consumers and the Kafka wire server use these same objects.
"""

from logmq.broker.groups import assignors
from logmq.broker.groups.coordinator import (
    GroupCoordinator,
    GroupDescription,
    JoinResult,
    MemberDescription,
)
from logmq.broker.groups.offsets import LmdbOffsetStore, MemoryOffsetStore, OffsetStore

__all__ = [
    "GroupCoordinator",
    "GroupDescription",
    "JoinResult",
    "MemberDescription",
    "OffsetStore",
    "LmdbOffsetStore",
    "MemoryOffsetStore",
    "assignors",
]
