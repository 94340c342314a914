"""The records of KIP-848 consumer groups: members, groups, requests, answers, descriptions.

Kept apart from the state machine (:mod:`logmq.broker.groups.consumer_group`) so that module
stays about transitions. Partitions are ``(topic name, partition)`` pairs here; topic ids
exist only on the wire and are translated by the server's handlers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from logmq.broker.groups.consumer_group_assignors import DEFAULT_ASSIGNOR
from logmq.errors import GroupError

__all__ = ["TP", "HeartbeatRequest", "HeartbeatResult", "ConsumerMemberDescription",
           "ConsumerGroupDescription", "LEAVE_EPOCH", "STATIC_LEAVE_EPOCH"]

TP = tuple[str, int]

#: member epochs with a meaning of their own (Kafka's)
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2

# member reconciliation states (Kafka's MemberState)
M_STABLE = "stable"
M_UNREVOKED = "unrevoked_partitions"  # must give up partitions before it moves on
M_UNRELEASED = "unreleased_partitions"  # waits for partitions others still hold

# group states as Kafka 4 names them (ConsumerGroupDescribe, ListGroups)
EMPTY = "Empty"
ASSIGNING = "Assigning"
RECONCILING = "Reconciling"
STABLE = "Stable"
DEAD = "Dead"


@dataclass(frozen=True)
class HeartbeatRequest:
    """One ConsumerGroupHeartbeat, fields as on the wire (None: "unchanged since last time")."""

    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: list[str] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    owned: frozenset[TP] | None = None  # topic_partitions: what the client holds now
    client_id: str = ""
    client_host: str = ""
    max_members: int | None = None  # the server's max_group_members (Kafka's group.max.size)


class HeartbeatResult(NamedTuple):
    error: GroupError | None
    member_id: str | None
    member_epoch: int
    heartbeat_interval_ms: int
    assignment: frozenset[TP] | None  # None: unchanged, the client keeps what it has


class ConsumerMemberDescription(NamedTuple):
    member_id: str
    instance_id: str | None
    rack_id: str | None
    member_epoch: int
    client_id: str
    client_host: str
    subscribed_topic_names: list[str]
    subscribed_topic_regex: str | None
    assignment: list[TP]
    target_assignment: list[TP]


class ConsumerGroupDescription(NamedTuple):
    group_id: str
    state: str
    group_epoch: int
    assignment_epoch: int
    assignor_name: str
    members: list[ConsumerMemberDescription]


@dataclass(eq=False)
class CMember:
    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    rack_id: str | None = None
    topic_names: tuple[str, ...] = ()
    regex: str | None = None
    assignor: str | None = None
    epoch: int = 0
    previous_epoch: int = -1
    state: str = M_STABLE
    assigned: frozenset[TP] = frozenset()
    revoking: frozenset[TP] = frozenset()
    session_deadline: float = 0.0
    revoke_deadline: float | None = None
    departed: bool = False  # a static member that left with epoch -2 and keeps its place
    sent: frozenset[TP] | None = None  # the assignment the last answer carried


@dataclass(eq=False)
class CGroup:
    group_id: str
    epoch: int = 0
    target_epoch: int = 0
    assignor: str = DEFAULT_ASSIGNOR
    members: dict[str, CMember] = field(default_factory=dict)
    target: dict[str, frozenset[TP]] = field(default_factory=dict)
    # what the target was computed from: member -> topics it may consume, topic -> partitions
    subscriptions: dict[str, frozenset[str]] = field(default_factory=dict)
    metadata: dict[str, int] = field(default_factory=dict)
    static: dict[str, str] = field(default_factory=dict)  # instance id -> member id

    @property
    def state(self) -> str:
        if not self.members:
            return EMPTY
        if self.epoch > self.target_epoch:
            return ASSIGNING
        if any(m.epoch != self.target_epoch or m.state != M_STABLE
               for m in self.members.values() if not m.departed):
            return RECONCILING
        return STABLE

    def describe(self) -> ConsumerGroupDescription:
        members = [ConsumerMemberDescription(
            m.member_id, m.instance_id, m.rack_id, m.epoch, m.client_id, m.client_host,
            list(m.topic_names), m.regex, sorted(m.assigned),
            sorted(self.target.get(m.member_id, ()))) for m in self.members.values()]
        return ConsumerGroupDescription(self.group_id, self.state, self.epoch,
                                        self.target_epoch, self.assignor, members)
