"""KIP-848's heartbeat state machine over raw wire requests: epochs, revocation before
assignment, fencing, leave, static members, timeouts (a manual clock, no sleeps), regex
subscriptions, offsets checked against member epochs, and the classic/consumer boundary."""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

import pytest

import logmq
from logmq.clock import ManualClock
from logmq.kafka_codes import ErrorCode as E

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wire_util import RawClient, ThreadServer  # noqa: E402

HB, DESCRIBE = 68, 69
TOPIC = "orders"


@pytest.fixture
def env(tmp_path: Any) -> Any:
    clock = ManualClock()
    log = logmq.open(str(tmp_path / "d"), clock=clock, group_consumer_session_timeout_ms=10_000,
                     group_consumer_heartbeat_interval_ms=250)
    log.create_topic(TOPIC, partitions=4)
    srv = ThreadServer(log)
    c = RawClient(srv.host, srv.port)
    yield log, clock, c
    c.close()
    srv.close()
    log.close()


def tid(log: Any, topic: str) -> bytes:
    return uuid.UUID(hex=log.topic_id(topic)).bytes


def wire_tps(log: Any, tps: set[tuple[str, int]]) -> list[dict]:
    per: dict[str, list[int]] = {}
    for t, p in sorted(tps):
        per.setdefault(t, []).append(p)
    return [{"topic_id": tid(log, t), "partitions": ps} for t, ps in per.items()]


def tps_of(log: Any, resp: dict) -> set[tuple[str, int]] | None:
    if resp["assignment"] is None:
        return None
    names = {tid(log, t): t for t in log.list_topics()}
    return {(names[x["topic_id"]], p) for x in resp["assignment"]["topic_partitions"]
            for p in x["partitions"]}


def hb(c: RawClient, member: str, epoch: int, *, log: Any = None,
       owned: set[tuple[str, int]] | None = None, topics: list[str] | None = None,
       group: str = "g", v: int = 1, **kw: Any) -> dict:
    body = {"group_id": group, "member_id": member, "member_epoch": epoch,
            "instance_id": kw.get("instance_id"), "rack_id": None,
            "rebalance_timeout_ms": kw.get("rebalance_timeout_ms", 30_000 if epoch == 0 else -1),
            "subscribed_topic_names": topics if topics is not None else (
                [TOPIC] if epoch == 0 and "regex" not in kw else None),
            "subscribed_topic_regex": kw.get("regex"), "server_assignor": kw.get("assignor"),
            "topic_partitions": (wire_tps(log, owned) if owned is not None
                                 else ([] if epoch == 0 else None))}
    return c.call(HB, v, body)


def describe(c: RawClient, *groups: str) -> list[dict]:
    return c.call(DESCRIBE, 1, {"group_ids": list(groups),
                                "include_authorized_operations": False})["groups"]


ALL = {(TOPIC, p) for p in range(4)}


def test_first_member_gets_every_partition_at_epoch_one(env: Any) -> None:
    log, _, c = env
    r = hb(c, "a", 0)
    assert r["error_code"] == E.NONE and r["member_id"] == "a"
    assert r["member_epoch"] == 2 and r["heartbeat_interval_ms"] == 250
    assert tps_of(log, r) == ALL
    # an unchanged heartbeat carries no assignment (the client keeps what it has)
    r = hb(c, "a", 2)
    assert r["member_epoch"] == 2 and r["assignment"] is None
    d = describe(c, "g")[0]
    assert (d["error_code"], d["group_state"], d["group_epoch"], d["assignment_epoch"],
            d["assignor_name"]) == (E.NONE, "Stable", 2, 2, "uniform")
    m = d["members"][0]
    assert m["member_id"] == "a" and m["member_epoch"] == 2 and m["member_type"] == 1
    assert m["subscribed_topic_names"] == [TOPIC]
    parts = m["assignment"]["topic_partitions"]
    assert [(x["topic_name"], x["topic_id"], x["partitions"]) for x in parts] == \
        [(TOPIC, tid(log, TOPIC), [0, 1, 2, 3])]


