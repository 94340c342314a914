"""confluent-kafka (librdkafka 2.16) with ``group.protocol=consumer`` against an in-process
logmq server: join, two members splitting partitions with no duplicate and no gap, a leave,
a killed member (no leave: its session times out), a regex subscription that picks up a topic
created later, commit and resume, and an embedded consumer taking over the group id once the
wire members are gone. Every wait polls for a condition with a deadline."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

import logmq
from logmq.errors import InconsistentGroupProtocolError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wire_util import ThreadServer  # noqa: E402

TOPIC, GROUP = "k848", "kg"
SESSION_MS = 2_000


@pytest.fixture
def srv(tmp_path: Any) -> Any:
    log = logmq.open(str(tmp_path / "d"), group_consumer_session_timeout_ms=SESSION_MS,
                     group_consumer_heartbeat_interval_ms=200)
    log.create_topic(TOPIC, partitions=4)
    s = ThreadServer(log)
    s.log = log
    s.bootstrap = f"{s.host}:{s.port}"
    yield s
    s.close()
    log.close()


def produce(srv: Any, start: int, count: int, topic: str = TOPIC, parts: int = 4) -> set[str]:
    p = Producer({"bootstrap.servers": srv.bootstrap, "linger.ms": 0})
    values = set()
    for i in range(start, start + count):
        p.produce(topic, str(i).encode(), partition=i % parts)
        values.add(str(i))
    assert p.flush(10) == 0
    return values


class Member:
    """One consumer-protocol member: what it consumed, per partition, and its errors."""

    def __init__(self, srv: Any, topics: list[str], **extra: Any) -> None:
        self.got: list[tuple[str, int, int, str]] = []
        self.errors: list[str] = []
        self.c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": GROUP,
                           "group.protocol": "consumer", "auto.offset.reset": "earliest",
                           "enable.auto.commit": False, "error_cb": self._err, **extra})
        self.c.subscribe(topics)

    def _err(self, e: KafkaError) -> None:
        self.errors.append(e.str())

    def held(self) -> set[tuple[str, int]]:
        return {(p.topic, p.partition) for p in self.c.assignment()}

    def pump(self) -> None:
        for m in self.c.consume(100, 0.05):
            if m.error() is None:
                self.got.append((m.topic(), m.partition(), m.offset(), m.value().decode()))

    def values(self) -> list[str]:
        return [v for *_, v in self.got]


def until(cond: Callable[[], bool], members: list[Member], timeout: float = 20,
          what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; "
                                 f"held={[sorted(m.held()) for m in members]}")
        for m in members:
            m.pump()


ALL = {(TOPIC, p) for p in range(4)}


def test_two_members_split_then_one_leaves(srv: Any) -> None:
    first = produce(srv, 0, 100)
    a = Member(srv, [TOPIC])
    until(lambda: len(a.got) == 100, [a], what="a to read the first batch")
    assert set(a.values()) == first and a.held() == ALL
    a.c.commit(asynchronous=False)
    b = Member(srv, [TOPIC])
    until(lambda: len(a.held()) == 2 and len(b.held()) == 2, [a, b], what="a 2/2 split")
    assert a.held().isdisjoint(b.held()) and a.held() | b.held() == ALL
    d = srv.log.groups.consumer_groups.describe(GROUP)
    assert d.state == "Stable" and len(d.members) == 2
    second = produce(srv, 100, 100)
    until(lambda: len(a.got) + len(b.got) == 200, [a, b], what="the second batch")
    got_a, got_b = a.values()[100:], b.values()
    # no duplicate, no gap, and every record read by the owner of its partition
    assert sorted(got_a + got_b, key=int) == sorted(second, key=int)
    assert {(t, p) for t, p, *_ in a.got[100:]} <= a.held()
    assert {(t, p) for t, p, *_ in b.got} <= b.held()
    a.c.commit(asynchronous=False)
    b.c.commit(asynchronous=False)
    a.c.close()  # leaves: b gets every partition
    until(lambda: b.held() == ALL, [b], what="b to get everything")
    third = produce(srv, 200, 40)
    until(lambda: len(b.got) >= len(got_b) + 40, [b], what="b to read the third batch")
    assert set(b.values()[len(got_b):]) == third  # resumed from a's commits: no re-reads
    assert not [e for e in a.errors + b.errors if "FENCED" in e or "UNKNOWN_MEMBER" in e]
    b.c.close()


MEMBER_PROC = r"""
import sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
              "group.protocol": "consumer", "auto.offset.reset": "earliest"})
