"""KIP-848 over the wire: ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69).

The state machine lives in :mod:`logmq.broker.groups.consumer_group`; this mixin only turns
wire bodies into its requests and back. The one wire-only concern is topic ids: the protocol
names partitions by topic id, the group by topic name, so both directions go through a map
rebuilt whenever the topic catalog changes (a recreated topic has a new id, and a partition
named by an id we do not know is dropped, as Kafka ignores unknown topic ids).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from logmq.broker.groups.consumer_group_model import TP, HeartbeatRequest
from logmq.errors import GroupError, LogMQError
from logmq.kafka_codes import ErrorCode as _E

if TYPE_CHECKING:
    from logmq.broker.broker import Broker
    from logmq.server.topic_ids import TopicIds

__all__ = ["Kip848Handlers"]

_ALL_OPS = -2147483648
MEMBER_TYPE_CONSUMER = 1  # ConsumerGroupDescribe v1's member_type (0 is a classic member)


class Kip848Handlers:
    """Mixed into ``Handlers``, which sets ``broker`` and ``topic_ids`` (the server's one
    name <-> id map, rebuilt when the topic catalog changes)."""

    broker: Broker
    topic_ids: TopicIds

    def kip848_table(self) -> dict[int, Callable[..., Any]]:
        return {68: self.consumer_group_heartbeat, 69: self.consumer_group_describe}

    def _wire_partitions(self, tps: Iterable[TP], names: bool) -> list[dict]:
        per: dict[str, list[int]] = {}
        for t, p in sorted(tps):
            per.setdefault(t, []).append(p)
        out = []
        for t, ps in per.items():
            entry: dict[str, Any] = {"topic_id": self.topic_ids.id_of(t), "partitions": ps}
            if names:
                entry["topic_name"] = t
            out.append(entry)
        return out

    # ------------------------------------------------------------------ 68
    def consumer_group_heartbeat(self, body: dict, v: int, client: Any) -> dict:
        def error(code: int, msg: str) -> dict:
            return {"throttle_time_ms": 0, "error_code": code, "error_message": msg,
                    "member_id": None, "member_epoch": 0, "heartbeat_interval_ms": 0,
                    "assignment": None}

        if v >= 1 and not body.get("member_id"):  # KIP-1082: v1 clients name themselves
            return error(_E.INVALID_REQUEST, "MemberId can't be empty.")
        owned: frozenset[TP] | None = None
        if body.get("topic_partitions") is not None:
            named = [(self.topic_ids.name_of(tp["topic_id"]), tp["partitions"])
                     for tp in body["topic_partitions"]]
            owned = frozenset((name, p) for name, ps in named if name is not None for p in ps)
        req = HeartbeatRequest(
            group_id=body.get("group_id") or "", member_id=body.get("member_id") or "",
            member_epoch=body.get("member_epoch", 0), instance_id=body.get("instance_id"),
            rack_id=body.get("rack_id"),
            rebalance_timeout_ms=body.get("rebalance_timeout_ms", -1),
            subscribed_topic_names=body.get("subscribed_topic_names"),
            subscribed_topic_regex=body.get("subscribed_topic_regex"),
            server_assignor=body.get("server_assignor"), owned=owned,
            client_id=getattr(client, "client_id", "") or "",
            client_host=getattr(client, "host", "") or "",
            max_members=getattr(getattr(self, "limits", None), "max_group_members", None))
        try:
            res = self.broker.groups.consumer_groups.heartbeat(req)
        except LogMQError as e:
            return error(e.kafka_code, str(e))
        if res.error is not None:
            return error(getattr(res.error, "wire_code", res.error.kafka_code), str(res.error))
        assignment = None
        if res.assignment is not None:
            assignment = {"topic_partitions": self._wire_partitions(res.assignment, False)}
        return {"throttle_time_ms": 0, "error_code": _E.NONE, "error_message": None,
                "member_id": res.member_id, "member_epoch": res.member_epoch,
                "heartbeat_interval_ms": res.heartbeat_interval_ms, "assignment": assignment}

    # ------------------------------------------------------------------ 69
    def consumer_group_describe(self, body: dict, v: int, client: Any) -> dict:
        groups = []
        cg = self.broker.groups.consumer_groups
        for gid in body.get("group_ids") or []:
            try:
                d = cg.describe(gid)
            except GroupError as e:
                groups.append({"error_code": e.kafka_code, "error_message": str(e),
                               "group_id": gid, "group_state": "", "group_epoch": 0,
                               "assignment_epoch": 0, "assignor_name": "", "members": [],
                               "authorized_operations": _ALL_OPS})
                continue
            members = [{
                "member_id": m.member_id, "instance_id": m.instance_id, "rack_id": m.rack_id,
                "member_epoch": m.member_epoch, "client_id": m.client_id,
                "client_host": m.client_host, "subscribed_topic_names": m.subscribed_topic_names,
                "subscribed_topic_regex": m.subscribed_topic_regex or "",  # Kafka: "", not null
                "assignment": {"topic_partitions": self._wire_partitions(m.assignment, True)},
                "target_assignment": {
                    "topic_partitions": self._wire_partitions(m.target_assignment, True)},
                "member_type": MEMBER_TYPE_CONSUMER,
            } for m in d.members]
            groups.append({"error_code": _E.NONE, "error_message": None, "group_id": gid,
                           "group_state": d.state, "group_epoch": d.group_epoch,
                           "assignment_epoch": d.assignment_epoch,
                           "assignor_name": d.assignor_name, "members": members,
                           "authorized_operations": _ALL_OPS})
        return {"throttle_time_ms": 0, "groups": groups}
