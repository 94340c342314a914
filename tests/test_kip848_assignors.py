"""The KIP-848 server-side assignors: every subscribed partition assigned exactly once to a
member subscribed to its topic, uniform balanced and sticky, range co-partitioned."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from logmq.broker.groups.consumer_group_assignors import range_assign, uniform_assign

TOPICS = ["a", "b", "c"]


@st.composite
def groups(draw: st.DrawFn) -> tuple[dict[str, frozenset[str]], dict[str, int]]:
    n = draw(st.integers(1, 6))
    subs = {f"m{i}": frozenset(draw(st.sets(st.sampled_from(TOPICS), min_size=1)))
            for i in range(n)}
    parts = {t: draw(st.integers(0, 9)) for t in TOPICS}
    return subs, parts


def _check_complete(plan: dict, subs: dict, parts: dict) -> None:
    owners: dict = {}
    for m, tps in plan.items():
        for tp in tps:
            assert tp[0] in subs[m], (m, tp)
            assert tp not in owners, tp
            owners[tp] = m
    wanted = {(t, p) for ts in subs.values() for t in ts for p in range(parts[t])}
    assert set(owners) == wanted


@settings(max_examples=60, deadline=None)
@given(groups())
def test_both_assign_every_partition_once(g: tuple) -> None:
    subs, parts = g
    for fn in (uniform_assign, range_assign):
        _check_complete(fn(subs, parts, {}), subs, parts)


@settings(max_examples=60, deadline=None)
@given(groups())
def test_uniform_is_balanced_for_identical_subscriptions(g: tuple) -> None:
    subs, parts = g
    same = {m: frozenset(TOPICS) for m in subs}
    counts = [len(v) for v in uniform_assign(same, parts, {}).values()]
    assert max(counts) - min(counts) <= 1


def test_uniform_is_sticky_when_a_member_joins() -> None:
    subs = {"m0": frozenset("a"), "m1": frozenset("a")}
    parts = {"a": 6}
    before = uniform_assign(subs, parts, {})
    after = uniform_assign({**subs, "m2": frozenset("a")}, parts, before)
    # the newcomer's two partitions come from the others; nobody else moves
    assert len(after["m2"]) == 2
    assert after["m0"] <= before["m0"] and after["m1"] <= before["m1"]


def test_range_gives_the_same_partition_numbers_of_each_topic() -> None:
    subs = {"x": frozenset("ab"), "y": frozenset("ab")}
    plan = range_assign(subs, {"a": 3, "b": 3}, {})
    assert plan["x"] == {("a", 0), ("a", 1), ("b", 0), ("b", 1)}
    assert plan["y"] == {("a", 2), ("b", 2)}
