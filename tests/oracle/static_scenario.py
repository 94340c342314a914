"""Static membership (KIP-345) and the librdkafka group findings, as confluent-kafka sees them.

Run as a program against one bootstrap; prints one JSON line of observations. The oracle test
(test_groups_static_oracle.py) runs it against Apache Kafka 4.4 and logmq and compares. Only
what a client can observe and what does not depend on timing goes into the output: which
partitions each member holds, which rebalance callbacks fired, error codes, the group's state
and its members' instance ids.

Scenarios:
- ``restart``: two static members (instance ids a, b) share a 4-partition topic; a is closed
  (static members send no LeaveGroup) and a new process with instance id a joins: it must get
  a's partitions back and b must see no revoke and no assign.
- ``fenced``: while the restarted a is alive a second process joins with instance id a too:
  the older one is fenced (FENCED_INSTANCE_ID, fatal in librdkafka); the newer one holds a's
  partitions and b still saw nothing.
- ``commit_after_leave`` (librdkafka 0118): a dynamic member commits from its revoke callback
  after its consumer unassigned and left the group: Kafka refuses that commit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

DEADLINE_S = 60.0


class Member:
    """A consumer plus a log of its rebalance callbacks and fatal errors."""

    def __init__(self, bootstrap: str, group: str, topic: str, instance: str | None,
                 **extra: Any) -> None:
        self.events: list[tuple[str, list[int]]] = []
        self.errors: list[str] = []
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap, "group.id": group,
            "session.timeout.ms": 30000, "heartbeat.interval.ms": 500,
            "partition.assignment.strategy": "range", "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "error_cb": self._error,
            **extra,
        }
        if instance is not None:
            conf["group.instance.id"] = instance
        self.c = Consumer(conf)
        self.c.subscribe([topic], on_assign=self._assign, on_revoke=self._revoke)

    def _error(self, err: KafkaError) -> None:
        # librdkafka reports a fencing as a fatal error; the broker's code is its cause
        if err.fatal():
            self.errors.append("fatal")
        self.errors.append(err.name())

    def _assign(self, c: Consumer, parts: list[TopicPartition]) -> None:
        self.events.append(("assign", sorted(p.partition for p in parts)))

    def _revoke(self, c: Consumer, parts: list[TopicPartition]) -> None:
        self.events.append(("revoke", sorted(p.partition for p in parts)))

    def held(self) -> list[int]:
        try:
            return sorted(p.partition for p in self.c.assignment())
        except KafkaException:
            return []

    def poll(self) -> None:
        try:
            msg = self.c.poll(0.1)
        except (KafkaException, RuntimeError) as e:  # a fenced consumer raises its error
            err = e.args[0] if e.args else None
            self.errors.append(err.name() if isinstance(err, KafkaError) else str(e))
            return
        if msg is not None and msg.error() is not None:
            self.errors.append(msg.error().name())


def poll_until(members: list[Member], cond: Any, timeout: float = DEADLINE_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in members:
            m.poll()
        if cond():
            return True
    return False


def setup(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 4, 1)])[topic].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # metadata settles on a fresh topic
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        if md is not None and md.error is None and len(md.partitions) == 4:
            break
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(8):
        p.produce(topic, b"v%d" % i, partition=i % 4)
    p.flush(30)


def describe(bootstrap: str, group: str) -> dict[str, Any]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    d = admin.describe_consumer_groups([group])[group].result(30)
    return {"state": d.state.name,
            "instances": sorted(m.group_instance_id or "" for m in d.members),
            "assignment": {m.group_instance_id or "": sorted(
                tp.partition for tp in m.assignment.topic_partitions) for m in d.members}}


def restart_and_fence(bootstrap: str, prefix: str) -> dict[str, Any]:
    topic, group = f"{prefix}-static", f"{prefix}-static-g"
    setup(bootstrap, topic)
    out: dict[str, Any] = {}
    a = Member(bootstrap, group, topic, "a")
    b = Member(bootstrap, group, topic, "b")
    ok = poll_until([a, b], lambda: len(a.held()) == 2 and len(b.held()) == 2)
    out["initial"] = {"ok": ok, "a": a.held(), "b": b.held()}
    a_parts, b_events = a.held(), len(b.events)
    a.c.close()  # a static member sends no LeaveGroup: the group keeps its place
    a2 = Member(bootstrap, group, topic, "a")
    ok = poll_until([a2, b], lambda: len(a2.held()) == 2)
    # b keeps polling a little longer: a late rebalance would show up here
    poll_until([a2, b], lambda: False, timeout=4.0)
    out["restart"] = {"ok": ok, "same_partitions": a2.held() == a_parts,
                      "a2_events": a2.events, "b_events_after": b.events[b_events:],
                      "b": b.held()}
    out["restart_describe"] = describe(bootstrap, group)
    a3 = Member(bootstrap, group, topic, "a")
    ok = poll_until([a2, a3, b], lambda: len(a3.held()) == 2 and bool(a2.errors))
    poll_until([a3, b], lambda: False, timeout=3.0)
    out["fenced"] = {"ok": ok, "old_errors": sorted(set(a2.errors)), "new": a3.held(),
                     "same_partitions": a3.held() == a_parts,
                     "b_events_after": b.events[b_events:], "new_errors": a3.errors}
    out["fenced_describe"] = describe(bootstrap, group)
    for m in (a2, a3, b):
        try:
            m.c.close()
        except (KafkaException, RuntimeError):
            pass
    return out


def commit_after_leave(bootstrap: str, prefix: str) -> dict[str, Any]:
    """librdkafka 0118: both members unassign in their revoke callback; the second one then
    waits and commits. Every such commit must fail: against Kafka its only revoke comes from
    close (the two members land in one generation), so the consumer is leaving."""
    topic, group = f"{prefix}-c118", f"{prefix}-c118-g"
    setup(bootstrap, topic)
    commits: list[str] = []
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": 30000,
            "heartbeat.interval.ms": 500, "enable.auto.commit": False,
            "auto.offset.reset": "earliest"}

    def revoke_then_commit(c: Consumer, parts: list[TopicPartition]) -> None:
        pos = c.position(parts)
        c.unassign()
        time.sleep(3)  # as 0118 does: give a closing consumer time to leave first
        try:
            c.commit(offsets=[TopicPartition(p.topic, p.partition, max(p.offset, 1))
                              for p in pos], asynchronous=False)
            commits.append("NO_ERROR")
        except KafkaException as e:
            commits.append(e.args[0].name())

    c1 = Consumer(conf)
    c1.subscribe([topic], on_revoke=lambda c, parts: c.unassign())
    c2 = Consumer(conf)
    c2.subscribe([topic], on_revoke=revoke_then_commit)
    got = {1: 0, 2: 0}
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline and not (got[1] and got[2]):
        for i, c in ((1, c1), (2, c2)):
            m = c.poll(0.1)
            if m is not None and m.error() is None:
                got[i] += 1
    c2.close()
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline and len(c1.assignment()) < 4:
        c1.poll(0.1)
    out = {"commits": commits, "c1_took_over": len(c1.assignment()) == 4}
    c1.close()
    return out


class Counts:
    def __init__(self) -> None:
        self.assign = self.revoke = self.nonempty = self.lost = 0

    def on_assign(self, c: Consumer, parts: list[TopicPartition]) -> None:
        self.assign += 1
        self.nonempty += bool(parts)

    def on_lost(self, c: Consumer, parts: list[TopicPartition]) -> None:
        self.lost += 1

    def on_revoke(self, c: Consumer, parts: list[TopicPartition]) -> None:
        self.revoke += 1

    def snap(self) -> list[int]:
        return [self.assign, self.revoke]


def cooperative_unsubscribe(bootstrap: str, prefix: str) -> dict[str, Any]:
    """librdkafka 0113 l: two cooperative-sticky members of two 2-partition topics; one
    unsubscribes. Kafka: one assign callback each for the first generation, then only the
    partitions that move produce callbacks."""
    t1, t2, group = f"{prefix}-l1", f"{prefix}-l2", f"{prefix}-l-g"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(t1, 2, 1), NewTopic(t2, 2, 1)]).values():
        f.result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # 0113 waits for both topics to exist first
        md = admin.list_topics(timeout=10).topics
        if all(t in md and md[t].error is None and len(md[t].partitions) == 2
               for t in (t1, t2)):
            break
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": 30000,
            "heartbeat.interval.ms": 500, "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    n1, n2 = Counts(), Counts()
    c1, c2 = Consumer(conf), Consumer(conf)
    c1.subscribe([t1, t2], on_assign=n1.on_assign, on_revoke=n1.on_revoke)
    c2.subscribe([t1, t2], on_assign=n2.on_assign, on_revoke=n2.on_revoke)
    out: dict[str, Any] = {}

    def until(cond: Any) -> bool:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            c1.poll(0.1)
            c2.poll(0.1)
            if cond():
                return True
        return False

    out["both_two"] = until(lambda: len(c1.assignment()) == 2 and len(c2.assignment()) == 2)
    out["counts_first"] = [n1.snap(), n2.snap()]
    c1.unsubscribe()
    out["moved"] = until(lambda: len(c1.assignment()) == 0 and len(c2.assignment()) == 4)
    out["counts_after"] = [n1.snap(), n2.snap()]
    c1.close()
    c2.close()
    out["counts_closed"] = [n1.snap(), n2.snap()]
    return out


def cooperative_wildcard(bootstrap: str, prefix: str) -> dict[str, Any]:
    """librdkafka 0113 n: two cooperative-sticky members subscribe to a regex no topic
    matches yet; two matching topics appear (both members must land in one generation: no
    revoke), then one is deleted (its partitions are lost, not revoked, in Kafka)."""
    base, group = f"{prefix}-nw", f"{prefix}-nw-g"
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": 30000,
            "heartbeat.interval.ms": 500, "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 3000}
    n1, n2 = Counts(), Counts()
    c1, c2 = Consumer(conf), Consumer(conf)
    for c, n in ((c1, n1), (c2, n2)):
        c.subscribe([f"^{base}_."], on_assign=n.on_assign, on_revoke=n.on_revoke,
                    on_lost=n.on_lost)

    def until(cond: Any) -> bool:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            c1.poll(0.1)
            c2.poll(0.1)
            if cond():
                return True
        return False

    def counts() -> list[list[int]]:
        return [[n.nonempty, n.revoke, n.lost] for n in (n1, n2)]

    c1.poll(0.5)
    c2.poll(0.5)
    out: dict[str, Any] = {"before_topics": counts()}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(f"{base}_1", 2, 1),
                                  NewTopic(f"{base}_2", 2, 1)]).values():
        f.result(30)
    out["both_two"] = until(lambda: len(c1.assignment()) == 2 and len(c2.assignment()) == 2)
    # one rebalance or two (the topics may be discovered apart), never a revoke
    out["after_create"] = [[min(a, 2) > 0, r, lost] for a, r, lost in counts()]
    admin.delete_topics([f"{base}_1"])[f"{base}_1"].result(30)
    out["one_each"] = until(lambda: len(c1.assignment()) == 1 and len(c2.assignment()) == 1)
    out["after_delete"] = [[r, lost] for _, r, lost in counts()]
    c1.close()
    c2.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--only", default="")
    ns = ap.parse_args()
    ops: dict[str, Any] = {}
    for name, fn in (("static", restart_and_fence), ("commit_after_leave", commit_after_leave),
                     ("cooperative_unsubscribe", cooperative_unsubscribe),
                     ("cooperative_wildcard", cooperative_wildcard)):
        if ns.only and ns.only != name:
            continue
        try:
            ops[name] = fn(ns.bootstrap, ns.prefix)
        except Exception as e:  # reported, so the comparison shows what broke
            ops[name] = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps({"ops": ops}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
