"""The coordinator's records: members, groups, join results, descriptions, deferred futures."""

from __future__ import annotations

from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from logmq.broker.groups.states import EMPTY

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
