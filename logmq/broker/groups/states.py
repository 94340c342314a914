"""The classic consumer-group state machine's states and its one table of transitions.

::

    Empty --join--> PreparingRebalance --all rejoined / timeout--> CompletingRebalance
    CompletingRebalance --leader sync--> Stable --join/leave/expiry--> PreparingRebalance
    CompletingRebalance --join/leave/expiry--> PreparingRebalance
    PreparingRebalance --nobody rejoined--> Empty

Static members (``group.instance.id``) that have not rejoined when the join phase ends are
kept, as Kafka keeps them (their session timeout removes them): if only such members are left
the group stays in PreparingRebalance for another rebalance timeout rather than moving on
without any member that could lead it.

The coordinator changes a group's state only through :func:`set_state`, which refuses a
change the table does not list: a bug shows up as an error where it happens instead of as a
group wedged in an impossible state. ``Dead`` is only ever reported (a group that does not
exist), never entered.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["EMPTY", "PREPARING", "COMPLETING", "STABLE", "DEAD", "TRANSITIONS", "set_state",
           "IllegalTransition"]

EMPTY = "Empty"
PREPARING = "PreparingRebalance"
COMPLETING = "CompletingRebalance"
STABLE = "Stable"
DEAD = "Dead"

#: state -> the states it may move to
TRANSITIONS: dict[str, frozenset[str]] = {
    EMPTY: frozenset({PREPARING}),
    PREPARING: frozenset({COMPLETING, EMPTY}),
    COMPLETING: frozenset({STABLE, PREPARING}),
    STABLE: frozenset({PREPARING}),
    DEAD: frozenset(),
}


class IllegalTransition(RuntimeError):
    """The coordinator tried a state change the table does not allow (a logmq bug)."""


class _HasState(Protocol):
    group_id: str
    state: str


def set_state(g: _HasState, new: str) -> None:
    if new not in TRANSITIONS[g.state]:
        raise IllegalTransition(f"group {g.group_id!r}: {g.state} -> {new} is not a transition")
    g.state = new
