"""Share-group offset admin APIs: DescribeShareGroupOffsets (90), AlterShareGroupOffsets (91),
DeleteShareGroupOffsets (92), over the engine's start offsets
(:mod:`logmq.broker.queues.offsets`). ``kafka-share-groups --describe / --reset-offsets /
--delete-offsets`` send these."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from logmq.broker.queues.offsets import (
    NonEmptyGroupError,
    delete_group_state,
    describe_start_offsets,
    reset_start_offsets,
)
from logmq.broker.queues.state import group_name_problem
from logmq.errors import LogMQError, UnknownTopicError
from logmq.kafka_codes import ErrorCode as _E
from logmq.server.share_state import share_pool

if TYPE_CHECKING:
    from logmq.broker.broker import Broker
    from logmq.server.share_state import ShareRegistry

__all__ = ["ShareAdminHandlers", "SHARE_ADMIN_APIS"]

#: what Kafka 4.4 serves
SHARE_ADMIN_APIS = {90: (0, 1), 91: (0, 0), 92: (0, 0)}
NONE = int(_E.NONE)
UNKNOWN_TOPIC_OR_PARTITION = int(_E.UNKNOWN_TOPIC_OR_PARTITION)
GROUP_ID_NOT_FOUND = int(_E.GROUP_ID_NOT_FOUND)
NON_EMPTY_GROUP = int(_E.NON_EMPTY_GROUP)
INVALID_GROUP_ID = int(_E.INVALID_GROUP_ID)


class ShareAdminHandlers:
    broker: Broker

    if TYPE_CHECKING:
        @property
        def shares(self) -> ShareRegistry: ...

    def share_admin_table(self) -> dict[int, Any]:
        return {90: self._offloaded(self.describe_share_group_offsets),
                91: self._offloaded(self.alter_share_group_offsets),
                92: self._offloaded(self.delete_share_group_offsets)}

    @staticmethod
    def _offloaded(fn: Callable[[dict, int, Any], dict]
                   ) -> Callable[[dict, int, Any], Awaitable[dict]]:
        """Run an admin handler on the share pool: they open groups and commit to LMDB."""
        async def run(body: dict, v: int, client: Any) -> dict:
            return await asyncio.get_running_loop().run_in_executor(
                share_pool(), fn, body, v, client)
        return run

    def _has_wire_members(self, group: str) -> bool:
        g = self.shares.groups.get(group)
        return g is not None and bool(g.members or g.departed)

    def describe_share_group_offsets(self, body: dict, v: int, client: Any) -> dict:
        ids = self.shares.topic_ids
        groups = []
        for req in body.get("groups") or []:
            gid = req["group_id"]
            entry: dict[str, Any] = {"group_id": gid, "topics": [], "error_code": NONE,
                                     "error_message": None}
            bad = group_name_problem(gid)
            if bad:
                entry["error_code"], entry["error_message"] = INVALID_GROUP_ID, bad
                groups.append(entry)
                continue
            known = self.shares.engine_topics(gid)
            if not known and gid not in self.shares.groups:
                entry["error_code"] = GROUP_ID_NOT_FOUND
                entry["error_message"] = f"share group {gid!r} not found"
                groups.append(entry)
                continue
            wanted = req.get("topics")
            if wanted is None:
                wanted = [{"topic_name": t, "partitions": None} for t in known]
            for t in wanted:
                name = t["topic_name"]
                try:
                    n = self.broker.partitions_for(name)
                    have = describe_start_offsets(self.broker.queues, name, gid) or {}
                    tid = ids.id_of(name)
                    code = NONE
                except LogMQError as e:  # unknown, or deleted or re-created meanwhile
                    n, have, tid, code = 0, {}, bytes(16), int(e.kafka_code)
                parts = t.get("partitions")
                if parts is None:
                    parts = list(range(n))
                rows = []
                for p in parts:
                    start, lag = have.get(p, (-1, -1))
                    rows.append({"partition_index": p, "start_offset": start,
                                 "leader_epoch": 0 if start >= 0 else -1, "lag": lag,
                                 "error_code": code if code or p < n
                                 else UNKNOWN_TOPIC_OR_PARTITION, "error_message": None})
                entry["topics"].append({"topic_name": name, "topic_id": tid,
                                        "partitions": rows})
            groups.append(entry)
        return {"throttle_time_ms": 0, "groups": groups}

    def alter_share_group_offsets(self, body: dict, v: int, client: Any) -> dict:
        gid = body.get("group_id") or ""
        out: dict[str, Any] = {"throttle_time_ms": 0, "error_code": NONE,
                               "error_message": None, "responses": []}
        bad = group_name_problem(gid)
        if bad:
            out["error_code"], out["error_message"] = INVALID_GROUP_ID, bad
            return out
        if self._has_wire_members(gid):
            out["error_code"] = NON_EMPTY_GROUP
            out["error_message"] = f"share group {gid!r} has members"
            return out
        for t in body.get("topics") or []:
            name = t["topic_name"]
            parts = t.get("partitions") or []
            try:
                n = self.broker.partitions_for(name)
                tid = self.shares.topic_ids.id_of(name)
            except LogMQError:  # unknown (or deleted meanwhile)
                out["responses"].append({"topic_name": name, "topic_id": bytes(16),
                                         "partitions": [{
                                             "partition_index": p["partition_index"],
                                             "error_code": UNKNOWN_TOPIC_OR_PARTITION,
                                             "error_message": None} for p in parts]})
                continue
            ok = {p["partition_index"]: p["start_offset"] for p in parts
                  if 0 <= p["partition_index"] < n}
            codes: dict[int, tuple[int, str | None]] = {}
            try:
                reset_start_offsets(self.broker.queues, name, gid, ok)
            except NonEmptyGroupError as e:
                out["error_code"], out["error_message"] = NON_EMPTY_GROUP, str(e)
                return out
            except LogMQError as e:
                codes = {p: (e.kafka_code, str(e)) for p in ok}
            out["responses"].append({"topic_name": name, "topic_id": tid, "partitions": [{
                "partition_index": p["partition_index"],
                "error_code": codes.get(p["partition_index"], (NONE, None))[0]
                if p["partition_index"] in ok else UNKNOWN_TOPIC_OR_PARTITION,
                "error_message": codes.get(p["partition_index"], (NONE, None))[1]}
                for p in parts]})
        return out

    def delete_share_group_offsets(self, body: dict, v: int, client: Any) -> dict:
        gid = body.get("group_id") or ""
        out: dict[str, Any] = {"throttle_time_ms": 0, "error_code": NONE,
                               "error_message": None, "responses": []}
        bad = group_name_problem(gid)
        if bad:
            out["error_code"], out["error_message"] = INVALID_GROUP_ID, bad
            return out
        if not self.shares.known_share_group(gid):
            out["error_code"] = GROUP_ID_NOT_FOUND
            return out
        if self._has_wire_members(gid):
            out["error_code"] = NON_EMPTY_GROUP
            return out
        for t in body.get("topics") or []:
            name = t["topic_name"]
            entry = {"topic_name": name, "topic_id": bytes(16), "error_code": NONE,
                     "error_message": None}
            try:
                entry["topic_id"] = self.shares.topic_ids.id_of(name)
                self.broker.partitions_for(name)
                delete_group_state(self.broker.queues, name, gid)
            except UnknownTopicError:
                entry["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
            except NonEmptyGroupError as e:
                out["error_code"], out["error_message"] = NON_EMPTY_GROUP, str(e)
                out["responses"] = []
                return out
            except LogMQError as e:  # a topic deleted or re-created meanwhile, a full disk
                entry["error_code"], entry["error_message"] = int(e.kafka_code), str(e)
            out["responses"].append(entry)
        return out
