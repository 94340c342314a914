"""One coordinator for both group protocols: the classic one plus KIP-848 consumer groups.

:class:`GroupCoordinator` (classic JoinGroup/SyncGroup) stays as it is; this subclass adds
:attr:`consumer_groups` and routes the calls both protocols share by group id: a group id
names either a classic group or a consumer group, committed offsets of both sit in the one
offset store, and the admin calls (DescribeGroups, ListGroups, DeleteGroups) see both.

Conversion is Kafka's with its migration policy off: whichever protocol finds the id empty
(or unknown) takes it; a group with members of the other protocol refuses the joiner. So an
embedded consumer (it speaks the classic protocol through this same object) can use a group
id a wire consumer used with ``group.protocol=consumer`` once that group is empty, and the
other way round, and both resume from the same committed offsets.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any

from logmq.broker.groups.consumer_group import (
    DEFAULT_HEARTBEAT_INTERVAL_MS,
    DEFAULT_SESSION_TIMEOUT_MS,
    ConsumerGroups,
    TopicCatalog,
)
from logmq.broker.groups.coordinator import GroupCoordinator
from logmq.broker.groups.model import GroupDescription, JoinResult, _resolved
from logmq.broker.groups.offsets import Offsets, OffsetStore
from logmq.broker.groups.states import DEAD
from logmq.errors import GroupError

__all__ = ["KafkaGroupCoordinator"]


class KafkaGroupCoordinator(GroupCoordinator):
    """The classic coordinator plus consumer-protocol groups (see the module docstring)."""

    def __init__(self, offsets: OffsetStore, catalog: TopicCatalog, *,
                 consumer_session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
                 consumer_heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_INTERVAL_MS,
                 **kw: Any) -> None:
        super().__init__(offsets, **kw)
        self.consumer_groups = ConsumerGroups(
            catalog, offsets, self._lock, self._groups, self._time,
            session_timeout_ms=consumer_session_timeout_ms,
            heartbeat_interval_ms=consumer_heartbeat_interval_ms)

    def join_group(self, group_id: str, member_id: str, protocol_type: str,
                   protocols: list[tuple[str, bytes]], session_timeout_ms: int,
                   rebalance_timeout_ms: int, client_id: str = "", client_host: str = "",
                   require_known_member_id: bool = False,
                   group_instance_id: str | None = None) -> Future[JoinResult]:
        with self._lock:
            try:
                self.consumer_groups.claim_for_classic(group_id)
            except GroupError as e:
                return _resolved(JoinResult(e, -1, "", "", member_id, []))
        return super().join_group(group_id, member_id, protocol_type, protocols,
                                  session_timeout_ms, rebalance_timeout_ms, client_id,
                                  client_host, require_known_member_id, group_instance_id)

    def commit_offsets(self, group_id: str, generation_id: int, member_id: str,
                       offsets: Offsets, group_instance_id: str | None = None) -> None:
        """OffsetCommit: a consumer group checks member id and epoch (Kafka's
        STALE_MEMBER_EPOCH / FENCED_MEMBER_EPOCH / UNKNOWN_MEMBER_ID), a classic one its
        generation."""
        with self._lock:
            self._check_open()
            if self.consumer_groups.owns(group_id):
                self.consumer_groups.commit(group_id, member_id, generation_id, offsets)
                return
        super().commit_offsets(group_id, generation_id, member_id, offsets, group_instance_id)

    def describe_group(self, group_id: str) -> GroupDescription:
        """DescribeGroups of a consumer group: as Kafka 4.4 answers it, "Dead" with no
        protocol and no members (it describes classic groups only; DescribeGroups v6 turns
        that into GROUP_ID_NOT_FOUND)."""
        with self._lock:
            owned = self.consumer_groups.owns(group_id)
        if not owned:
            return super().describe_group(group_id)
        return GroupDescription(group_id, DEAD, "", "", [])

    def list_groups(self) -> list[tuple[str, str, str]]:
        rows = {gid: row for gid, row in ((r[0], r) for r in super().list_groups())}
        for gid, state in self.consumer_groups.states().items():
            rows[gid] = (gid, "consumer", state)
        return [rows[k] for k in sorted(rows)]

    def group_types(self) -> dict[str, str]:
        """group id -> "consumer" or "classic" (ListGroups v5's types filter)."""
        with self._lock:
            out = {gid: "classic" for gid in self._groups}
            out.update({gid: "consumer" for gid in self.consumer_groups.groups})
        return out

    def delete_groups(self, group_ids: Iterable[str]) -> dict[str, Exception | None]:
        ids = list(group_ids)
        result: dict[str, Exception | None] = {}
        classic = []
        with self._lock:
            self._check_open()
            for gid in ids:
                if not self.consumer_groups.owns(gid):
                    classic.append(gid)
                    continue
                try:
                    self.consumer_groups.delete(gid)
                    self.offsets.delete_group(gid)
                    result[gid] = None
                except GroupError as e:
                    result[gid] = e
        result.update(super().delete_groups(classic))
        return {gid: result[gid] for gid in ids}

