"""Partition assignors: Kafka's documented examples and hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logmq.broker.groups import assignors
from logmq.errors import ConfigError

TOPICS = ["a", "b", "c", "d"]
NAMES = ["range", "roundrobin", "sticky"]

partitions_st = st.dictionaries(st.sampled_from(TOPICS), st.integers(0, 12), min_size=1)
member_ids_st = st.lists(st.text("xyz0123", min_size=1, max_size=4), min_size=1, max_size=8,
                         unique=True)


@st.composite
def groups_st(draw, identical: bool = False):
    parts = draw(partitions_st)
    ids = draw(member_ids_st)
    topic_pool = TOPICS + ["missing"]
    if identical:
        subs = draw(st.lists(st.sampled_from(topic_pool), min_size=1, unique=True))
        members = {m: list(subs) for m in ids}
    else:
        members = {m: draw(st.lists(st.sampled_from(topic_pool), unique=True)) for m in ids}
    return members, parts


@st.composite
def garbage_current_st(draw, members, parts):
    """Whatever members claim to own: stale, duplicated, unsubscribed or nonexistent."""
    tp = st.tuples(st.sampled_from(TOPICS + ["missing"]), st.integers(-1, 14))
    return {m: draw(st.lists(tp, max_size=10)) for m in members
            if draw(st.booleans())}


def expected_partitions(members, parts):
    topics = {t for ts in members.values() for t in ts if t in parts}
    return {(t, p) for t in topics for p in range(parts[t])}


def check_valid(plan, members, parts):
    assert set(plan) == set(members)
    flat = [tp for tps in plan.values() for tp in tps]
    assert len(flat) == len(set(flat)), "a partition was assigned twice"
    assert set(flat) == expected_partitions(members, parts)
    for m, tps in plan.items():
        assert all(t in members[m] for t, _ in tps), "assigned to a non-subscriber"


# ---------------------------------------------------------------------------- examples
def test_range_matches_kafka_example():
    # Kafka RangeAssignor javadoc: C0, C1 subscribe t0, t1 (3 partitions each).
    plan = assignors.assign("range", {"C0": ["t0", "t1"], "C1": ["t0", "t1"]},
                            {"t0": 3, "t1": 3})
    assert plan == {"C0": [("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)],
                    "C1": [("t0", 2), ("t1", 2)]}


def test_roundrobin_matches_kafka_examples():
    plan = assignors.assign("roundrobin", {"C0": ["t0", "t1"], "C1": ["t0", "t1"]},
                            {"t0": 3, "t1": 3})
    assert plan == {"C0": [("t0", 0), ("t0", 2), ("t1", 1)],
                    "C1": [("t0", 1), ("t1", 0), ("t1", 2)]}
    # Unequal subscriptions (RoundRobinAssignor javadoc).
    plan = assignors.assign("roundrobin",
                            {"C0": ["t0"], "C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]},
                            {"t0": 1, "t1": 2, "t2": 3})
    assert plan == {"C0": [("t0", 0)], "C1": [("t1", 0)],
                    "C2": [("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)]}


def test_unknown_assignor_and_edge_cases():
    with pytest.raises(ConfigError):
        assignors.assign("cooperative-sticky", {"m": ["t"]}, {"t": 1})
    for name in NAMES:
        assert assignors.assign(name, {}, {"t": 3}) == {}
        assert assignors.assign(name, {"m": ["gone"]}, {"t": 3}) == {"m": []}
        assert assignors.assign(name, {"m": [], "n": ["t"]}, {"t": 2}) == {
            "m": [], "n": [("t", 0), ("t", 1)]}


# ---------------------------------------------------------------------------- properties
@settings(max_examples=200, deadline=None)
@given(st.sampled_from(NAMES), groups_st(), st.data())
def test_every_partition_exactly_once_to_a_subscriber(name, group, data):
    members, parts = group
    current = data.draw(garbage_current_st(members, parts))
    plan = assignors.assign(name, members, parts, current)
    check_valid(plan, members, parts)
    # Deterministic, whatever order the members arrive in.
    shuffled = dict(reversed(list(members.items())))
    assert assignors.assign(name, shuffled, parts, current) == plan


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["roundrobin", "sticky"]), groups_st(identical=True), st.data())
def test_identical_subscriptions_balance_within_one(name, group, data):
    members, parts = group
    current = data.draw(garbage_current_st(members, parts))
    plan = assignors.assign(name, members, parts, current)
    sizes = [len(v) for v in plan.values()]
    assert max(sizes) - min(sizes) <= 1


@settings(max_examples=200, deadline=None)
@given(groups_st(), st.data())
def test_sticky_no_single_move_improves_balance(group, data):
    """With mixed subscriptions: no member could take a partition of a topic it subscribes
    from a member holding two or more partitions more than it."""
    members, parts = group
    plan = assignors.assign("sticky", members, parts,
                            data.draw(garbage_current_st(members, parts)))
    for donor, tps in plan.items():
        for t, _ in tps:
            for m in members:
                if t in members[m]:
                    assert len(plan[donor]) - len(plan[m]) <= 1


def _owner_map(plan):
    return {tp: m for m, tps in plan.items() for tp in tps}


def _optimal_kept(counts: list[int], total: int) -> int:
    q, r = divmod(total, len(counts))
    caps = [q + 1] * r + [q] * (len(counts) - r)
    return sum(min(c, cap) for c, cap in zip(sorted(counts, reverse=True), caps, strict=True))


@settings(max_examples=200, deadline=None)
@given(groups_st(identical=True), st.data())
def test_sticky_moves_the_minimum(group, data):
    """From any valid (disjoint) current ownership, sticky keeps as many as balance allows."""
    members, parts = group
    everything = sorted(expected_partitions(members, parts))
    ids = sorted(members)
    owners = data.draw(st.lists(st.sampled_from(ids + [None]), min_size=len(everything),
                                max_size=len(everything)))
    current = {m: [tp for tp, o in zip(everything, owners, strict=True) if o == m] for m in ids}
    plan = assignors.assign("sticky", members, parts, current)
    new = _owner_map(plan)
    kept = sum(1 for m, tps in current.items() for tp in tps if new[tp] == m)
    assert kept == _optimal_kept([len(current[m]) for m in ids], len(everything))


@settings(max_examples=100, deadline=None)
@given(groups_st(identical=True), st.data())
def test_sticky_leave_moves_only_the_leavers_partitions(group, data):
    members, parts = group
    if len(members) < 2:
        return
    before = assignors.assign("sticky", members, parts)
    leaver = data.draw(st.sampled_from(sorted(members)))
    rest = {m: s for m, s in members.items() if m != leaver}
    current = {m: tps for m, tps in before.items() if m != leaver}
    after = assignors.assign("sticky", rest, parts, current)
    check_valid(after, rest, parts)
    for m in rest:
        assert set(before[m]) <= set(after[m])


@settings(max_examples=100, deadline=None)
@given(groups_st(identical=True))
def test_sticky_join_moves_only_what_the_newcomer_needs(group):
    members, parts = group
    before = assignors.assign("sticky", members, parts)
    subs = next(iter(members.values()))
    grown = dict(members, **{"~new": list(subs)})
    after = assignors.assign("sticky", grown, parts, before)
    check_valid(after, grown, parts)
    for m in members:
        assert set(after[m]) <= set(before[m])  # old members only give up partitions
    total = len(expected_partitions(members, parts))
    # Exactly the newcomer's fair share moved, nothing more.
    assert len(after["~new"]) == total // len(grown)


def test_sticky_concrete_join_and_leave():
    subs = {m: ["t"] for m in ("a", "b", "c")}
    plan = assignors.assign("sticky", subs, {"t": 12})
    assert [len(v) for v in plan.values()] == [4, 4, 4]
    grown = assignors.assign("sticky", dict(subs, d=["t"]), {"t": 12}, plan)
    assert [len(grown[m]) for m in "abcd"] == [3, 3, 3, 3]
    assert sum(len(set(plan[m]) - set(grown[m])) for m in "abc") == 3
    shrunk = assignors.assign("sticky", {m: ["t"] for m in "abd"}, {"t": 12}, grown)
    assert [len(shrunk[m]) for m in "abd"] == [4, 4, 4]
    for m in "abd":
        assert set(grown[m]) <= set(shrunk[m])
