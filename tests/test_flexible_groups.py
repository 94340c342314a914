"""Issue 18.1: the classic group protocol at Kafka 4.4's versions, with raw wire calls.

JoinGroup v9, SyncGroup v5 (protocol type and name echoed, which the Java client checks),
Heartbeat v4, LeaveGroup v5 (reasons), DescribeGroups v6 (GROUP_ID_NOT_FOUND), ListGroups v5
(state and type filters), FindCoordinator v6 (batched keys), OffsetFetch v8 (several groups).
"""

from __future__ import annotations

import flexible_util as fx

from logmq.kafka_codes import ErrorCode as E
from logmq.protocol.consumer_protocol import encode_subscription

broker, server, c = fx.broker, fx.server, fx.c  # the fixtures


def _join(c: fx.RawClient, member_id: str = "") -> dict:
    return c.call(11, 9, {"group_id": "g", "session_timeout_ms": 10_000,
                          "rebalance_timeout_ms": 10_000, "member_id": member_id,
                          "group_instance_id": None, "protocol_type": "consumer",
                          "protocols": [{"name": "range",
                                         "metadata": encode_subscription(["t"])}],
                          "reason": "testing"})


def _member(c: fx.RawClient) -> dict:
    first = _join(c)
    assert first["error_code"] == E.MEMBER_ID_REQUIRED and first["member_id"]
    joined = _join(c, first["member_id"])
    assert joined["error_code"] == 0, joined
    return joined


def test_join_sync_heartbeat_leave_at_the_newest_versions(c, broker):
    broker.create_topic("t", partitions=1)
    j = _member(c)
    assert j["protocol_type"] == "consumer" and j["protocol_name"] == "range"  # v7+
    assert j["skip_assignment"] is False and j["leader"] == j["member_id"]
    mid, gen = j["member_id"], j["generation_id"]
    s = c.call(14, 5, {"group_id": "g", "generation_id": gen, "member_id": mid,
                       "group_instance_id": None, "protocol_type": "consumer",
                       "protocol_name": "range",
                       "assignments": [{"member_id": mid, "assignment": b"\x00\x01"}]})
    assert s["error_code"] == 0 and s["assignment"] == b"\x00\x01"
    assert (s["protocol_type"], s["protocol_name"]) == ("consumer", "range")
    hb = c.call(12, 4, {"group_id": "g", "generation_id": gen, "member_id": mid,
                        "group_instance_id": None})
    assert hb["error_code"] == 0
    d = c.call(15, 6, {"groups": ["g"], "include_authorized_operations": False})["groups"][0]
    assert (d["error_code"], d["group_state"], d["protocol_data"]) == (0, "Stable", "range")
    assert d["error_message"] is None
    lv = c.call(13, 5, {"group_id": "g", "members": [
        {"member_id": mid, "group_instance_id": None, "reason": "done"}]})
    assert lv["error_code"] == 0 and lv["members"][0]["error_code"] == 0
    d = c.call(15, 6, {"groups": ["g"], "include_authorized_operations": False})["groups"][0]
    assert d["group_state"] == "Empty"


def test_describe_groups_v6_names_an_unknown_group(c):
    new, old = (c.call(15, v, {"groups": ["nope"], "include_authorized_operations": False})
                ["groups"][0] for v in (6, 5))
    assert new["error_code"] == E.GROUP_ID_NOT_FOUND
    assert new["error_message"] == "Group nope not found."
    assert (old["error_code"], old["group_state"]) == (0, "Dead")  # before KIP-1043


def test_list_groups_v5_filters_by_state_and_type(c, broker):
    broker.create_topic("t", partitions=1)
    _member(c)  # "g" is PreparingRebalance/Stable-ish: a live classic group
    broker.groups.commit_offsets("idle", -1, "", {("t", 0): (1, None)})

    def names(**filters: list[str]) -> list[str]:
        body = {"states_filter": [], "types_filter": [], **filters}
        return sorted(g["group_id"] for g in c.call(16, 5, body)["groups"])

    assert names() == ["g", "idle"]
    assert names(states_filter=["empty"]) == ["idle"]  # case-insensitive, as in Kafka
    assert names(types_filter=["Classic"]) == ["g", "idle"]
    assert names(types_filter=["consumer"]) == []
    every = {g["group_id"]: g for g in c.call(16, 5, {"states_filter": [],
                                                      "types_filter": []})["groups"]}
    assert every["idle"]["group_state"] == "Empty" and every["idle"]["group_type"] == "classic"


def test_find_coordinator_v4_plus_answers_each_key(c, server):
    for v in (4, 5, 6):
        r = c.call(10, v, {"key_type": 0, "coordinator_keys": ["a", "b"]})
        assert [(x["key"], x["node_id"], x["port"], x["error_code"])
                for x in r["coordinators"]] == [("a", 0, server.port, 0),
                                                ("b", 0, server.port, 0)]
    old = c.call(10, 3, {"key": "a", "key_type": 0})
    assert (old["error_code"], old["node_id"], old["port"]) == (0, 0, server.port)


def test_offset_fetch_v8_asks_several_groups_at_once(c, broker):
    broker.create_topic("t", partitions=2)
    broker.groups.commit_offsets("g1", -1, "", {("t", 0): (5, "a")})
    broker.groups.commit_offsets("g2", -1, "", {("t", 1): (9, None)})
    r = c.call(9, 8, {"groups": [
        {"group_id": "g1", "topics": [{"name": "t", "partition_indexes": [0, 1]}]},
        {"group_id": "g2", "topics": None},
        {"group_id": "bad\x00id", "topics": None}], "require_stable": False})
    g1, g2, bad = r["groups"]
    assert [(p["partition_index"], p["committed_offset"], p["metadata"])
            for p in g1["topics"][0]["partitions"]] == [(0, 5, "a"), (1, -1, "")]
    assert g2["error_code"] == 0
    assert [(t["name"], [(p["partition_index"], p["committed_offset"])
                         for p in t["partitions"]]) for t in g2["topics"]] == [("t", [(1, 9)])]
    assert bad["error_code"] == E.INVALID_GROUP_ID


def test_delete_groups_v3_and_describe_log_dirs_v5(c, broker):
    broker.create_topic("t", partitions=1)
    broker.groups.commit_offsets("g", -1, "", {("t", 0): (1, None)})
    r = c.call(42, 3, {"groups_names": ["g", "nope"]})["results"]
    assert [(x["group_id"], x["error_code"]) for x in r] == [("g", 0),
                                                             ("nope", E.GROUP_ID_NOT_FOUND)]
    d = c.call(35, 5, {"topics": None})["results"][0]
    assert d["error_code"] == 0 and d["is_cordoned"] is False
    assert [t["name"] for t in d["topics"]] == ["t"]
