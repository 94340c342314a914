"""Share-group scenarios with confluent-kafka's ShareConsumer, run against logmq serve (CI)
and against Apache Kafka 4.4 (tests/oracle/test_share_oracle.py): each returns what a client
observes, so the two brokers' answers can be compared as plain data.

Every loop is bounded by a deadline; nothing sleeps to wait for the broker.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from typing import Any

import confluent_kafka
from confluent_kafka import AcknowledgeType, ShareConsumer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wire_util import RawClient  # noqa: E402

DEADLINE = 30.0
GROUP_RESOURCE = 32


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def set_group_configs(bootstrap: str, group: str, configs: dict[str, str]) -> None:
    """IncrementalAlterConfigs on a GROUP resource (what ``kafka-configs --entity-type groups``
    sends); raises if the broker refuses."""
    host, port = bootstrap.rsplit(":", 1)
    c = RawClient(host, int(port))
    try:
        resp = c.call(44, 0, {"resources": [{
            "resource_type": GROUP_RESOURCE, "resource_name": group,
            "configs": [{"name": k, "config_operation": 0, "value": v}
                        for k, v in configs.items()]}], "validate_only": False})
    finally:
        c.close()
    r = resp["responses"][0]
    if r["error_code"]:
        raise AssertionError(f"group config refused: {r}")


def produce(bootstrap: str, topic: str, values: list[bytes], partition: int | None = None
            ) -> None:
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                  "linger.ms": 5})
    for v in values:
        if partition is None:
            p.produce(topic, v)
        else:
            p.produce(topic, v, partition=partition)
    assert p.flush(DEADLINE) == 0


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, partitions, 1)])[topic].result(DEADLINE)


def consumer(bootstrap: str, group: str, topic: str, explicit: bool = False) -> ShareConsumer:
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                       "share.acknowledgement.mode": "explicit" if explicit else "implicit"})
    c.subscribe([topic])
    return c


def poll_until(c: ShareConsumer, want: int, deadline: float = DEADLINE) -> list[Any]:
    """Poll until ``want`` records arrived (or the deadline passes); the records."""
    out: list[Any] = []
    end = time.monotonic() + deadline
    while len(out) < want and time.monotonic() < end:
        for m in c.poll(0.5):
            if m.error() is None:
                out.append(m)
    return out


def new_group(bootstrap: str, partitions: int = 1, **configs: str) -> tuple[str, str]:
    topic, group = unique("share-t"), unique("share-g")
    create_topic(bootstrap, topic, partitions)
    set_group_configs(bootstrap, group, {"share.auto.offset.reset": "earliest", **configs})
    return topic, group


# ---------------------------------------------------------------------------- scenarios
def accept_implicit(bootstrap: str, n: int = 20) -> dict[str, Any]:
    """Implicit mode: every record once, delivery count 1; a second consumer of the group
    afterwards sees only what is produced after."""
    topic, group = new_group(bootstrap)
    produce(bootstrap, topic, [b"a%d" % i for i in range(n)])
    c = consumer(bootstrap, group, topic)
    got = poll_until(c, n)
    c.commit_sync(DEADLINE)
    c.close()
    produce(bootstrap, topic, [b"after"])
    c2 = consumer(bootstrap, group, topic)
    again = poll_until(c2, 1)
    c2.close()
    return {"values": sorted(m.value() for m in got),
            "counts": sorted({m.delivery_count() for m in got}),
            "second": [m.value() for m in again]}


def release_redelivers(bootstrap: str) -> dict[str, Any]:
    """Explicit RELEASE: the same record again, delivery count 2; then ACCEPT ends it."""
    topic, group = new_group(bootstrap)
    produce(bootstrap, topic, [b"r0"])
    c = consumer(bootstrap, group, topic, explicit=True)
    seen = []
    for ack in (AcknowledgeType.RELEASE, AcknowledgeType.ACCEPT):
        got = poll_until(c, 1)
        for m in got:
            seen.append((m.value(), m.offset(), m.delivery_count()))
            c.acknowledge(m, ack)
        c.commit_sync(DEADLINE)
    produce(bootstrap, topic, [b"marker"])
    tail = poll_until(c, 1)
    for m in tail:
        c.acknowledge(m)
    c.commit_sync(DEADLINE)
    c.close()
    return {"seen": seen, "tail": [m.value() for m in tail]}


def reject_not_redelivered(bootstrap: str) -> dict[str, Any]:
    """Explicit REJECT: the record never comes back; the others are accepted."""
    topic, group = new_group(bootstrap)
    produce(bootstrap, topic, [b"x0", b"bad", b"x2"])
    c = consumer(bootstrap, group, topic, explicit=True)
    got = poll_until(c, 3)
    for m in got:
        c.acknowledge(m, AcknowledgeType.REJECT if m.value() == b"bad" else
                      AcknowledgeType.ACCEPT)
    c.commit_sync(DEADLINE)
    produce(bootstrap, topic, [b"marker"])
    tail = poll_until(c, 1)
    for m in tail:
        c.acknowledge(m)
    c.commit_sync(DEADLINE)
    c.close()
    return {"first": sorted(m.value() for m in got), "tail": [m.value() for m in tail],
            "topic": topic}


def lock_expiry(bootstrap: str, lock_ms: int = 1000) -> dict[str, Any]:
    """A holds a record and goes quiet; B gets it only after A's lock ran out, count 2."""
    topic, group = new_group(bootstrap, **{"share.record.lock.duration.ms": str(lock_ms)})
    produce(bootstrap, topic, [b"slow"])
    a = consumer(bootstrap, group, topic, explicit=True)
    got_a = poll_until(a, 1)
    t_a = time.monotonic()
    b = consumer(bootstrap, group, topic, explicit=True)
    got_b = poll_until(b, 1)
    waited = time.monotonic() - t_a
    for m in got_b:
        b.acknowledge(m)
    b.commit_sync(DEADLINE)
    b.close()
    a.close()
    return {"a": [(m.value(), m.delivery_count()) for m in got_a],
            "b": [(m.value(), m.delivery_count()) for m in got_b],
            "b_waited_for_lock": waited >= lock_ms / 1000 * 0.8}


def two_consumers(bootstrap: str, n: int = 200, partitions: int = 2) -> dict[str, Any]:
    """Two implicit consumers share the records: together all, never one twice."""
    topic, group = new_group(bootstrap, partitions=partitions)
    produce(bootstrap, topic, [b"m%03d" % i for i in range(n)])
    cs = [consumer(bootstrap, group, topic), consumer(bootstrap, group, topic)]
    seen: list[list[bytes]] = [[], []]
    end = time.monotonic() + DEADLINE
    while sum(map(len, seen)) < n and time.monotonic() < end:
        for i, c in enumerate(cs):
            seen[i].extend(m.value() for m in c.poll(0.2) if m.error() is None)
    for c in cs:
        c.commit_sync(DEADLINE)
        c.close()
    allv = seen[0] + seen[1]
    return {"total": len(allv), "distinct": len(set(allv)),
            "complete": set(allv) == {b"m%03d" % i for i in range(n)}}
