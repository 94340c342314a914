"""An embedded consumer's membership in a consumer group: Kafka's client-side protocol.

Embedded consumers speak to the same :class:`~logmq.broker.groups.GroupCoordinator` the wire
server exposes, with the same bytes (ConsumerProtocol subscription/assignment) and the same
rules: join, the leader computes the assignment with a named assignor, sync, heartbeat, commit.
So an embedded consumer and a Kafka client over the wire can be members of one group.

Everything happens in the thread that calls :meth:`Consumer.poll`, like the Kafka consumer's
poll loop: heartbeats are sent from poll (which never sleeps longer than the heartbeat
interval), so a member that stops polling stops heartbeating and is removed after
``session_timeout_ms``, and its partitions move to the others. Rebalance callbacks run in that
same thread, so ``on_revoke`` can commit what it processed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from logmq.errors import (
    ConfigError,
    GroupError,
    IllegalGenerationError,
    KafkaTimeoutError,
    MemberIdRequiredError,
    RebalanceInProgressError,
    UnknownMemberError,
)
from logmq.types import TopicPartition

if TYPE_CHECKING:
    from logmq.broker.groups.coordinator import GroupCoordinator
    from logmq.storage.interface import LogStore

__all__ = ["GroupMember", "coordinator_for"]

ASSIGNORS = ("range", "roundrobin", "sticky")


class _HasGroups(Protocol):
    @property
    def groups(self) -> GroupCoordinator: ...


def coordinator_for(broker: _HasGroups) -> GroupCoordinator:
    """The data directory's group coordinator (``Broker.groups``; kept for old callers)."""
    return broker.groups


class AssignedConsumer(Protocol):
    """What the membership needs of its consumer (public methods only)."""

    def assignment(self) -> set[TopicPartition]: ...

    def apply_assignment(self, tps: list[TopicPartition]) -> None: ...

    def position(self, tp: Any) -> int: ...

    def wakeup(self) -> None: ...


