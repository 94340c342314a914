"""Partition assignors a group leader runs on the members' subscriptions.

The coordinator never calls these: as in Kafka, assignment is computed by the group leader
(an embedded consumer here, or a Kafka client over the wire) and handed to the coordinator as
opaque bytes. The names match Kafka's protocol names so an embedded consumer and a Java client
that both list "range" agree on the protocol.

All assignors are deterministic functions of their inputs (members are processed in sorted
order), because every candidate leader must compute the same plan for the same group.
"""

from __future__ import annotations

from collections.abc import Callable

from logmq.errors import ConfigError

__all__ = ["assign", "range_assign", "roundrobin_assign", "sticky_assign", "NAMES"]

TP = tuple[str, int]
Plan = dict[str, list[TP]]


def _subscribed(members: dict[str, list[str]], partitions: dict[str, int]) -> dict[str, list[str]]:
    """Members' subscriptions restricted to topics that exist, in sorted member order."""
    return {m: sorted({t for t in members[m] if t in partitions}) for m in sorted(members)}


def range_assign(members: dict[str, list[str]], partitions: dict[str, int],
                 current: dict[str, list[TP]] | None = None) -> Plan:
    """Kafka's RangeAssignor: per topic, contiguous ranges over the sorted subscribers.

    The first ``partitions % subscribers`` members get one extra partition of each topic, so
    with many topics the imbalance adds up on the same members; that is Kafka's behaviour and
    what co-partitioned joins rely on (member i gets partition p of every topic).
    """
    subs = _subscribed(members, partitions)
    out: Plan = {m: [] for m in subs}
    for topic in sorted({t for ts in subs.values() for t in ts}):
        consumers = [m for m in subs if topic in subs[m]]
        n = partitions[topic]
        per, extra = divmod(n, len(consumers))
        start = 0
        for i, m in enumerate(consumers):
            count = per + (1 if i < extra else 0)
            out[m].extend((topic, p) for p in range(start, start + count))
            start += count
    return out


def roundrobin_assign(members: dict[str, list[str]], partitions: dict[str, int],
                      current: dict[str, list[TP]] | None = None) -> Plan:
    """Kafka's RoundRobinAssignor: deal all partitions, in (topic, partition) order, in turn.

    A member not subscribed to a partition's topic is skipped for that partition, but the
    dealer's position still moves on from whoever took it, exactly like Kafka's circular
    iterator, so plans match the Java client's for the same subscriptions.
    """
    subs = _subscribed(members, partitions)
    out: Plan = {m: [] for m in subs}
    order = list(subs)
    if not order:
        return out
    pos = 0
    for topic in sorted({t for ts in subs.values() for t in ts}):
        for p in range(partitions[topic]):
            while topic not in subs[order[pos]]:
                pos = (pos + 1) % len(order)
            out[order[pos]].append((topic, p))
            pos = (pos + 1) % len(order)
    return out


def sticky_assign(members: dict[str, list[str]], partitions: dict[str, int],
                  current: dict[str, list[TP]] | None = None) -> Plan:
    """Balanced assignment that keeps as many of ``current``'s ownerships as balance allows.

    Moving a partition costs the consumer its in-flight work and caches, so after keeping every
    still-valid ownership we only (1) place partitions nobody validly owns on the least loaded
    eligible member and (2) move one partition at a time from the most loaded member to an
    eligible member holding at least two fewer. Each move lowers the sum of squared loads, so
    the loop ends; with identical subscriptions it ends within one partition of balance, and
    because donors are always the most loaded, no kept partition is moved that an optimal plan
    would have kept.
    """
    subs = _subscribed(members, partitions)
    out: dict[str, list[TP]] = {m: [] for m in subs}
    if not subs:
        return {}
    subscribers: dict[str, list[str]] = {}
    for m, ts in subs.items():
        for t in ts:
            subscribers.setdefault(t, []).append(m)
    everything = {(t, p) for t in subscribers for p in range(partitions[t])}

    owner: dict[TP, str] = {}
    for m in subs:
        for tp in sorted({(str(t), int(p)) for t, p in (current or {}).get(m, [])}):
            if tp in everything and tp not in owner and tp[0] in subs[m]:
                owner[tp] = m
                out[m].append(tp)

    load = {m: len(out[m]) for m in subs}

    def least_loaded(candidates: list[str]) -> str:
        return min(candidates, key=lambda m: (load[m], m))

    # Most constrained partitions first, so members with narrow subscriptions get theirs
    # before wide members soak up the load.
    orphans = sorted(everything - owner.keys(),
                     key=lambda tp: (len(subscribers[tp[0]]), tp))
    for tp in orphans:
        m = least_loaded(subscribers[tp[0]])
        owner[tp] = m
        out[m].append(tp)
        load[m] += 1

    while True:
        move = _best_move(out, load, subscribers)
        if move is None:
            break
        donor, receiver, tp = move
        out[donor].remove(tp)
        out[receiver].append(tp)
        load[donor] -= 1
        load[receiver] += 1

    return {m: sorted(tps) for m, tps in out.items()}


def _best_move(out: dict[str, list[TP]], load: dict[str, int],
               subscribers: dict[str, list[str]]) -> tuple[str, str, TP] | None:
    """One partition move from the most loaded possible donor, or None when balanced."""
    for donor in sorted(out, key=lambda m: (-load[m], m)):
        if load[donor] < 2:
            return None
        best: tuple[int, str, str] | None = None  # (receiver load, receiver, topic)
        for topic in sorted({t for t, _ in out[donor]}):
            receiver = min(subscribers[topic], key=lambda m: (load[m], m))
            if load[receiver] <= load[donor] - 2:
                cand = (load[receiver], receiver, topic)
                if best is None or cand < best:
                    best = cand
        if best is not None:
            _, receiver, topic = best
            tp = max(tp for tp in out[donor] if tp[0] == topic)
            return donor, receiver, tp
    return None


_ASSIGNORS: dict[str, Callable[..., Plan]] = {
    "range": range_assign,
    "roundrobin": roundrobin_assign,
    "sticky": sticky_assign,
}
NAMES = tuple(_ASSIGNORS)


def assign(name: str, members: dict[str, list[str]], partitions: dict[str, int],
           current: dict[str, list[TP]] | None = None) -> Plan:
    """Assign ``partitions`` (topic -> count) to ``members`` (member id -> topics).

    Every partition of a subscribed, existing topic goes to exactly one subscriber; every
    member appears in the result, possibly with an empty list. ``current`` (member -> owned
    partitions, from the ConsumerProtocol subscription) only matters to "sticky".
    """
    fn = _ASSIGNORS.get(name)
    if fn is None:
        raise ConfigError(f"unknown assignor {name!r}; known: {', '.join(NAMES)}")
    plan = fn(members, partitions, current)
    for m in members:
        plan.setdefault(m, [])
    return plan
