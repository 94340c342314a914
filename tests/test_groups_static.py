"""Static membership (KIP-345) as Kafka 4.4 does it: the coordinator with a fake clock, and
embedded consumers (no sleeps; the embedded tests poll with bounded deadlines)."""

from __future__ import annotations

import time

import pytest

from logmq.broker.groups import GroupCoordinator, MemoryOffsetStore
from logmq.broker.groups.states import COMPLETING, PREPARING, STABLE
from logmq.errors import (
    FencedInstanceIdError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberError,
)
from logmq.types import TopicPartition

G = "g"
SESSION, REBALANCE = 10_000, 5_000  # a join phase ends before a session does


class Clock:
    t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def coord(clock):
    c = GroupCoordinator(MemoryOffsetStore(), time_fn=clock)
    yield c
    c.close()


def join(c, mid="", inst=None, meta=b"m", protos=None):
    return c.join_group(G, mid, "consumer", protos or [("range", meta)], SESSION, REBALANCE,
                        client_id="cli", require_known_member_id=True, group_instance_id=inst)


def stable_pair(c):
    """Static members a (leader) and b in one Stable generation; returns (a_id, b_id, gen)."""
    ra = join(c, inst="a").result(timeout=0)
    assert ra.error is None  # static members get no MEMBER_ID_REQUIRED round trip
    c.sync_group(G, ra.generation_id, ra.member_id, {ra.member_id: b"A"}, "a").result(0)
    fb = join(c, inst="b")
    assert not fb.done()  # b's join started a rebalance; a must rejoin
    ra = join(c, ra.member_id, "a").result(timeout=0)
    rb = fb.result(timeout=0)
    assert ra.generation_id == rb.generation_id and ra.leader_id == ra.member_id
    fsb = c.sync_group(G, rb.generation_id, rb.member_id, None, "b")
    c.sync_group(G, ra.generation_id, ra.member_id,
                 {ra.member_id: b"A", rb.member_id: b"B"}, "a").result(0)
    assert fsb.result(0) == b"B"
    return ra.member_id, rb.member_id, ra.generation_id


def test_restart_replaces_the_member_without_a_rebalance(coord):
    a, b, gen = stable_pair(coord)
    res = join(coord, inst="a").result(timeout=0)  # a new process, same instance id
    assert res.error is None and res.member_id != a and res.member_id.startswith("a-")
    assert res.generation_id == gen and res.members == []
    assert res.leader_id == a  # as Kafka answers JoinGroup < v9: the old leader id
    assert coord.describe_group(G).state == STABLE
    coord.heartbeat(G, gen, b, "b")  # b is not asked to rebalance
    assert coord.sync_group(G, gen, res.member_id, None, "a").result(0) == b"A"
    desc = coord.describe_group(G)
    assert {(m.member_id, m.group_instance_id) for m in desc.members} == {
        (res.member_id, "a"), (b, "b")}


def test_the_replaced_member_id_is_fenced(coord):
    a, b, gen = stable_pair(coord)
    new = join(coord, inst="a").result(timeout=0).member_id
    with pytest.raises(FencedInstanceIdError):
        coord.heartbeat(G, gen, a, "a")
    with pytest.raises(FencedInstanceIdError):
        coord.sync_group(G, gen, a, None, "a").result(0)
    with pytest.raises(FencedInstanceIdError):
        coord.commit_offsets(G, gen, a, {("t", 0): (5, None)}, "a")
    assert isinstance(join(coord, a, "a").result(0).error, FencedInstanceIdError)
    with pytest.raises(UnknownMemberError):  # the old id alone is simply gone
        coord.heartbeat(G, gen, a)
    with pytest.raises(UnknownMemberError):
        coord.heartbeat(G, gen, new, "zzz")
    coord.commit_offsets(G, gen, new, {("t", 0): (5, None)}, "a")
    assert coord.fetch_offsets(G, None)[("t", 0)][0] == 5


def test_a_duplicate_waiting_in_a_rebalance_is_fenced(coord):
    a, b, gen = stable_pair(coord)
    fc = join(coord, inst="c")  # a third member: a rebalance
    parked = join(coord, a, "a")  # a rejoins and waits for b
    assert not parked.done() and coord.describe_group(G).state == PREPARING
    dup = join(coord, inst="a")  # a second process with instance id a
    assert isinstance(parked.result(0).error, FencedInstanceIdError)
    assert not dup.done()
    rb = join(coord, b, "b").result(0)  # the last one in completes the join phase
    res = dup.result(0)
    assert res.error is None and fc.result(0).error is None
    assert res.generation_id == rb.generation_id == gen + 1


def test_restart_during_completing_rebalance_starts_another(coord, clock):
    ra = join(coord, inst="a").result(timeout=0)
    assert coord.describe_group(G).state == COMPLETING
    res = join(coord, inst="a")  # restarted before the leader's SyncGroup
    got = res.result(0)
    assert got.error is None and got.member_id != ra.member_id
    assert got.generation_id == ra.generation_id + 1 and got.leader_id == got.member_id


