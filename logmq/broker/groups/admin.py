"""The coordinator's read-mostly group APIs: OffsetFetch, DescribeGroups, ListGroups,
DeleteGroups. A mixin of :class:`~logmq.broker.groups.coordinator.GroupCoordinator`, kept apart
so the state machine's module stays about the state machine; it shares its lock and tables."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from logmq.broker.groups.model import GroupDescription, MemberDescription, _Group
from logmq.broker.groups.offsets import Offsets, OffsetStore
from logmq.broker.groups.states import DEAD, EMPTY, STABLE
from logmq.errors import BrokerClosedError, GroupIdNotFoundError, GroupNotEmptyError

__all__ = ["GroupAdmin"]


class GroupAdmin:
    offsets: OffsetStore
    _lock: threading.Lock
    _groups: dict[str, _Group]
    _closed: bool

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerClosedError("group coordinator is closed")

    # ------------------------------------------------------------------ offsets
    def fetch_offsets(self, group_id: str,
                      partitions: list[tuple[str, int]] | None) -> Offsets:
        """OffsetFetch; partitions without a committed offset are absent."""
        self._check_open()
        return self.offsets.fetch(group_id, None if partitions is None else list(partitions))

    def delete_offsets(self, group_id: str, partitions: Iterable[tuple[str, int]]) -> None:
        """OffsetDelete's effect (the caller checked the group does not consume them)."""
        with self._lock:
            self._check_open()
            self.offsets.delete_partitions(group_id, list(partitions))

    def delete_topic_offsets(self, topic: str) -> None:
        with self._lock:
            self._check_open()
            self.offsets.delete_topic(topic)

    # ------------------------------------------------------------------ admin
    def describe_group(self, group_id: str) -> GroupDescription:
        """DescribeGroups. Like Kafka, metadata, assignments and the protocol are reported
        only when Stable (mid-rebalance they are in flux); unknown groups are "Dead"."""
        with self._lock:
            self._check_open()
            g = self._groups.get(group_id)
            if g is None:
                if self.offsets.fetch(group_id, None):
                    return GroupDescription(group_id, EMPTY, "consumer", "", [])
                return GroupDescription(group_id, DEAD, "", "", [])
            stable = g.state == STABLE
            members = [
                MemberDescription(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                  m.metadata_for(g.protocol) if stable else b"",
                                  m.assignment if stable else b"")
                for m in g.members.values()
            ]
            return GroupDescription(group_id, g.state, g.protocol_type or "",
                                    (g.protocol or "") if stable else "", members)

    def list_groups(self) -> list[tuple[str, str, str]]:
        """ListGroups, including groups known only by their committed offsets."""
        with self._lock:
            self._check_open()
            out = {gid: (gid, g.protocol_type or "consumer", g.state)
                   for gid, g in self._groups.items()}
            for gid in self.offsets.groups():
                out.setdefault(gid, (gid, "consumer", EMPTY))
        return [out[k] for k in sorted(out)]

    def delete_groups(self, group_ids: Iterable[str]) -> dict[str, Exception | None]:
        """DeleteGroups: only Empty groups; their committed offsets go too."""
        result: dict[str, Exception | None] = {}
        with self._lock:
            self._check_open()
            for gid in group_ids:
                g = self._groups.get(gid)
                if g is not None and (g.state != EMPTY or g.members or g.pending):
                    result[gid] = GroupNotEmptyError(f"group {gid!r} has members")
                    continue
                if g is None and not self.offsets.fetch(gid, None):
                    result[gid] = GroupIdNotFoundError(f"group {gid!r} does not exist")
                    continue
                self._groups.pop(gid, None)
                self.offsets.delete_group(gid)
                result[gid] = None
        return result
