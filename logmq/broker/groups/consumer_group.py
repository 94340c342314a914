"""KIP-848 consumer groups: the server computes assignments, members reconcile by epochs.

Three epochs drive everything, as in Kafka's GroupMetadataManager:

* the **group epoch** moves whenever what the assignment depends on changes: a member joins
  or leaves, a subscription changes, a subscribed topic appears or grows;
* the **target assignment epoch** catches up with it when the server-side assignor
  (``uniform`` or ``range``, the client's ``server_assignor``) recomputes every member's
  target;
* each **member epoch** catches up with the target one member at a time. A member first
  gives up (revokes) what its target no longer holds, keeping its epoch; only once its
  heartbeat shows it no longer owns them does it move to the target epoch, and it receives a
  partition only once no other member holds it or still has it pending revocation. That is
  what keeps two members from ever consuming the same partition at once.

Time-based rules (session timeout, the rebalance timeout bounding a revocation) are applied
lazily, whenever a request touches the group: the survivors of a dead member heartbeat every
``heartbeat_interval_ms`` anyway, and nothing can observe the group between requests, so no
thread or timer is needed.

This object shares the classic coordinator's lock and group table, so a group id is either a
classic group or a consumer group, never both; committed offsets live in the same offset
store, so OffsetCommit/OffsetFetch and the admin offset tools see one set of offsets.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from logmq.broker.groups.consumer_group_assignors import ASSIGNORS, DEFAULT_ASSIGNOR
from logmq.broker.groups.consumer_group_model import (
    LEAVE_EPOCH,
    M_STABLE,
    M_UNRELEASED,
    M_UNREVOKED,
    STATIC_LEAVE_EPOCH,
    TP,
    CGroup,
    CMember,
    ConsumerGroupDescription,
    HeartbeatRequest,
    HeartbeatResult,
)
from logmq.broker.groups.model import _Group
from logmq.broker.groups.offsets import Offsets, OffsetStore
from logmq.broker.names import check_group_id
from logmq.errors import (
    FencedInstanceIdError,
    FencedMemberEpochError,
    GroupError,
    GroupIdNotFoundError,
    GroupNotEmptyError,
    InconsistentGroupProtocolError,
    InvalidRegularExpressionError,
    ProtocolError,
    StaleMemberEpochError,
    UnknownMemberError,
    UnknownTopicError,
    UnreleasedInstanceIdError,
    UnsupportedAssignorError,
)
from logmq.kafka_codes import ErrorCode

__all__ = ["ConsumerGroups", "TopicCatalog"]

DEFAULT_SESSION_TIMEOUT_MS = 45_000  # Kafka's group.consumer.session.timeout.ms
DEFAULT_HEARTBEAT_INTERVAL_MS = 5_000  # Kafka's group.consumer.heartbeat.interval.ms


class _InvalidRequest(ProtocolError, GroupError):
    """A heartbeat that breaks the protocol's rules (INVALID_REQUEST)."""


class _GroupFull(GroupError):
    kafka_code = ErrorCode.GROUP_MAX_SIZE_REACHED


class TopicCatalog(Protocol):
    """What the groups need to know about topics (the storage manager has it)."""

    topics_version: int

    def list_topics(self) -> list[str]: ...

    def partitions_for(self, topic: str) -> int: ...