class GroupMember:
    """Group state of one :class:`~logmq.broker.consumer.Consumer`.

    Config: ``session_timeout_ms`` (default 10 s), ``heartbeat_interval_ms`` (1 s),
    ``rebalance_timeout_ms`` (30 s: how long a rebalance waits for slow members),
    ``enable_auto_commit`` (True), ``auto_commit_interval_ms`` (5 s),
    ``assignor`` ("range", "roundrobin", "sticky", or a list in preference order),
    ``client_id``, ``group_instance_id`` (None: a dynamic member).

    A ``group_instance_id`` makes the member static (KIP-345), as in Kafka's clients: closing
    or unsubscribing sends no LeaveGroup, so a restarted process with the same id takes its
    place and partitions back without a rebalance, as long as it returns within
    ``session_timeout_ms``. A second live process with the same id fences the first:
    its next poll raises :class:`~logmq.errors.FencedInstanceIdError`.
    """

    def __init__(
        self,
        consumer: AssignedConsumer,
        broker: LogStore,
        group: str,
        coordinator: GroupCoordinator,
        *,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 1_000,
        rebalance_timeout_ms: int = 30_000,
        enable_auto_commit: bool = True,
        auto_commit_interval_ms: int = 5_000,
        assignor: str | list[str] = "range",
        client_id: str = "logmq",
        group_instance_id: str | None = None,
    ) -> None:
        names = [assignor] if isinstance(assignor, str) else list(assignor)
        if not names or any(n not in ASSIGNORS for n in names):
            raise ConfigError(f"assignor must be among {ASSIGNORS}")
        if not group:
            raise ConfigError("group id must be a non-empty string")
        self.consumer = consumer
        self.broker = broker
        self.group = group
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval = heartbeat_interval_ms / 1000
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.auto_commit = enable_auto_commit
        self.auto_commit_interval = auto_commit_interval_ms / 1000
        self.assignors = names
        self.client_id = client_id
        if group_instance_id is not None and not group_instance_id:
            raise ConfigError("group_instance_id must be a non-empty string or None")
        self.instance_id = group_instance_id
        self.coordinator = coordinator
        self.subscription: list[str] = []
        self.member_id = ""
        self.generation = -1
        self.need_rejoin = False
        self.on_assign: Callable[..., None] | None = None
        self.on_revoke: Callable[..., None] | None = None
        now = time.monotonic()
        self._next_heartbeat = now
        self._next_commit = now + self.auto_commit_interval

    # ------------------------------------------------------------------ subscription
    def subscribe(self, topics: list[str], *, on_assign: Callable[..., None] | None = None,
                  on_revoke: Callable[..., None] | None = None) -> None:
        for t in topics:
            self.broker.ensure_topic(t)
        self.subscription = sorted(set(topics))
        self.on_assign = on_assign
        self.on_revoke = on_revoke
        self.need_rejoin = True
        self.consumer.wakeup()

    def unsubscribe(self) -> None:
        self._leave()
        self.subscription = []

    # ------------------------------------------------------------------ poll hooks
    def poll(self) -> None:
        """Called at the top of every poll iteration: join, heartbeat, auto-commit."""
        if not self.subscription:
            return
        if self.need_rejoin or self.generation < 0:
            self._join()
            return
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._heartbeat()

    def after_poll(self) -> None:
        if self.auto_commit and time.monotonic() >= self._next_commit:
            self._auto_commit()

    def max_wait(self) -> float:
        if not self.subscription:
            return 3600.0
        now = time.monotonic()
        wait = self._next_heartbeat - now
        if self.auto_commit:
            wait = min(wait, self._next_commit - now)
        return max(0.0, wait)

    def _heartbeat(self) -> None:
        try:
            self.coordinator.heartbeat(self.group, self.generation, self.member_id,
                                       self.instance_id)
        except RebalanceInProgressError:
            self.need_rejoin = True
            self._join()
            return
        except UnknownMemberError:
            self._lost(forget_id=True)
            self._join()
            return
        except IllegalGenerationError:
            self._lost()
            self._join()
            return
        self._next_heartbeat = time.monotonic() + self.heartbeat_interval
        if self.auto_commit and time.monotonic() >= self._next_commit:
            self._auto_commit()

    def _auto_commit(self) -> None:
        self._next_commit = time.monotonic() + self.auto_commit_interval
        try:
            self.commit(None)
        except (RebalanceInProgressError, UnknownMemberError, IllegalGenerationError):
            self.need_rejoin = True

    # ------------------------------------------------------------------ rebalance
    def _lost(self, forget_id: bool = False) -> None:
        """Our membership is gone (expired): drop partitions without committing."""
        if forget_id:
            self.member_id = ""
        self.generation = -1
        self.need_rejoin = True
        self.consumer.apply_assignment([])

    def _revoke(self) -> None:
        owned = sorted(self.consumer.assignment())
        if not owned:
            return
        if self.auto_commit and self.generation >= 0:
            try:
                self.commit(None)
            except GroupError:
                pass
        if self.on_revoke is not None:
            self.on_revoke(owned)

    def _join(self) -> None:
        from logmq.broker.groups import assignors
        from logmq.protocol.consumer_protocol import (
            decode_assignment,
            decode_subscription,
            encode_assignment,
            encode_subscription,
        )

        self._revoke()
        owned = sorted(self.consumer.assignment())
        owned_map: dict[str, list[int]] = {}
        for t, p in owned:
            owned_map.setdefault(t, []).append(p)
        meta = encode_subscription(self.subscription, owned_partitions=owned_map, version=1)
        protocols = [(name, meta) for name in self.assignors]
        deadline = time.monotonic() + self.rebalance_timeout_ms / 1000 + 5
        while True:
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"could not join group {self.group!r}")
            fut = self.coordinator.join_group(
                self.group, self.member_id, "consumer", protocols,
                self.session_timeout_ms, self.rebalance_timeout_ms,
                client_id=self.client_id, require_known_member_id=True,
                group_instance_id=self.instance_id,
            )
            res = fut.result(timeout=self.rebalance_timeout_ms / 1000 + 5)
            if isinstance(res.error, MemberIdRequiredError):
                self.member_id = res.error.member_id
                continue
            if isinstance(res.error, UnknownMemberError):
                self.member_id = ""
                continue
            if res.error is not None:
                raise res.error
            self.member_id = res.member_id
            self.generation = res.generation_id
            assignments: dict[str, bytes] = {}
            if res.leader_id == res.member_id:
                subs: dict[str, list[str]] = {}
                current: dict[str, list[tuple[str, int]]] = {}
                for mid, _instance, mmeta in res.members:
                    d = decode_subscription(mmeta)
                    subs[mid] = list(d["topics"])
                    current[mid] = [(t, p) for t, ps in (d.get("owned_partitions") or {}).items()
                                    for p in ps]
                topics = sorted({t for ts in subs.values() for t in ts})
                counts = {t: self.broker.partitions_for(t) for t in topics
                          if t in self.broker.list_topics()}
                plan = assignors.assign(res.protocol_name, subs, counts, current)
                for mid in subs:
                    per_topic: dict[str, list[int]] = {}
                    for t, p in sorted(plan.get(mid, [])):
                        per_topic.setdefault(t, []).append(p)
                    assignments[mid] = encode_assignment(per_topic)
            try:
                mine = self.coordinator.sync_group(
                    self.group, self.generation, self.member_id, assignments, self.instance_id
                ).result(timeout=self.rebalance_timeout_ms / 1000 + 5)
            except RebalanceInProgressError:
                continue
            except (UnknownMemberError, IllegalGenerationError):
                self.generation = -1
                continue
            if isinstance(mine, BaseException):
                if isinstance(mine, RebalanceInProgressError | IllegalGenerationError
                              | UnknownMemberError):
                    continue
                raise mine
            break
        parts = decode_assignment(mine)["partitions"] if mine else {}
        tps = [TopicPartition(t, p) for t, ps in sorted(parts.items()) for p in sorted(ps)]
        self.consumer.apply_assignment(tps)
        self.need_rejoin = False
        self._next_heartbeat = time.monotonic() + self.heartbeat_interval
        if self.on_assign is not None:
            self.on_assign(tps)

    # ------------------------------------------------------------------ offsets
    def committed_offset(self, tp: TopicPartition) -> int | None:
        got = self.coordinator.fetch_offsets(self.group, [(tp.topic, tp.partition)])
        hit = got.get((tp.topic, tp.partition))
        return None if hit is None or hit[0] < 0 else hit[0]

    def commit(self, offsets: Mapping[Any, int | tuple[int, str | None]] | None) -> None:
        data: dict[tuple[str, int], tuple[int, str | None]]
        if offsets is None:
            data = {(tp.topic, tp.partition): (self.consumer.position(tp), None)
                    for tp in self.consumer.assignment()}
        else:
            data = {}
            for tp, v in offsets.items():
                t, p = tp
                data[(t, int(p))] = v if isinstance(v, tuple) else (int(v), None)
        if not data:
            return
        self.coordinator.commit_offsets(self.group, self.generation, self.member_id, data,
                                        self.instance_id)

    # ------------------------------------------------------------------ leaving
    def _leave(self) -> None:
        # A static member keeps its place for its successor (Kafka's clients do the same).
        if self.member_id and self.instance_id is None:
            try:
                self.coordinator.leave_group(self.group, [self.member_id])
            except GroupError:
                pass
        self.member_id = ""
        self.generation = -1

    def close(self, commit: bool = True) -> None:
        if commit and self.auto_commit and self.generation >= 0:
            try:
                self.commit(None)
            except GroupError:
                pass
        if self.subscription:
            self._leave()