c.subscribe([sys.argv[3]])
reported = None
while True:
    c.poll(0.1)
    held = sorted(p.partition for p in c.assignment())
    if held != reported:
        reported = held
        print(",".join(map(str, held)), flush=True)
"""


def test_killed_member_times_out_and_its_partitions_move(srv: Any) -> None:
    a = Member(srv, [TOPIC])
    until(lambda: a.held() == ALL, [a], what="a to hold everything")
    proc = subprocess.Popen([sys.executable, "-c", MEMBER_PROC, srv.bootstrap, GROUP, TOPIC],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        reports: list[str] = []
        reader = threading.Thread(target=lambda: reports.extend(
            line.strip() for line in proc.stdout or ()), daemon=True)
        reader.start()  # the child's reports; a keeps polling meanwhile (it must revoke)
        until(lambda: bool(reports) and len(reports[-1].split(",")) == 2, [a],
              what="the child to hold two partitions")
        until(lambda: len(a.held()) == 2, [a], what="the split")
        proc.kill()  # no leave: only the session timeout tells the group
        proc.wait(10)
        start = time.monotonic()
        until(lambda: a.held() == ALL, [a], timeout=SESSION_MS / 1000 + 15,
              what="a to get the dead member's partitions")
        assert time.monotonic() - start >= SESSION_MS / 1000 * 0.5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    a.c.close()


def test_regex_subscription_picks_up_a_new_topic(srv: Any) -> None:
    srv.log.create_topic("rx-1", partitions=2)
    one = produce(srv, 0, 10, "rx-1", 2)
    a = Member(srv, ["^rx-.*"])
    until(lambda: len(a.got) == 10, [a], what="rx-1's records")
    assert set(a.values()) == one
    srv.log.create_topic("rx-2", partitions=1)
    two = produce(srv, 10, 5, "rx-2", 1)
    until(lambda: len(a.got) == 15, [a], what="rx-2's records")
    assert set(a.values()[10:]) == two and ("rx-2", 0) in a.held()
    d = srv.log.groups.consumer_groups.describe(GROUP)
    assert d.members[0].subscribed_topic_regex is not None
    a.c.close()


def test_commit_resume_and_the_embedded_consumer_takes_over(srv: Any) -> None:
    values = produce(srv, 0, 80)
    a = Member(srv, [TOPIC])
    until(lambda: len(a.got) == 80, [a], what="the records")
    a.c.commit(offsets=[TopicPartition(TOPIC, p, 10) for p in range(4)], asynchronous=False)
    committed = {p.partition: p.offset for p in
                 a.c.committed([TopicPartition(TOPIC, p) for p in range(4)], timeout=10)}
    assert committed == {p: 10 for p in range(4)}
    # while the wire member is in the group, an embedded (classic) consumer is refused
    emb = srv.log.consumer(TOPIC, group=GROUP, auto_offset_reset="earliest",
                           session_timeout_ms=10_000, heartbeat_interval_ms=100)
    with pytest.raises(InconsistentGroupProtocolError):
        emb.poll(5)
    emb.close(commit=False)
    a.c.close()
    # a new consumer-protocol member resumes at the commits
    b = Member(srv, [TOPIC])
    until(lambda: len(b.got) == 40, [b], what="the rest after the commits")
    assert {o for _, _, o, _ in b.got} == set(range(10, 20))
    b.c.commit(asynchronous=False)
    b.c.close()
    # the group is empty now: an embedded consumer takes the id and resumes at offset 20
    more = produce(srv, 80, 8)
    emb = srv.log.consumer(TOPIC, group=GROUP, auto_offset_reset="earliest",
                           session_timeout_ms=10_000, heartbeat_interval_ms=100)
    seen: list[Any] = []
    deadline = time.monotonic() + 20
    while len(seen) < 8 and time.monotonic() < deadline:
        seen.extend(emb.poll(0.5))
    emb.close()
    assert sorted(r.value.decode() for r in seen) == sorted(more, key=int)
    assert {r.offset for r in seen} == {20, 21} and len(values) == 80