def test_v0_server_names_the_member_and_v1_requires_a_name(env: Any) -> None:
    _, _, c = env
    r = hb(c, "", 0, v=0)
    assert r["error_code"] == E.NONE and r["member_id"] and r["member_epoch"] == 2
    r = hb(c, "", 0, v=1)
    assert r["error_code"] == E.INVALID_REQUEST and r["member_id"] is None


def test_partitions_move_only_after_their_owner_revoked_them(env: Any) -> None:
    log, _, c = env
    a = hb(c, "a", 0)
    assert tps_of(log, a) == ALL
    b = hb(c, "b", 0)
    # b is at the new epoch but gets nothing yet: a still owns every partition
    assert b["member_epoch"] == 3 and tps_of(log, b) == set()
    a = hb(c, "a", 2, log=log, owned=ALL)
    keep = tps_of(log, a)
    assert a["member_epoch"] == 2 and keep is not None and len(keep) == 2  # revoke first
    assert describe(c, "g")[0]["group_state"] == "Reconciling"
    b = hb(c, "b", 3, log=log, owned=set())
    assert b["member_epoch"] == 3 and tps_of(log, b) == set()  # still held by a
    a = hb(c, "a", 2, log=log, owned=keep)  # revocation done
    assert a["member_epoch"] == 3 and tps_of(log, a) in (None, keep)
    b = hb(c, "b", 3, log=log, owned=set())
    got = tps_of(log, b)
    assert got == ALL - keep
    d = describe(c, "g")[0]
    assert d["group_state"] == "Stable" and d["group_epoch"] == 3
    held = [set(p for x in m["assignment"]["topic_partitions"] for p in x["partitions"])
            for m in d["members"]]
    assert held[0].isdisjoint(held[1]) and held[0] | held[1] == {0, 1, 2, 3}


def test_wrong_epochs_are_fenced_and_unknown_members_rejected(env: Any) -> None:
    log, _, c = env
    hb(c, "a", 0)
    assert hb(c, "a", 8)["error_code"] == E.FENCED_MEMBER_EPOCH
    assert hb(c, "zz", 2)["error_code"] == E.UNKNOWN_MEMBER_ID
    assert hb(c, "a", 2, group="nope")["error_code"] == E.GROUP_ID_NOT_FOUND
    hb(c, "b", 0)
    a = hb(c, "a", 2, log=log, owned=ALL)
    hb(c, "a", 2, log=log, owned=tps_of(log, a))  # a moves to epoch 3
    # a lost our last answer: its previous epoch with a subset of its partitions is accepted
    r = hb(c, "a", 2, log=log, owned=tps_of(log, a) or set())
    assert r["error_code"] == E.NONE and r["member_epoch"] == 3
    # ... but not while claiming partitions it does not have
    assert hb(c, "a", 2, log=log, owned=ALL)["error_code"] == E.FENCED_MEMBER_EPOCH


def test_invalid_heartbeats(env: Any) -> None:
    _, _, c = env
    assert hb(c, "a", 0, topics=None, regex=None)["error_code"] == E.INVALID_REQUEST
    assert hb(c, "a", 0, assignor="sticky")["error_code"] == E.UNSUPPORTED_ASSIGNOR
    assert hb(c, "a", 0, regex="(unclosed")["error_code"] == 128  # INVALID_REGULAR_EXPRESSION
    assert hb(c, "a", -3)["error_code"] == E.INVALID_REQUEST
    assert hb(c, "a", -2)["error_code"] == E.INVALID_REQUEST  # static leave needs instance id
    assert hb(c, "a", 0, group="")["error_code"] == E.INVALID_REQUEST