class ConsumerGroups:
    """Every consumer-protocol group of one broker (see the module docstring)."""

    def __init__(self, catalog: TopicCatalog, offsets: OffsetStore, lock: threading.Lock,
                 classic: dict[str, _Group], time_fn: Callable[[], float], *,
                 session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
                 heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_INTERVAL_MS) -> None:
        self.catalog = catalog
        self.offsets = offsets
        self._lock = lock
        self._classic = classic
        self._time = time_fn
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.groups: dict[str, CGroup] = {}
        self._topics: tuple[int, dict[str, int]] = (-1, {})
        self._regexes: dict[str, re.Pattern[str]] = {}
        self._matches: dict[str, tuple[int, frozenset[str]]] = {}

    # ------------------------------------------------------------------ heartbeat
    def heartbeat(self, req: HeartbeatRequest) -> HeartbeatResult:
        """ConsumerGroupHeartbeat: join (epoch 0), heartbeat/reconcile, leave (-1 / -2)."""
        with self._lock:
            try:
                return self._heartbeat(req, self._time())
            except GroupError as e:
                return HeartbeatResult(e, None, 0, 0, None)

    def _heartbeat(self, req: HeartbeatRequest, now: float) -> HeartbeatResult:
        self._validate(req)
        g = self.groups.get(req.group_id)
        if g is not None:
            self._expire(g, now)
        if req.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(g, req, now)
        if req.member_epoch == 0:
            g = self._group_for_join(req.group_id)
            m = self._join(g, req, now)
        else:
            if g is None:
                raise GroupIdNotFoundError(f"Consumer group {req.group_id} not found.")
            self._check_instance(g, req)
            m = self._member(g, req.member_id)
            self._check_epoch(m, req)
        full = req.owned is not None or req.member_epoch == 0
        self._update(m, req)
        m.session_deadline = now + self.session_timeout_ms / 1000
        self._refresh(g)
        if g.epoch > g.target_epoch:
            self._assign(g)
        self._reconcile(g, m, req.owned, now)
        assignment = None
        if full or m.sent != m.assigned:
            assignment = m.sent = m.assigned
        return HeartbeatResult(None, m.member_id, m.epoch, self.heartbeat_interval_ms,
                               assignment)

    def _validate(self, req: HeartbeatRequest) -> None:
        def bad(msg: str) -> None:
            raise _InvalidRequest(msg)

        if not req.group_id:
            bad("GroupId can't be empty.")
        check_group_id(req.group_id)  # one logmq cannot store offsets for (NUL, too long)
        if req.instance_id is not None and not req.instance_id:
            bad("InstanceId can't be empty.")
        if req.member_epoch < STATIC_LEAVE_EPOCH:
            bad(f"MemberEpoch {req.member_epoch} is invalid.")
        if req.member_epoch == STATIC_LEAVE_EPOCH and req.instance_id is None:
            bad("InstanceId can't be null.")
        if req.member_epoch != 0 and not req.member_id:
            bad("MemberId can't be empty.")
        if req.member_epoch == 0:
            if req.rebalance_timeout_ms == -1:
                bad("RebalanceTimeoutMs must be provided in first request.")
            if req.owned:
                bad("TopicPartitions must be empty when (re-)joining.")
            if req.subscribed_topic_names is None and req.subscribed_topic_regex is None:
                bad("SubscribedTopicNames or SubscribedTopicRegex must be set in first "
                    "request.")
        if req.server_assignor is not None and req.server_assignor not in ASSIGNORS:
            raise UnsupportedAssignorError(
                f"ServerAssignor {req.server_assignor} is not supported. Supported assignors: "
                f"{', '.join(ASSIGNORS)}.")
        if req.subscribed_topic_regex:
            self._compile(req.subscribed_topic_regex)

    def _compile(self, regex: str) -> re.Pattern[str]:
        pat = self._regexes.get(regex)
        if pat is None:
            try:
                pat = re.compile(regex)
            except re.error as e:
                raise InvalidRegularExpressionError(
                    f"SubscribedTopicRegex {regex!r} is not a valid regular expression: {e}"
                ) from None
            if len(self._regexes) > 1024:
                self._regexes.clear()
            self._regexes[regex] = pat
        return pat

    def _group_for_join(self, group_id: str) -> CGroup:
        """The consumer group a member joins, taking over an empty classic group of that id.

        A classic group with members keeps its id: like Kafka with its migration policy
        off, the joiner gets GROUP_ID_NOT_FOUND (online conversion is not built).
        """
        g = self.groups.get(group_id)
        if g is not None:
            return g
        classic = self._classic.get(group_id)
        if classic is not None:
            if classic.members or classic.pending:
                raise GroupIdNotFoundError(f"Group {group_id} is not a consumer group.")
            del self._classic[group_id]  # empty: its committed offsets stay in the store
        # Kafka 4.4 counts the group's creation as an epoch of its own: its first member
        # gets epoch 2 (what the oracle shows), so epochs line up with Kafka's.
        g = self.groups[group_id] = CGroup(group_id, epoch=1, target_epoch=1)
        return g

    def _join(self, g: CGroup, req: HeartbeatRequest, now: float) -> CMember:
        member_id = req.member_id or str(uuid.uuid4())  # v0: the server names the member
        if req.instance_id is not None:
            holder_id = g.static.get(req.instance_id)
            holder = g.members.get(holder_id) if holder_id is not None else None
            if holder is not None and holder.member_id != member_id:
                if not holder.departed:
                    raise UnreleasedInstanceIdError(
                        f"Static member {holder.member_id} with instance id "
                        f"{req.instance_id} is not released yet.")
                # A restarted static member: it takes the old member's place, epoch and
                # partitions, and the group does not rebalance (KIP-345's point).
                old_id = holder.member_id
                del g.members[old_id]
                holder.member_id, holder.departed, holder.sent = member_id, False, None
                holder.client_id, holder.client_host = req.client_id, req.client_host
                if old_id in g.target:
                    g.target[member_id] = g.target.pop(old_id)
                if old_id in g.subscriptions:
                    g.subscriptions[member_id] = g.subscriptions.pop(old_id)
                g.members[member_id] = holder
                g.static[req.instance_id] = member_id
                return holder
        m = g.members.get(member_id)
        if m is not None:
            # A known member rejoining with epoch 0 lost its state: it owns nothing now.
            m.epoch, m.previous_epoch, m.state = 0, -1, M_STABLE
            m.assigned = m.revoking = frozenset()
            m.revoke_deadline = m.sent = None
            return m
        if req.max_members is not None and len(g.members) >= req.max_members:
            raise _GroupFull(f"Consumer group {g.group_id} has reached its maximum size of "
                             f"{req.max_members} members.")
        m = CMember(member_id, req.instance_id, req.client_id, req.client_host,
                    req.rebalance_timeout_ms)
        g.members[member_id] = m
        if req.instance_id is not None:
            g.static[req.instance_id] = member_id
        return m

    @staticmethod
    def _check_instance(g: CGroup, req: HeartbeatRequest) -> None:
        """A member replaced by a restarted process with its instance id is a zombie: it is
        fenced (FENCED_INSTANCE_ID), as in Kafka, so it cannot act for its successor."""
        if req.instance_id is None:
            return
        holder = g.static.get(req.instance_id)
        if holder is not None and holder != req.member_id:
            raise FencedInstanceIdError(
                f"Static member {req.member_id} with instance id {req.instance_id} was "
                f"replaced by {holder}.")

    @staticmethod
    def _member(g: CGroup, member_id: str) -> CMember:
        m = g.members.get(member_id)
        if m is None or m.departed:
            raise UnknownMemberError(
                f"Member {member_id} is not a member of group {g.group_id}.")
        return m

    @staticmethod
    def _check_epoch(m: CMember, req: HeartbeatRequest) -> None:
        """Kafka's rule: the current epoch, or the previous one when the member evidently
        missed our last answer (what it owns is still a subset of its assignment)."""
        if req.member_epoch == m.epoch:
            return
        if req.member_epoch == m.previous_epoch and req.owned is not None \
                and req.owned <= m.assigned:
            return
        raise FencedMemberEpochError(
            f"The consumer group member has a greater epoch ({req.member_epoch}) than the "
            f"one known by the group coordinator ({m.epoch}). The member must abandon all its "
            f"partitions and rejoin." if req.member_epoch > m.epoch else
            f"The consumer group member has a smaller member epoch ({req.member_epoch}) than "
            f"the one known by the group coordinator ({m.epoch}). The member must abandon all "
            f"its partitions and rejoin.")

    @staticmethod
    def _update(m: CMember, req: HeartbeatRequest) -> None:
        if req.rebalance_timeout_ms != -1:
            m.rebalance_timeout_ms = req.rebalance_timeout_ms
        if req.rack_id is not None:
            m.rack_id = req.rack_id or None
        if req.subscribed_topic_names is not None:
            m.topic_names = tuple(sorted(set(req.subscribed_topic_names)))
        if req.subscribed_topic_regex is not None:
            m.regex = req.subscribed_topic_regex or None
        if req.server_assignor is not None:
            m.assignor = req.server_assignor or None
        if req.client_id:
            m.client_id = req.client_id
        if req.client_host:
            m.client_host = req.client_host

    # ------------------------------------------------------------------ leave / expiry
    def _leave(self, g: CGroup | None, req: HeartbeatRequest, now: float) -> HeartbeatResult:
        if g is None:
            raise GroupIdNotFoundError(f"Consumer group {req.group_id} not found.")
        self._check_instance(g, req)
        m = g.members.get(req.member_id)
        if m is None:
            raise UnknownMemberError(
                f"Member {req.member_id} is not a member of group {g.group_id}.")
        if req.member_epoch == STATIC_LEAVE_EPOCH:
            # A static member going away for a moment: it keeps its partitions (nobody else
            # gets them) until it is back or its session times out.
            m.departed = True
            m.session_deadline = now + self.session_timeout_ms / 1000
            return HeartbeatResult(None, m.member_id, STATIC_LEAVE_EPOCH, 0, None)
        self._remove(g, m)
        return HeartbeatResult(None, m.member_id, LEAVE_EPOCH, 0, None)

    def _remove(self, g: CGroup, m: CMember) -> None:
        g.members.pop(m.member_id, None)
        if m.instance_id is not None and g.static.get(m.instance_id) == m.member_id:
            del g.static[m.instance_id]
        self._refresh(g)
        if g.epoch > g.target_epoch:
            self._assign(g)  # as Kafka: a departure recomputes the target at once

    def _expire(self, g: CGroup, now: float) -> None:
        """Members past their session timeout, or past their rebalance timeout while still
        holding partitions they were asked to revoke, are removed (fenced)."""
        for m in list(g.members.values()):
            if m.session_deadline <= now or (
                    m.revoke_deadline is not None and m.revoke_deadline <= now):
                self._remove(g, m)

    # ------------------------------------------------------------------ assignment
    def _topics_now(self) -> dict[str, int]:
        version = self.catalog.topics_version
        if self._topics[0] != version:
            out = {}
            for t in self.catalog.list_topics():
                try:
                    out[t] = self.catalog.partitions_for(t)
                except UnknownTopicError:
                    continue  # deleted while we listed
            self._topics = (version, out)
        return self._topics[1]

    def _matching(self, regex: str, topics: dict[str, int]) -> frozenset[str]:
        """Topics a regex matches (whole names, as Kafka's RE2J ``matches()``), cached per
        catalog version: heartbeats must not rescan every topic name per member."""
        version = self._topics[0]
        hit = self._matches.get(regex)
        if hit is None or hit[0] != version:
            pat = self._compile(regex)
            hit = (version, frozenset(t for t in topics if pat.fullmatch(t)))
            if len(self._matches) > 1024:
                self._matches.clear()
            self._matches[regex] = hit
        return hit[1]

    def _refresh(self, g: CGroup) -> None:
        """Bump the group epoch if what the assignment depends on changed (members, their
        subscriptions, regex matches, the partition counts of subscribed topics)."""
        topics = self._topics_now()
        subs: dict[str, frozenset[str]] = {}
        for mid, m in g.members.items():
            mine = {t for t in m.topic_names if t in topics}
            if m.regex:
                mine.update(self._matching(m.regex, topics))
            subs[mid] = frozenset(mine)
        meta = {t: topics[t] for ts in subs.values() for t in ts}
        if subs != g.subscriptions or meta != g.metadata:
            g.subscriptions, g.metadata = subs, meta
            g.epoch += 1

    def _assign(self, g: CGroup) -> None:
        prefs = Counter(m.assignor for m in g.members.values() if m.assignor)
        order = list(ASSIGNORS)
        name = (max(prefs, key=lambda n: (prefs[n], -order.index(n))) if prefs
                else DEFAULT_ASSIGNOR)
        current = {mid: g.target.get(mid, frozenset()) for mid in g.subscriptions}
        g.target = ASSIGNORS[name](g.subscriptions, g.metadata, current)
        g.assignor = name
        g.target_epoch = g.epoch

    def _reconcile(self, g: CGroup, m: CMember, owned: frozenset[TP] | None,
                   now: float) -> None:
        """Move one member toward its target (Kafka's CurrentAssignmentBuilder)."""
        if m.state == M_UNREVOKED:
            if owned is None or owned & m.revoking:
                return  # still holds what it must give up; its rebalance timeout runs
            m.revoking = frozenset()
            m.revoke_deadline = None
            m.state = M_STABLE
        if m.state == M_STABLE and m.epoch == g.target_epoch:
            return
        target = g.target.get(m.member_id, frozenset())
        keep = m.assigned & target
        revoke = m.assigned - target
        if revoke and (owned is None or owned & revoke):
            m.assigned, m.revoking, m.state = keep, revoke, M_UNREVOKED
            m.revoke_deadline = now + m.rebalance_timeout_ms / 1000
            return
        held: set[TP] = set()
        for x in g.members.values():
            if x is not m:
                held.update(x.assigned)
                held.update(x.revoking)
        wanted = target - keep
        free = frozenset(tp for tp in wanted if tp not in held)
        if m.epoch != g.target_epoch:
            m.previous_epoch, m.epoch = m.epoch, g.target_epoch
        m.assigned = keep | free
        m.state = M_UNRELEASED if wanted - free else M_STABLE

    # ------------------------------------------------------------------ reads and offsets
    def describe(self, group_id: str) -> ConsumerGroupDescription:
        with self._lock:
            g = self.groups.get(group_id)
            if g is None:
                if group_id in self._classic:
                    raise GroupIdNotFoundError(f"Group {group_id} is not a consumer group.")
                raise GroupIdNotFoundError(f"Group {group_id} not found.")
            self._expire(g, self._time())
            return g.describe()

    def states(self) -> dict[str, str]:
        """group id -> state, for ListGroups."""
        with self._lock:
            now = self._time()
            for g in self.groups.values():
                self._expire(g, now)
            return {gid: g.state for gid, g in self.groups.items()}

    def owns(self, group_id: str) -> bool:
        """Whether ``group_id`` is a consumer-protocol group (call with the lock held)."""
        return group_id in self.groups

    def claim_for_classic(self, group_id: str) -> None:
        """A classic JoinGroup for ``group_id`` (call with the lock held): an empty consumer
        group gives its id up (offsets stay); one with members refuses, as in Kafka."""
        g = self.groups.get(group_id)
        if g is None:
            return
        self._expire(g, self._time())
        if g.members:
            raise InconsistentGroupProtocolError(
                f"Group {group_id} is a consumer-protocol group with members; classic "
                "members cannot join it (online migration is not supported).")
        del self.groups[group_id]

    def check_commit(self, group_id: str, member_id: str, member_epoch: int) -> None:
        """OffsetCommit against a consumer group (lock held), Kafka's validateOffsetCommit:
        epoch < 0 into an empty group is an admin commit; otherwise the member must exist
        and send exactly its current epoch (older: STALE_MEMBER_EPOCH, newer: FENCED)."""
        g = self.groups[group_id]
        self._expire(g, self._time())
        if member_epoch < 0 and not g.members:
            return
        m = self._member(g, member_id)
        if member_epoch > m.epoch:
            raise FencedMemberEpochError(
                f"The member epoch {member_epoch} is newer than the current one {m.epoch}.")
        if member_epoch < m.epoch:
            raise StaleMemberEpochError(
                f"The member epoch {member_epoch} is older than the current one {m.epoch}.")

    def validate_offset_fetch(self, group_id: str, member_id: str | None,
                              member_epoch: int) -> None:
        """OffsetFetch v9+ with a member: it must exist and send its current epoch."""
        with self._lock:
            g = self.groups.get(group_id)
            if g is None or (member_id is None or member_id == "") and member_epoch < 0:
                return
            m = self._member(g, member_id or "")
            if member_epoch != m.epoch:
                raise StaleMemberEpochError(
                    f"The member epoch {member_epoch} is not the current one {m.epoch}.")

    def commit(self, group_id: str, member_id: str, member_epoch: int,
               offsets: Offsets) -> None:
        self.check_commit(group_id, member_id, member_epoch)
        self.offsets.commit(group_id, dict(offsets))

    def delete(self, group_id: str) -> None:
        """DeleteGroups of a consumer group (lock held): only an empty one."""
        g = self.groups[group_id]
        self._expire(g, self._time())
        if g.members:
            raise GroupNotEmptyError(f"group {group_id!r} has members")
        del self.groups[group_id]
