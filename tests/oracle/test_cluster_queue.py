"""``log.queue()`` on ``logmq.connect("kafka://...")``: KIP-932 share groups on Kafka 4.4.

A broker of its own (module scope): share-group heartbeats every 0.5 s instead of 5 s, so a
member gets its first records in about a second, and record locks may be as short as 1 s, so
lock expiry is testable. Everything else is Kafka's defaults; share groups need no enabling
in 4.4 (``share.version`` is on by default).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka_oracle import KafkaCluster

import logmq
from logmq.cluster.queue import DLQ_ENABLE
from logmq.errors import (
    ConfigError,
    RecordStateError,
    UnknownTopicError,
    UnsupportedOnClusterError,
)

FAST_SHARE = {
    "auto.create.topics.enable": "false",
    "group.share.heartbeat.interval.ms": "500",
    "group.share.min.heartbeat.interval.ms": "500",
    "group.share.min.record.lock.duration.ms": "1000",
}


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-share"), extra_config=FAST_SHARE)
    cluster.start()
    try:
        with logmq.connect(f"kafka://{cluster.bootstrap}") as lg:
            yield lg
    finally:
        cluster.stop()


def topic(log: Any, n: int, partitions: int = 2) -> str:
    t = f"q-{uuid.uuid4().hex[:10]}"
    log.create_topic(t, partitions)
    with log.producer() as p:
        for f in [p.send(t, b"v%d" % i, key=b"k%d" % i, headers=[("i", b"%d" % i)],
                         partition=i % partitions) for i in range(n)]:
            f.result(30)
    return t


def receive_until(q: Any, want: int, timeout: float = 30.0, settle: Any = None) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        for r in q.receive(10, timeout=0.5):
            out.append(r)
            if settle is not None:
                settle(r)
    return out


def dead_letters(log: Any, dlq: str, want: int) -> list[Any]:
    c = log.consumer(dlq, auto_offset_reset="earliest")
    out: list[Any] = []
    deadline = time.monotonic() + 30
    while len(out) < want and time.monotonic() < deadline:
        out.extend(c.poll(0.5))
    c.close()
    return out


def test_ack_nack_reject_redelivery_and_kafka_dlq(log: Any) -> None:
    t = topic(log, 6)
    q = log.queue(t, f"g-{t}")
    assert q.dead_letter_topic == f"dlq.{t}"
    assert log.topic_config(q.dead_letter_topic)[DLQ_ENABLE] in (True, "true")
    seen: list[tuple[bytes, int]] = []

    def settle(r: Any) -> None:
        seen.append((r.value, r.delivery_count))
        if r.value == b"v0":
            r.reject("bad input")
        elif r.value == b"v1" and r.delivery_count == 1:
            r.nack()  # RELEASE: back at once, delivery count 2 next time
        else:
            r.ack()

    receive_until(q, 7, settle=settle)
    assert sorted(seen) == sorted([(b"v%d" % i, 1) for i in range(6)] + [(b"v1", 2)])
    rec = next(iter([(v, c) for v, c in seen if v == b"v1" and c == 2]))
    assert rec == (b"v1", 2)
    assert q.receive(10, timeout=1.0) == []  # acked and rejected ones never come back
    q.close()
    (dead,) = dead_letters(log, f"dlq.{t}", 1)
    h = dict(dead.headers)
    assert (dead.key, dead.value) == (b"k0", b"v0")  # the record itself is copied
    assert h["__dlq.errors.topic"] == t.encode() and h["__dlq.errors.offset"] == b"0"
    assert h["__dlq.errors.group"] == f"g-{t}".encode()
    assert h["__dlq.errors.delivery.count"] == b"1"


def test_max_attempts_dead_letters_after_the_last_delivery(log: Any) -> None:
    t = topic(log, 1, partitions=1)
    q = log.queue(t, f"g-{t}", max_attempts=2, dead_letter_topic=f"dlq.mine-{t}")
    counts = [r.delivery_count for r in receive_until(q, 2, settle=lambda r: r.nack())]
    assert counts == [1, 2]
    assert q.receive(1, timeout=1.0) == []
    q.close()
    (dead,) = dead_letters(log, f"dlq.mine-{t}", 1)
    assert dict(dead.headers)["__dlq.errors.delivery.count"] == b"2"


def test_members_share_records_and_an_expired_lock_moves_on(log: Any) -> None:
    t = topic(log, 1, partitions=1)
    g = f"g-{t}"
    a = log.queue(t, g, lock_ms=1000)
    (held,) = receive_until(a, 1)
    with pytest.raises(RecordStateError, match="not settled"):
        a.receive(1)  # Kafka refuses a new share fetch while a poll's records are open
    b = log.queue(t, g, lock_ms=1000)
    (again,) = receive_until(b, 1)  # the lock ran out: the other member gets it
    assert (again.value, again.delivery_count) == (b"v0", 2)
    again.ack()
    with pytest.raises(RecordStateError):
        held.ack()
    a.close()
    b.close()


def test_what_share_groups_lack_is_a_typed_error(log: Any) -> None:
    t = topic(log, 1, partitions=1)
    with pytest.raises(UnsupportedOnClusterError, match="backoff"):
        log.queue(t, "g", backoff_base_ms=10)
    with pytest.raises(UnsupportedOnClusterError, match="priorities"):
        log.queue(t, "g", priority_aging_ms=1000)
    with pytest.raises(UnknownTopicError):
        log.queue(f"nope-{t}", "g")
    with pytest.raises(ConfigError, match="delivery.count.limit"):
        log.queue(t, f"g-{t}", max_attempts=50)  # Kafka's range: 2..10
    with log.producer() as p, pytest.raises(UnsupportedOnClusterError):
        p.send(t, b"x", delay_ms=1000)
    q = log.queue(t, f"g-{t}")
    (r,) = receive_until(q, 1)
    with pytest.raises(UnsupportedOnClusterError, match="delayed"):
        r.nack(delay=5)
    with pytest.raises(UnsupportedOnClusterError, match="RENEW"):
        r.renew()
    r.ack()
    with pytest.raises(RecordStateError):
        r.ack()
    q.close()


def test_queues_list_shows_a_share_groups_depth_and_dead_letters(log: Any) -> None:
    import json

    from click.testing import CliRunner

    from logmq.cli import cli

    t = topic(log, 5, partitions=1)
    g = f"g-{t}"
    q = log.queue(t, g)
    got = receive_until(q, 2)
    got[0].ack()
    got[1].reject()
    dead_letters(log, f"dlq.{t}", 1)  # written by the broker: wait until it is there
    st = q.stats()
    assert (st.depth, st.dlq_size, st.acked, st.scheduled, st.in_flight) == (3, 1, 1, 0, -1)
    q.close()
    r = CliRunner().invoke(cli, ["queues", "list", "--topic", t, "--json",
                                 "--bootstrap", log.bootstrap])
    assert r.exit_code == 0, r.output
    (row,) = [json.loads(x) for x in r.output.splitlines()]
    assert (row["group"], row["depth"], row["dlq_size"]) == (g, 3, 1)
    assert row["dead_letter_topic"] == f"dlq.{t}"


def test_a_worker_runs_unchanged_on_a_share_group(log: Any) -> None:
    """logmq.Worker (threads, each its own member) on kafka://: every record handled once
    successfully; a failure is released and handled again by whichever member gets it."""
    import threading

    t = topic(log, 20)
    done: list[bytes] = []
    lock = threading.Lock()
    failed_once: set[bytes] = set()

    def handle(rec: Any) -> None:
        if rec.value == b"v3" and rec.value not in failed_once:
            failed_once.add(rec.value)
            raise RuntimeError("first try fails")
        with lock:
            done.append(rec.value)

    with logmq.Worker(log, t, handle, group=f"g-{t}", concurrency=2, prefetch=5,
                      poll_timeout=0.2) as w:
        deadline = time.monotonic() + 60
        while len(done) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)  # waiting for the worker's threads, bounded by the deadline
    assert sorted(done) == sorted(b"v%d" % i for i in range(20))
    assert w.failed == 1 and not w.errors


def test_a_filter_skips_records_for_the_group(log: Any) -> None:
    t = topic(log, 4, partitions=1)
    q = log.queue(t, f"g-{t}", filter=lambda r: r.value != b"v1")
    got = [r.value for r in receive_until(q, 3, settle=lambda r: r.ack())]
    assert got == [b"v0", b"v2", b"v3"]
    assert q.receive(1, timeout=1.0) == []  # the skipped one was accepted, not left behind
    q.close()