def test_leave_hands_everything_to_the_survivor(env: Any) -> None:
    log, _, c = env
    hb(c, "a", 0)
    hb(c, "b", 0)
    a = hb(c, "a", 2, log=log, owned=ALL)
    a = hb(c, "a", 2, log=log, owned=tps_of(log, a))
    b = hb(c, "b", 3, log=log, owned=set())
    assert len(tps_of(log, b) or ()) == 2
    r = hb(c, "a", -1)
    assert r["error_code"] == E.NONE and r["member_epoch"] == -1
    b = hb(c, "b", 3, log=log, owned=tps_of(log, b))
    assert b["member_epoch"] == 4 and tps_of(log, b) == ALL
    assert hb(c, "a", 3)["error_code"] == E.UNKNOWN_MEMBER_ID


def test_session_timeout_removes_a_silent_member(env: Any) -> None:
    log, clock, c = env
    hb(c, "a", 0)
    b = hb(c, "b", 0)
    clock.advance(6)
    a = hb(c, "a", 2, log=log, owned=ALL)  # a revokes half
    hb(c, "a", 2, log=log, owned=tps_of(log, a))
    clock.advance(5)  # b silent for 11 s > 10 s
    a = hb(c, "a", 3, log=log, owned=tps_of(log, a))
    assert a["member_epoch"] == 4 and tps_of(log, a) == ALL
    assert [m["member_id"] for m in describe(c, "g")[0]["members"]] == ["a"]
    assert b["member_epoch"] == 3


def test_rebalance_timeout_fences_a_member_that_never_revokes(env: Any) -> None:
    log, clock, c = env
    hb(c, "a", 0, rebalance_timeout_ms=2_000)
    hb(c, "b", 0)
    a = hb(c, "a", 2, log=log, owned=ALL)
    assert len(tps_of(log, a) or ()) == 2  # asked to revoke, keeps heartbeating, never does
    for _ in range(3):
        clock.advance(1)
        hb(c, "b", 3, log=log, owned=set())
        a = hb(c, "a", 2, log=log, owned=ALL)
    assert a["error_code"] == E.UNKNOWN_MEMBER_ID
    b = hb(c, "b", 3, log=log, owned=set())
    assert tps_of(log, b) == ALL


def test_static_member_restarts_without_a_rebalance(env: Any) -> None:
    log, _, c = env
    a = hb(c, "a1", 0, instance_id="host-a")
    hb(c, "b", 0)
    a = hb(c, "a1", 2, log=log, owned=ALL, instance_id="host-a")
    a = hb(c, "a1", 2, log=log, owned=tps_of(log, a), instance_id="host-a")
    mine = tps_of(log, hb(c, "a1", 3, log=log, owned=set(), instance_id="host-a"))
    hb(c, "b", 3, log=log, owned=set())
    epoch = describe(c, "g")[0]["group_epoch"]
    assert hb(c, "a2", 0, instance_id="host-a")["error_code"] == E.UNRELEASED_INSTANCE_ID
    r = hb(c, "a1", -2, instance_id="host-a")
    assert r["error_code"] == E.NONE and r["member_epoch"] == -2
    r = hb(c, "a2", 0, instance_id="host-a")  # the restarted process, a new member id
    assert r["error_code"] == E.NONE and r["member_epoch"] == 3
    assert tps_of(log, r) == mine and mine
    # the replaced process is a zombie now: fenced, it cannot act for its successor
    assert hb(c, "a1", 3, instance_id="host-a")["error_code"] == E.FENCED_INSTANCE_ID
    d = describe(c, "g")[0]
    assert d["group_epoch"] == epoch
    assert {m["member_id"]: m["instance_id"] for m in d["members"]} == {"a2": "host-a",
                                                                        "b": None}


def test_regex_subscription_picks_up_a_topic_created_later(env: Any) -> None:
    log, _, c = env
    log.create_topic("ev-1", partitions=1)
    r = hb(c, "a", 0, regex="ev-.*", topics=None)
    assert tps_of(log, r) == {("ev-1", 0)}
    log.create_topic("ev-2", partitions=2)
    log.create_topic("other", partitions=1)
    r = hb(c, "a", 2, log=log, owned={("ev-1", 0)})
    assert r["member_epoch"] == 3
    assert tps_of(log, r) == {("ev-1", 0), ("ev-2", 0), ("ev-2", 1)}
    assert describe(c, "g")[0]["members"][0]["subscribed_topic_regex"] == "ev-.*"
    log.create_partitions("ev-1", 2)
    r = hb(c, "a", 3)
    assert r["member_epoch"] == 4 and ("ev-1", 1) in (tps_of(log, r) or ())


