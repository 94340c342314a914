"""The coordinator's records: members, groups, join results, descriptions, deferred futures."""

from __future__ import annotations

from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from logmq.broker.groups.states import EMPTY
from logmq.errors import FencedInstanceIdError, UnknownMemberError

__all__ = ["JoinResult", "MemberDescription", "GroupDescription"]


class JoinResult(NamedTuple):
    """A JoinGroup response. ``members`` is filled only for the leader, who must assign."""

    error: Exception | None
    generation_id: int
    protocol_name: str
    leader_id: str
    member_id: str
    members: list[tuple[str, str | None, bytes]]


class MemberDescription(NamedTuple):
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


class GroupDescription(NamedTuple):
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: list[MemberDescription]


@dataclass(eq=False)
class _Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    session_timeout: float  # seconds
    rebalance_timeout: float  # seconds
    session_deadline: float = 0.0
    session_token: int = 0  # the heap entry that is authoritative for this member
    scheduled_at: float | None = None  # when that entry fires
    assignment: bytes = b""
    join_future: Future | None = None
    sync_future: Future | None = None

    def metadata_for(self, protocol: str | None) -> bytes:
        for name, meta in self.protocols:
            if name == protocol:
                return meta
        return b""


@dataclass(eq=False)
class _Group:
    group_id: str
    state: str = EMPTY
    protocol_type: str | None = None
    protocol: str | None = None
    generation: int = 0
    leader_id: str | None = None
    members: dict[str, _Member] = field(default_factory=dict)
    # member ids handed out with MEMBER_ID_REQUIRED: id -> (deadline, token)
    pending: dict[str, tuple[float, int]] = field(default_factory=dict)
    # members that got their JoinGroup answer but have not sent SyncGroup yet
    pending_sync: set[str] = field(default_factory=set)
    join_token: int = 0  # bumps whenever the join-phase deadline is rescheduled or cancelled
    sync_token: int = 0  # identifies the pending-sync deadline of the current generation
    initial_delay: bool = False  # join phase is an initial delay (never completes early)
    delay_remaining: float = 0.0
    new_member_added: bool = False
    # static membership (KIP-345): group.instance.id -> the member id that holds it now
    static: dict[str, str] = field(default_factory=dict)


def validate_member(g: _Group | None, member_id: str, instance: str | None) -> _Member:
    """Kafka's member check for Join/Sync/Heartbeat/OffsetCommit: a request that names a
    ``group.instance.id`` must come from the member id that holds it now; an older holder
    (replaced by a restarted process with the same instance id) is FENCED_INSTANCE_ID, so a
    zombie can neither heartbeat nor commit over its successor."""
    gid = g.group_id if g is not None else "?"
    if g is not None and instance is not None:
        holder = g.static.get(instance)
        if holder is None:
            raise UnknownMemberError(f"unknown group.instance.id {instance!r} in {gid!r}")
        if holder != member_id:
            raise FencedInstanceIdError(
                f"member {member_id!r} was replaced by {holder!r} for group.instance.id "
                f"{instance!r} in {gid!r}")
    m = g.members.get(member_id) if g is not None else None
    if m is None:
        raise UnknownMemberError(f"unknown member {member_id!r} in group {gid!r}")
    return m


def leaving_member(g: _Group | None, member_id: str, instance: str | None) -> _Member:
    """LeaveGroup's member check: an entry naming an instance id with an empty member id is
    an operator removing that instance by name, so it resolves to the instance's holder."""
    if instance is not None and g is not None and not member_id:
        holder = g.static.get(instance)
        if holder is None:
            raise UnknownMemberError(
                f"unknown group.instance.id {instance!r} in {g.group_id!r}")
        member_id = holder
    return validate_member(g, member_id, instance)


def select_protocol(g: _Group) -> str:
    """The protocol every member supports that most members prefer (Kafka's vote).

    Ties go to the leader's (else first member's) preference order, so the choice does
    not depend on set iteration order.
    """
    members = list(g.members.values())
    common = set.intersection(*({n for n, _ in m.protocols} for m in members))
    votes: dict[str, int] = {}
    for m in members:
        for name, _ in m.protocols:
            if name in common:
                votes[name] = votes.get(name, 0) + 1
                break
    ref = g.members.get(g.leader_id or "") or members[0]
    order = [n for n, _ in ref.protocols if n in common]
    return max(order, key=lambda n: (votes.get(n, 0), -order.index(n)))


def supports(g: _Group, member_id: str, protocol_type: str,
             protocols: list[tuple[str, bytes]]) -> bool:
    if not protocol_type or not protocols:
        return False
    others = [m for mid, m in g.members.items() if mid != member_id]
    if not others:
        return True
    if g.protocol_type != protocol_type:
        return False
    common = set.intersection(*({n for n, _ in m.protocols} for m in others))
    return any(n in common for n, _ in protocols)


class _Done:
    """Futures to complete once the lock is released (see the module docstring)."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[Future, Any, BaseException | None]] = []

    def result(self, fut: Future | None, value: Any) -> None:
        if fut is not None:
            self.items.append((fut, value, None))

    def error(self, fut: Future | None, exc: BaseException) -> None:
        if fut is not None:
            self.items.append((fut, None, exc))

    def flush(self) -> None:
        items, self.items = self.items, []
        for fut, value, exc in items:
            try:
                if exc is not None:
                    fut.set_exception(exc)
                else:
                    fut.set_result(value)
            except InvalidStateError:
                pass  # cancelled by the waiter (e.g. an asyncio task that went away)


def _resolved(value: Any = None, exc: BaseException | None = None) -> Future:
    fut: Future = Future()
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)
    return fut