def test_restart_that_changes_the_selected_protocol_rebalances(coord):
    both = [("range", b"m"), ("roundrobin", b"m")]
    ra = join(coord, inst="a", protos=both).result(0)
    coord.sync_group(G, ra.generation_id, ra.member_id, {ra.member_id: b"A"}, "a").result(0)
    assert coord.describe_group(G).protocol == "range"
    same = join(coord, inst="a", protos=[("range", b"new"), ("roundrobin", b"new")])
    assert same.result(0).generation_id == ra.generation_id  # still range: no rebalance
    changed = join(coord, inst="a", protos=list(reversed(both))).result(0)
    assert changed.error is None and changed.generation_id == ra.generation_id + 1
    assert changed.protocol_name == "roundrobin" and changed.leader_id == changed.member_id


def test_leave_by_instance_id(coord):
    a, b, gen = stable_pair(coord)
    errs = coord.leave_members(G, [("", "b"), ("someone-else", "a"), ("", "nobody")])
    assert errs[0] is None
    assert isinstance(errs[1], FencedInstanceIdError)
    assert isinstance(errs[2], UnknownMemberError)
    assert {m.group_instance_id for m in coord.describe_group(G).members} == {"a"}
    with pytest.raises(RebalanceInProgressError):
        coord.heartbeat(G, gen, a, "a")
    # the instance id is free again: b joins as a new static member
    assert join(coord, inst="b").done() is False


def test_a_static_member_that_does_not_rejoin_stays_until_its_session_ends(coord, clock):
    a, b, gen = stable_pair(coord)
    join(coord, inst="c")  # a third member: a rebalance
    fa = join(coord, a, "a")
    clock.t += REBALANCE / 1000  # b never rejoins (its process is restarting)
    coord.advance()
    ra = fa.result(0)
    assert ra.error is None and ra.generation_id == gen + 1
    # Kafka removes only dynamic laggards at the end of the join phase: b is still there,
    # and the leader is asked to assign it too
    assert {m[1] for m in ra.members} == {"a", "b", "c"}
    # it is removed when its session times out
    clock.t += SESSION / 1000
    coord.advance()
    assert "b" not in {m.group_instance_id for m in coord.describe_group(G).members}
    with pytest.raises(UnknownMemberError):
        coord.heartbeat(G, gen, b, "b")


def test_only_static_laggards_left_waits_for_a_joiner(coord, clock):
    a, b, gen = stable_pair(coord)
    coord.leave_members(G, [(a, "a")])
    assert coord.describe_group(G).state == PREPARING
    clock.t += REBALANCE / 1000
    coord.advance()  # nobody rejoined: keep waiting (b's session will end it)
    assert coord.describe_group(G).state == PREPARING
    rb = join(coord, b, "b").result(0)
    assert rb.error is None and rb.leader_id == b
    with pytest.raises(IllegalGenerationError):
        coord.heartbeat(G, gen, b, "b")


def test_commit_after_leaving_is_refused_as_kafka_refuses_it(coord):
    """librdkafka 0118's server side: a member that left commits with its old id and
    generation; Kafka answers UNKNOWN_MEMBER_ID (and ILLEGAL_GENERATION for a stale
    generation of a member still in the group)."""
    a, b, gen = stable_pair(coord)
    coord.leave_members(G, [(b, None)])  # b leaves by member id (LeaveGroup v0-2 style)
    with pytest.raises(UnknownMemberError):
        coord.commit_offsets(G, gen, b, {("t", 0): (1, None)}, "b")
    with pytest.raises(UnknownMemberError):
        coord.commit_offsets(G, gen, b, {("t", 0): (1, None)})
    ra = join(coord, a, "a").result(0)  # the rebalance moves a to the next generation
    with pytest.raises(IllegalGenerationError):
        coord.commit_offsets(G, gen, a, {("t", 0): (1, None)}, "a")
    assert ra.generation_id == gen + 1 and coord.fetch_offsets(G, None) == {}


# ---------------------------------------------------------------- embedded consumers
FAST = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 50, "rebalance_timeout_ms": 1000,
        "enable_auto_commit": False, "auto_offset_reset": "earliest"}


def poll_until(consumers, cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in consumers:
            c.poll(0.02)
        if cond():
            return
    raise AssertionError("condition not reached in time")


def test_embedded_static_restart_keeps_partitions_and_others_see_nothing(log):
    log.create_topic("t", partitions=4)
    events: list[tuple[str, list[TopicPartition]]] = []
    a = log.consumer("t", group="sg", group_instance_id="a", **FAST)
    b = log.consumer(group="sg", group_instance_id="b", **FAST)
    b.subscribe(["t"], on_assign=lambda tps: events.append(("assign", tps)),
                on_revoke=lambda tps: events.append(("revoke", tps)))
    poll_until([a, b], lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2)
    mine, seen = a.assignment(), len(events)
    a.close()
    a2 = log.consumer("t", group="sg", group_instance_id="a", **FAST)
    poll_until([a2, b], lambda: a2.assignment() == mine)
    for _ in range(10):
        b.poll(0.02)
    assert events[seen:] == []
    # a duplicate fences a2: its next heartbeat raises
    a3 = log.consumer("t", group="sg", group_instance_id="a", **FAST)
    poll_until([a3, b], lambda: a3.assignment() == mine)
    with pytest.raises(FencedInstanceIdError):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            a2.poll(0.02)
    assert events[seen:] == []
    for c in (a3, b):
        c.close()
