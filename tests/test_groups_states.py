"""The group state machine's transitions table: the coordinator moves only along it."""

from __future__ import annotations

import pytest

from logmq.broker.groups import GroupCoordinator, MemoryOffsetStore, states
from logmq.broker.groups import coordinator as coordinator_mod
from logmq.broker.groups.states import (
    COMPLETING,
    DEAD,
    EMPTY,
    PREPARING,
    STABLE,
    TRANSITIONS,
    IllegalTransition,
    set_state,
)

EDGES = {(EMPTY, PREPARING), (PREPARING, COMPLETING), (PREPARING, EMPTY),
         (COMPLETING, STABLE), (COMPLETING, PREPARING), (STABLE, PREPARING)}


def test_table_is_the_documented_diagram():
    assert {(a, b) for a, bs in TRANSITIONS.items() for b in bs} == EDGES
    assert TRANSITIONS[DEAD] == frozenset()


def test_set_state_refuses_what_the_table_does_not_list():
    class G:
        group_id = "g"
        state = EMPTY

    g = G()
    with pytest.raises(IllegalTransition, match="Empty -> Stable"):
        set_state(g, STABLE)
    assert g.state == EMPTY
    set_state(g, PREPARING)
    assert g.state == PREPARING


def test_coordinator_walks_every_edge_and_only_table_edges(monkeypatch):
    seen: list[tuple[str, str]] = []

    def recording(g, new):
        seen.append((g.state, new))
        states.set_state(g, new)

    monkeypatch.setattr(coordinator_mod, "set_state", recording)
    t = [1000.0]
    c = GroupCoordinator(MemoryOffsetStore(), time_fn=lambda: t[0])
    try:
        def join(mid=""):
            return c.join_group("g", mid, "consumer", [("range", b"m")], 10_000, 30_000,
                                client_id="cli")

        a = join().result(timeout=0)                    # Empty -> Preparing -> Completing
        fb = join()                                     # Completing -> Preparing
        ra = join(a.member_id).result(timeout=0)        # Preparing -> Completing
        rb = fb.result(timeout=0)
        c.sync_group("g", ra.generation_id, ra.member_id,
                     {ra.member_id: b"x", rb.member_id: b"y"}).result(timeout=0)  # -> Stable
        c.leave_group("g", [ra.member_id, rb.member_id])  # Stable -> Preparing -> Empty
        assert c.describe_group("g").state == EMPTY
    finally:
        c.close()
    assert set(seen) <= EDGES
    assert set(seen) == EDGES
