"""Share-group membership and share sessions of the Kafka wire (KIP-932), over the queue engine.

The queue engine (:mod:`logmq.broker.queues`) already knows records, locks, delivery counts
and dead letters per (group, topic). What the wire adds is kept here, in memory, on the
server's event loop:

* members that heartbeat (ShareGroupHeartbeat): member id, epoch, subscription, the
  assignment they were told (every partition of every subscribed topic: in a share group
  members share partitions record by record, so nothing is gained by splitting them), and
  one engine :class:`~logmq.broker.queues.model.Member` per topic they fetch from, whose
  ``held`` records are what this member may acknowledge;
* share sessions (ShareFetch / ShareAcknowledge): per member, the session epoch and the
  partitions the session fetches.

A member that leaves, or misses heartbeats for ``share.session.timeout.ms``, is removed and
what it held is available again at once. Nothing here survives a restart, as in Kafka: the
durable part (which records are done, delivery counts) is the engine's.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from logmq.broker.queues.kafka_configs import ShareGroupConfigs
from logmq.errors import UnknownTopicError

if TYPE_CHECKING:
    from logmq.broker.broker import Broker
    from logmq.broker.queues.group import ShareGroup
    from logmq.broker.queues.model import Member

__all__ = ["WireMember", "ShareSession", "WireShareGroup", "ShareRegistry", "TopicIds",
           "share_pool"]

_pool: ThreadPoolExecutor | None = None


def share_pool() -> ThreadPoolExecutor:
    """The threads engine calls of the share APIs run on (LMDB commits stay off the loop)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="logmq-share")
    return _pool


class TopicIds:
    """Topic name <-> the 16-byte topic id the share APIs address topics by."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._by_id: dict[bytes, str] = {}

    def id_of(self, name: str) -> bytes:
        raw = self.broker.topic_id(name)
        try:
            tid = uuid.UUID(hex=raw).bytes if raw else b"\x00" * 16
        except ValueError:
            tid = b"\x00" * 16
        if tid != b"\x00" * 16:
            self._by_id[tid] = name
        return tid

    def name_of(self, tid: bytes) -> str | None:
        name = self._by_id.get(tid)
        if name is not None and self.broker.topic_id(name) and self.id_of(name) == tid:
            return name
        self._by_id.pop(tid, None)
        for n in self.broker.list_topics():
            if self.id_of(n) == tid:
                return n
        return None


@dataclass
class ShareSession:
    """A member's share session: the next epoch expected and the partitions it fetches."""

    epoch: int = 1
    partitions: dict[str, set[int]] = field(default_factory=dict)

    def add(self, topic: str, p: int) -> None:
        self.partitions.setdefault(topic, set()).add(p)

    def forget(self, topic: str, parts: list[int]) -> None:
        have = self.partitions.get(topic)
        if have is None:
            return
        have.difference_update(parts)
        if not have:
            del self.partitions[topic]


@dataclass
class WireMember:
    member_id: str
    client_id: str
    client_host: str
    rack_id: str | None = None
    epoch: int = 0
    subscribed: list[str] = field(default_factory=list)
    assignment: dict[str, list[int]] = field(default_factory=dict)
    last_seen: float = 0.0
    #: topic -> this member's acquisitions in the engine
    engine: dict[str, Member] = field(default_factory=dict)
    session: ShareSession | None = None


class WireShareGroup:
    """The wire members of one share group (the engine's ShareGroups hold the records)."""

    def __init__(self, registry: ShareRegistry, group_id: str) -> None:
        self.registry = registry
        self.group_id = group_id
        self.epoch = 0
        self.assignment_epoch = 0
        self.members: dict[str, WireMember] = {}
        #: members that left the group with a share session still open: the client closes
        #: it (ShareFetch/ShareAcknowledge epoch -1, with the last acknowledgements) after or
        #: while it leaves, so what they hold waits for that (or for the locks to run out)
        self.departed: dict[str, WireMember] = {}

    @property
    def state(self) -> str:
        return "Stable" if self.members else "Empty"

    def engine_group(self, topic: str) -> ShareGroup:
        """The engine's state of this group on ``topic``; the wire's configs apply if the wire
        opens it (an embedded member that configured it first keeps its settings)."""
        return self.registry.broker.queues.open_group(
            topic, self.group_id, self.registry.configs.group_config(self.group_id))

    def engine_member(self, m: WireMember, topic: str) -> Member:
        em = m.engine.get(topic)
        if em is None or em.closed:
            lock_ms = self.registry.configs.get_int(self.group_id,
                                                    "share.record.lock.duration.ms")
            em = m.engine[topic] = self.engine_group(topic).add_member(lock_ms, prefix="wire")
        return em

    def compute_assignment(self, topics: list[str]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for t in topics:
            try:
                n = self.registry.broker.partitions_for(t)
            except UnknownTopicError:
                continue
            out[t] = list(range(n))
        return out

    def leave(self, member_id: str) -> None:
        """A member leaves the group; an open share session outlives it until closed."""
        m = self.members.get(member_id)
        if m is not None and m.session is not None:
            del self.members[member_id]
            self.epoch += 1
            m.last_seen = time.monotonic()
            self.departed[member_id] = m
        else:
            self.remove(member_id)

    def session_member(self, member_id: str) -> WireMember | None:
        return self.members.get(member_id) or self.departed.get(member_id)

    def remove(self, member_id: str) -> None:
        m = self.members.pop(member_id, None)
        if m is not None:
            self.epoch += 1
        else:
            m = self.departed.pop(member_id, None)
        if m is None:
            return
        for topic, em in m.engine.items():
            try:
                self.engine_group(topic).remove_member(em, release=True)
            except Exception:  # the topic was deleted meanwhile: nothing is held any more
                pass
        m.engine.clear()
        m.session = None

    def expire(self, now: float) -> None:
        timeout = self.registry.configs.get_int(self.group_id, "share.session.timeout.ms")
        for mid, m in list(self.members.items()) + list(self.departed.items()):
            if now - m.last_seen > timeout / 1000:
                self.remove(mid)


class ShareRegistry:
    """Every wire share group of one server."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.configs = ShareGroupConfigs(broker.meta.env)
        self.topic_ids = TopicIds(broker)
        self.groups: dict[str, WireShareGroup] = {}

    def group(self, group_id: str, create: bool = True) -> WireShareGroup | None:
        g = self.groups.get(group_id)
        if g is None and create:
            g = self.groups[group_id] = WireShareGroup(self, group_id)
        if g is not None:
            g.expire(time.monotonic())
        return g

    def known_share_group(self, group_id: str) -> bool:
        """A share group has wire members now, or engine state on some topic."""
        if group_id in self.groups:
            return True
        return bool(self.engine_topics(group_id))

    def engine_topics(self, group_id: str) -> list[str]:
        out = []
        for t in self.broker.list_topics():
            if group_id in self.broker.queues.groups_of(t):
                out.append(t)
        return out

    def all_group_ids(self) -> list[str]:
        names = set(self.groups)
        for t in self.broker.list_topics():
            names.update(self.broker.queues.groups_of(t))
        return sorted(names)

    def close(self) -> None:
        for g in list(self.groups.values()):
            for mid in list(g.members) + list(g.departed):
                g.remove(mid)
        self.groups.clear()