def test_range_assignor_by_the_clients_choice(env: Any) -> None:
    log, _, c = env
    log.create_topic("other", partitions=4)
    hb(c, "a", 0, topics=[TOPIC, "other"], assignor="range")
    b = hb(c, "b", 0, topics=[TOPIC, "other"], assignor="range")
    d = describe(c, "g")[0]
    assert d["assignor_name"] == "range"
    target = {m["member_id"]: {(x["topic_name"], p)
                               for x in m["target_assignment"]["topic_partitions"]
                               for p in x["partitions"]} for m in d["members"]}
    # co-partitioned: a member gets the same partition numbers of both topics
    assert target["a"] == {(t, p) for t in (TOPIC, "other") for p in (0, 1)}
    assert target["b"] == {(t, p) for t in (TOPIC, "other") for p in (2, 3)}
    assert b["member_epoch"] == 3


def test_offset_commit_checks_member_and_epoch(env: Any) -> None:
    log, _, c = env
    hb(c, "a", 0)

    def commit(member: str, epoch: int, offset: int = 5) -> int:
        r = c.call(8, 7, {"group_id": "g", "generation_id_or_member_epoch": epoch,
                          "member_id": member, "group_instance_id": None,
                          "topics": [{"name": TOPIC, "partitions": [
                              {"partition_index": 0, "committed_offset": offset,
                               "committed_leader_epoch": -1, "committed_metadata": ""}]}]})
        return int(r["topics"][0]["partitions"][0]["error_code"])

    assert commit("a", 2) == E.NONE
    assert commit("a", 1) == E.STALE_MEMBER_EPOCH
    assert commit("a", 3) == E.FENCED_MEMBER_EPOCH
    assert commit("x", 2) == E.UNKNOWN_MEMBER_ID
    assert commit("", -1) == E.UNKNOWN_MEMBER_ID  # admin commits only into an empty group
    r = c.call(9, 5, {"group_id": "g", "topics": [{"name": TOPIC, "partition_indexes": [0]}],
                      "require_stable": False})
    assert r["topics"][0]["partitions"][0]["committed_offset"] == 5
    hb(c, "a", -1)
    assert commit("", -1, 9) == E.NONE
    assert log.groups.fetch_offsets("g", [(TOPIC, 0)])[(TOPIC, 0)][0] == 9


