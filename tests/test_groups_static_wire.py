"""Static membership over the wire: confluent-kafka (librdkafka) and an embedded consumer as
static members of one group on an in-process server. What librdkafka's test 0102 wants: a
static member's restart revokes nobody, the restarted member gets its partitions back, and a
duplicate instance id fences the older process."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError

from logmq.kafka_codes import ApiKey, ErrorCode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wire_util import RawClient, ThreadServer  # noqa: E402

TOPIC, GROUP = "st", "sg"
EMBEDDED = {"session_timeout_ms": 10_000, "heartbeat_interval_ms": 100,
            "rebalance_timeout_ms": 10_000, "enable_auto_commit": False,
            "auto_offset_reset": "earliest"}


@pytest.fixture
def server(log):
    log.create_topic(TOPIC, partitions=4)
    srv = ThreadServer(log)
    yield srv
    srv.close()


class Wire:
    """A confluent-kafka static member with a log of its callbacks and fatal errors."""

    def __init__(self, srv: ThreadServer, instance: str) -> None:
        self.events: list[tuple[str, list[int]]] = []
        self.fatal: list[str] = []
        self.c = Consumer({
            "bootstrap.servers": f"{srv.host}:{srv.port}", "group.id": GROUP,
            "group.instance.id": instance, "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 200, "partition.assignment.strategy": "range",
            "enable.auto.commit": False, "error_cb": self._err})
        self.c.subscribe([TOPIC], on_assign=self._on("assign"), on_revoke=self._on("revoke"))

    def _err(self, e: KafkaError) -> None:
        if e.fatal() or e.code() == KafkaError._FATAL:
            self.fatal.append(e.str())

    def _on(self, what: str) -> Any:
        def cb(c: Consumer, parts: list[Any]) -> None:
            self.events.append((what, sorted(p.partition for p in parts)))
        return cb

    def held(self) -> set[int]:
        return {p.partition for p in self.c.assignment()}

    def poll(self) -> None:
        # librdkafka hands a consumer's fatal error to poll() as an error event
        msg = self.c.poll(0.02)
        if msg is not None and msg.error() is not None:
            self._err(msg.error())


def poll_until(members: list[Any], cond: Any, timeout: float = 30.0,
               state: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in members:
            m.poll(0.02) if not isinstance(m, Wire) else m.poll()
        if cond():
            return
    raise AssertionError(f"condition not reached in time: {state() if state else ''}")


def held(e: Any) -> set[int]:
    return {tp.partition for tp in e.assignment()}


def test_wire_and_embedded_static_restarts_revoke_nobody(log, server):
    e_events: list[tuple[str, Any]] = []
    emb = log.consumer(group=GROUP, group_instance_id="e", **EMBEDDED)
    emb.subscribe([TOPIC], on_assign=lambda tps: e_events.append(("assign", tps)),
                  on_revoke=lambda tps: e_events.append(("revoke", tps)))
    w = Wire(server, "w")
    poll_until([emb, w], lambda: len(held(emb)) == 2 and len(w.held()) == 2)
    w_parts, e_parts, e_seen = w.held(), held(emb), len(e_events)

    w.c.close()  # a static member sends no LeaveGroup
    w2 = Wire(server, "w")
    poll_until([emb, w2], lambda: w2.held() == w_parts)
    assert w2.events == [("assign", sorted(w_parts))]
    assert e_events[e_seen:] == []

    emb.close()  # the embedded static member leaves its place too
    emb2 = log.consumer(group=GROUP, group_instance_id="e", **EMBEDDED)
    emb2.subscribe([TOPIC])
    poll_until([emb2, w2], lambda: held(emb2) == e_parts)
    assert w2.events == [("assign", sorted(w_parts))]  # no revoke, no second assign

    w3 = Wire(server, "w")  # a duplicate instance id: the older process is fenced
    poll_until([emb2, w2, w3], lambda: bool(w2.fatal) and w3.held() == w_parts,
               state=lambda: (w2.fatal, w3.held(), w3.events, w_parts))
    assert "group.instance.id" in w2.fatal[0]
    assert w3.events == [("assign", sorted(w_parts))]
    desc = log.groups.describe_group(GROUP)
    assert desc.state == "Stable"
    assert sorted(m.group_instance_id for m in desc.members) == ["e", "w"]
    for c in (w2.c, w3.c):
        c.close()
    emb2.close()


def test_leave_group_v3_by_instance_id(log, server):
    w = Wire(server, "w")
    poll_until([w], lambda: len(w.held()) == 4)
    raw = RawClient(server.host, server.port)
    try:
        resp = raw.call(ApiKey.LEAVE_GROUP, 3, {"group_id": GROUP, "members": [
            {"member_id": "", "group_instance_id": "w"},
            {"member_id": "", "group_instance_id": "ghost"}]})
    finally:
        raw.close()
    assert resp["error_code"] == ErrorCode.NONE
    assert [m["error_code"] for m in resp["members"]] == [ErrorCode.NONE,
                                                         ErrorCode.UNKNOWN_MEMBER_ID]
    assert [m["group_instance_id"] for m in resp["members"]] == ["w", "ghost"]
    assert log.groups.describe_group(GROUP).members == []
    # the consumer notices on its next heartbeat and rejoins as a new static member
    poll_until([w], lambda: len(w.held()) == 4 and bool(log.groups.describe_group(GROUP)
                                                       .members))
    w.c.close()
