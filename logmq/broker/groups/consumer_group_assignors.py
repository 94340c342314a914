"""Server-side assignors of KIP-848 consumer groups: ``uniform`` and ``range``.

Unlike the classic protocol's assignors (:mod:`logmq.broker.groups.assignors`, run by a
client leader), these run inside the coordinator whenever the group epoch moves past the
target assignment epoch. A client picks one by name (``group.remote.assignor`` /
``server_assignor``); the names are Kafka's.

Both are sticky: a member keeps the partitions of its current target that it may still hold,
so a rebalance moves only what it must (which is what makes KIP-848's incremental
revocation cheap). Every function is deterministic in its inputs (members are visited in
sorted order) so the same group state always gives the same plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["ASSIGNORS", "DEFAULT_ASSIGNOR", "uniform_assign", "range_assign"]

TP = tuple[str, int]
Subscriptions = Mapping[str, frozenset[str]]  # member id -> topics it may consume
Plan = dict[str, frozenset[TP]]


def uniform_assign(subs: Subscriptions, partitions: Mapping[str, int],
                   current: Mapping[str, frozenset[TP]]) -> Plan:
    """Kafka's UniformAssignor idea: balanced counts, as sticky as the balance allows.

    Each member's quota is the fair share of the partitions it can take (the partitions of
    its topics over the members sharing them, rounded up); first every member keeps what it
    held up to that quota, then the free partitions go one by one to the least-loaded member
    that may take them. With identical subscriptions counts differ by at most one.
    """
    members = sorted(subs)
    out: dict[str, set[TP]] = {m: set() for m in members}
    if not members:
        return {}
    every = sorted((t, p) for t in sorted({t for ts in subs.values() for t in ts})
                   if t in partitions for p in range(partitions[t]))
    eligible: dict[TP, list[str]] = {tp: [m for m in members if tp[0] in subs[m]]
                                     for tp in every}
    total = len(every)
    homogeneous = len({subs[m] for m in members}) == 1
    quota: dict[str, int] = {}
    for i, m in enumerate(members):
        if homogeneous:
            quota[m] = total // len(members) + (1 if i < total % len(members) else 0)
        else:
            mine = [tp for tp in every if m in eligible[tp]]
            sharers = {x for tp in mine for x in eligible[tp]}
            quota[m] = -(-len(mine) // max(len(sharers), 1))
    taken: set[TP] = set()
    # stickiness: keep held partitions, members with the most to keep first (fewer moves)
    for m in sorted(members, key=lambda x: (-len(current.get(x, ())), x)):
        for tp in sorted(current.get(m, ())):
            if tp in eligible and m in eligible[tp] and tp not in taken \
                    and len(out[m]) < quota[m]:
                out[m].add(tp)
                taken.add(tp)
    # free partitions: under-quota members first, then the least loaded
    for tp in every:
        if tp in taken or not eligible[tp]:
            continue
        m = min(eligible[tp], key=lambda x: (len(out[x]) >= quota[x], len(out[x]), x))
        out[m].add(tp)
        taken.add(tp)
    return {m: frozenset(v) for m, v in out.items()}


def range_assign(subs: Subscriptions, partitions: Mapping[str, int],
                 current: Mapping[str, frozenset[TP]]) -> Plan:
    """Kafka's server-side RangeAssignor: per topic, contiguous ranges over its subscribers.

    Subscribers of a topic are sorted by member id and the first ``partitions % n`` get one
    more, so members with the same position get the same partition numbers of every
    co-partitioned topic (what joins over co-partitioned topics rely on). ``current`` is
    not consulted: co-partitioning is worth more here than stickiness.
    """
    out: dict[str, set[TP]] = {m: set() for m in subs}
    for topic in sorted({t for ts in subs.values() for t in ts}):
        if topic not in partitions:
            continue
        consumers = sorted(m for m in subs if topic in subs[m])
        n, count = len(consumers), partitions[topic]
        start = 0
        for i, m in enumerate(consumers):
            size = count // n + (1 if i < count % n else 0)
            out[m].update((topic, p) for p in range(start, start + size))
            start += size
    return {m: frozenset(v) for m, v in out.items()}


Assignor = Callable[[Subscriptions, Mapping[str, int], Mapping[str, frozenset[TP]]], Plan]

#: name -> assignor, in Kafka's default preference order (group.consumer.assignors)
ASSIGNORS: dict[str, Assignor] = {"uniform": uniform_assign, "range": range_assign}
DEFAULT_ASSIGNOR = "uniform"