def test_classic_and_consumer_groups_share_ids_only_when_empty(env: Any) -> None:
    log, _, c = env
    hb(c, "a", 0)
    join = {"group_id": "g", "session_timeout_ms": 10_000, "rebalance_timeout_ms": 10_000,
            "member_id": "", "group_instance_id": None, "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b""}]}
    assert c.call(11, 5, join)["error_code"] == E.INCONSISTENT_GROUP_PROTOCOL
    lg = c.call(16, 2, {})["groups"]
    assert {"group_id": "g", "protocol_type": "consumer"} in lg
    assert log.groups.list_groups() == [("g", "consumer", "Stable")]
    dg = c.call(15, 4, {"groups": ["g"], "include_authorized_operations": False})["groups"][0]
    # Kafka 4.4's DescribeGroups describes classic groups only (what the oracle shows)
    assert (dg["error_code"], dg["group_state"], dg["protocol_type"], dg["members"]) == \
        (E.NONE, "Dead", "", [])
    hb(c, "a", -1)
    # empty now: a classic member takes the id; then consumer members cannot join it
    r = c.call(11, 5, join)
    assert r["error_code"] == E.MEMBER_ID_REQUIRED
    r = c.call(11, 5, {**join, "member_id": r["member_id"]})
    assert r["error_code"] == E.NONE
    assert hb(c, "b", 0)["error_code"] == E.GROUP_ID_NOT_FOUND
    d = describe(c, "g")[0]
    assert d["error_code"] == E.GROUP_ID_NOT_FOUND
    assert describe(c, "missing")[0]["error_code"] == E.GROUP_ID_NOT_FOUND


def test_delete_group_only_when_empty(env: Any) -> None:
    log, _, c = env
    hb(c, "a", 0)
    r = c.call(42, 2, {"groups_names": ["g"]})["results"][0]
    assert r["error_code"] == E.NON_EMPTY_GROUP
    hb(c, "a", -1)
    r = c.call(42, 2, {"groups_names": ["g"]})["results"][0]
    assert r["error_code"] == E.NONE
    assert describe(c, "g")[0]["error_code"] == E.GROUP_ID_NOT_FOUND


def test_group_size_limit_and_group_types(tmp_path: Any) -> None:
    log = logmq.open(str(tmp_path / "d"))
    log.create_topic(TOPIC, partitions=2)
    srv = ThreadServer(log, max_group_members=2)
    c = RawClient(srv.host, srv.port)
    try:
        assert hb(c, "a", 0)["error_code"] == E.NONE
        assert hb(c, "b", 0)["error_code"] == E.NONE
        assert hb(c, "c", 0)["error_code"] == E.GROUP_MAX_SIZE_REACHED
        assert hb(c, "a", 0)["error_code"] == E.NONE  # a known member may rejoin
        log.groups.commit_offsets("cl", -1, "", {(TOPIC, 0): (3, None)})
        types = log.groups.group_types()
        assert types["g"] == "consumer" and "cl" not in types  # offsets alone: no group
    finally:
        c.close()
        srv.close()
        log.close()


def test_offset_fetch_member_check(env: Any) -> None:
    """What OffsetFetch v9+ (member id + epoch) is checked against."""
    log, _, c = env
    hb(c, "a", 0)
    cg = log.groups.consumer_groups
    cg.validate_offset_fetch("g", "a", 2)
    cg.validate_offset_fetch("g", None, -1)  # an admin fetch
    with pytest.raises(logmq.errors.StaleMemberEpochError):
        cg.validate_offset_fetch("g", "a", 1)
    with pytest.raises(logmq.errors.UnknownMemberError):
        cg.validate_offset_fetch("g", "zz", 2)

    def fetch(member: str | None, epoch: int) -> int:  # and the same over the wire (v9)
        r = c.call(9, 9, {"groups": [{"group_id": "g", "member_id": member,
                                      "member_epoch": epoch, "topics": None}],
                          "require_stable": False})
        return int(r["groups"][0]["error_code"])

    assert fetch("a", 2) == E.NONE and fetch(None, -1) == E.NONE
    assert fetch("a", 1) == E.STALE_MEMBER_EPOCH
    assert fetch("zz", 2) == E.UNKNOWN_MEMBER_ID


def test_a_static_member_that_never_returns_loses_its_partitions(env: Any) -> None:
    log, clock, c = env
    hb(c, "a1", 0, instance_id="host-a")
    b = hb(c, "b", 0)
    a = hb(c, "a1", 2, log=log, owned=ALL, instance_id="host-a")
    hb(c, "a1", 2, log=log, owned=tps_of(log, a), instance_id="host-a")
    b = hb(c, "b", 3, log=log, owned=set())
    held = tps_of(log, b) or set()
    assert len(held) == 2
    assert hb(c, "a1", -2, instance_id="host-a")["member_epoch"] == -2
    clock.advance(6)
    b = hb(c, "b", 3, log=log, owned=held)
    assert b["member_epoch"] == 3 and tps_of(log, b) == held  # its place is kept meanwhile
    clock.advance(5)  # the departed member's session (10 s) is over
    b = hb(c, "b", 3, log=log, owned=held)
    assert b["member_epoch"] == 4 and tps_of(log, b) == ALL
    assert hb(c, "a2", 0, instance_id="host-a")["member_epoch"] == 5  # a plain new member
