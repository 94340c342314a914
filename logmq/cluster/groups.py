"""Consumer groups on a cluster: the embedded ``GroupCoordinator``'s admin half, over the wire.

``log.groups`` embedded is the coordinator itself; on a cluster the coordinator is a broker,
so only the calls a tool makes from outside a group exist here: list, describe, fetch offsets,
commit offsets as an admin (generation -1, no member: what ``groups reset-offsets`` does), and
delete. Joining and heartbeating happen inside :class:`~logmq.cluster.consumer.ClusterConsumer`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka import TopicPartition as CKTopicPartition

from logmq import errors
from logmq.broker.groups.model import GroupDescription, MemberDescription
from logmq.cluster.common import ClusterContext

__all__ = ["ClusterGroups"]

Offsets = dict[tuple[str, int], tuple[int, str | None]]

_STATES = {"STABLE": "Stable", "EMPTY": "Empty", "DEAD": "Dead",
           "PREPARING_REBALANCE": "PreparingRebalance",
           "COMPLETING_REBALANCE": "CompletingRebalance", "UNKNOWN": "Unknown"}


def _state(s: Any) -> str:
    name = getattr(s, "name", str(s))
    return _STATES.get(name, name.title())


def _assignment_bytes(member: Any) -> bytes:
    """A described member's partitions as ConsumerProtocol assignment bytes, the form an
    embedded description carries, so tools decode both alike."""
    from logmq.protocol.consumer_protocol import encode_assignment

    tps = getattr(getattr(member, "assignment", None), "topic_partitions", None) or []
    parts: dict[str, list[int]] = {}
    for tp in tps:
        parts.setdefault(tp.topic, []).append(tp.partition)
    return encode_assignment(parts) if parts else b""


class ClusterGroups:
    """The group admin calls of ``log.groups``, on a cluster."""

    def __init__(self, broker: ClusterContext) -> None:
        self._b = broker

    def list_groups(self) -> list[tuple[str, str, str]]:
        """(group id, protocol type, state) per group, sorted by id."""
        res = self._b.result(self._b.admin.list_consumer_groups(
            request_timeout=self._b.request_timeout), what="list groups")
        out = []
        for g in res.valid:
            state = _state(g.state)
            if state == "Unknown":  # a broker whose ListGroups predates states: ask it
                state = self.describe_group(g.group_id).state
            out.append((g.group_id, "consumer", state))
        return sorted(out)

    def describe_group(self, group_id: str) -> GroupDescription:
        """Members without their protocol bytes (the admin API reports decoded assignments:
        see ``assignments()``); unknown groups are "Dead" as embedded."""
        futs = self._b.admin.describe_consumer_groups(
            [group_id], request_timeout=self._b.request_timeout)
        try:
            d = self._b.result(futs[group_id], what=f"describe group {group_id!r}")
        except errors.GroupIdNotFoundError:
            return GroupDescription(group_id, "Dead", "", "", [])
        members = [MemberDescription(m.member_id, m.group_instance_id, m.client_id, m.host,
                                     b"", _assignment_bytes(m)) for m in d.members]
        state = _state(d.state)
        return GroupDescription(group_id, state, "consumer" if state != "Dead" else "",
                                d.partition_assignor or "", members)

    def fetch_offsets(self, group_id: str,
                      partitions: list[tuple[str, int]] | None) -> Offsets:
        """Committed offsets; partitions without one are absent (as embedded)."""
        tps = None if partitions is None else [CKTopicPartition(t, p) for t, p in partitions]
        req = ConsumerGroupTopicPartitions(group_id, tps)
        fut = self._b.admin.list_consumer_group_offsets(
            [req], request_timeout=self._b.request_timeout)[group_id]
        res = self._b.result(fut, what=f"offsets of group {group_id!r}")
        out: Offsets = {}
        for tp in res.topic_partitions:
            if tp.error is None and tp.offset >= 0:
                out[(tp.topic, tp.partition)] = (tp.offset, tp.metadata or None)
        return out

    def commit_offsets(self, group_id: str, generation_id: int, member_id: str,
                       offsets: Mapping[tuple[str, int], tuple[int, str | None]]) -> None:
        """Admin commit (generation -1, no member): the group must have no active members,
        as Kafka requires; a member's own commits go through its consumer."""
        if generation_id != -1 or member_id:
            raise errors.UnsupportedOnClusterError(
                "a member's commit goes through its consumer on a cluster: call "
                "consumer.commit(); log.groups.commit_offsets takes generation -1 only")
        tps = []
        for (t, p), (off, meta) in offsets.items():
            tp = CKTopicPartition(t, p, off)
            if meta:
                tp.metadata = meta
            tps.append(tp)
        if not tps:
            return
        fut = self._b.admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group_id, tps)],
            request_timeout=self._b.request_timeout)[group_id]
        res = self._b.result(fut, what=f"commit offsets of group {group_id!r}")
        for tp in res.topic_partitions:
            if tp.error is not None:
                from logmq.cluster.common import translate

                raise translate(tp.error, tp.topic, tp.partition,
                                f"commit offsets of group {group_id!r}")

    def delete_groups(self, group_ids: Iterable[str]) -> dict[str, Exception | None]:
        ids = list(group_ids)
        if not ids:
            return {}
        futs = self._b.admin.delete_consumer_groups(ids,
                                                    request_timeout=self._b.request_timeout)
        out: dict[str, Exception | None] = {}
        for gid, fut in futs.items():
            try:
                self._b.result(fut, what=f"delete group {gid!r}")
                out[gid] = None
            except errors.LogMQError as e:
                out[gid] = e
        return out
