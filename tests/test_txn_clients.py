"""Transactions from real clients against ``logmq serve``: confluent-kafka (librdkafka),
kafka-python and aiokafka transactional producers; read_committed consumers.

Each scenario writes a committed transaction, an aborted one (flushed first, so its records
really reach the log: librdkafka drops unsent records on abort) and another committed one; a
read_committed consumer must see exactly the committed records (seeing the last one proves it
read past the aborted ones), a read_uncommitted consumer sees the aborted ones too.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_util import ServerProcess  # noqa: E402
from wire_util import RawClient  # noqa: E402

T = 20.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: Any) -> Any:
    with ServerProcess(str(tmp_path_factory.mktemp("txn") / "data")) as s:
        yield s


def _topic(server: Any, name: str, partitions: int = 1) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(T)
    return name


def _read(server: Any, topic: str, isolation: str, until: int, partition: int = 0
          ) -> list[bytes]:
    """Values of ``topic``-``partition`` until ``until`` records arrived (bounded wait)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": f"r-{topic}-{isolation}",
                  "isolation.level": isolation, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, 0)])
    seen: list[bytes] = []
    deadline = time.monotonic() + T
    try:
        while len(seen) < until and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                seen.append(m.value())
    finally:
        c.close()
    return seen


def _check_visibility(server: Any, topic: str) -> None:
    assert _read(server, topic, "read_committed", 2) == [b"c1", b"c2"]
    assert _read(server, topic, "read_uncommitted", 3) == [b"c1", b"a1", b"c2"]


def test_confluent_commit_visible_abort_invisible(server: Any) -> None:
    from confluent_kafka import Producer

    topic = _topic(server, "ck-vis")
    p = Producer({"bootstrap.servers": server.bootstrap, "transactional.id": "ck-vis",
                  "linger.ms": 1})
    p.init_transactions(T)
    for value, commit in ((b"c1", True), (b"a1", False), (b"c2", True)):
        p.begin_transaction()
        p.produce(topic, value, partition=0)
        assert p.flush(T) == 0
        (p.commit_transaction if commit else p.abort_transaction)(T)
    _check_visibility(server, topic)
    # markers take offsets: 3 records + 3 markers, and nothing is left open
    raw = RawClient(server.host, server.port)
    try:
        for iso in (0, 1):
            r = raw.call(2, 4, {"replica_id": -1, "isolation_level": iso, "topics": [
                {"name": topic, "partitions": [{"partition_index": 0, "current_leader_epoch":
                                                -1, "timestamp": -1}]}]})
            assert r["topics"][0]["partitions"][0]["offset"] == 6
    finally:
        raw.close()


def test_kafka_python_transactions(server: Any) -> None:
    from kafka import KafkaProducer

    topic = _topic(server, "kp-vis")
    p = KafkaProducer(bootstrap_servers=server.bootstrap, transactional_id="kp-vis")
    p.init_transactions()
    for value, commit in ((b"c1", True), (b"a1", False), (b"c2", True)):
        p.begin_transaction()
        p.send(topic, value, partition=0)
        p.flush(T)
        (p.commit_transaction if commit else p.abort_transaction)()
    p.close(T)
    _check_visibility(server, topic)


def test_aiokafka_transactions_and_read_committed_consumer(server: Any) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = _topic(server, "aio-vis")

    async def main() -> list[bytes]:
        p = AIOKafkaProducer(bootstrap_servers=server.bootstrap, transactional_id="aio-vis")
        await p.start()
        try:
            for value, commit in ((b"c1", True), (b"a1", False), (b"c2", True)):
                await p.begin_transaction()
                await (await p.send(topic, value, partition=0))
                await (p.commit_transaction() if commit else p.abort_transaction())
        finally:
            await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=server.bootstrap,
                             isolation_level="read_committed", auto_offset_reset="earliest")
        await c.start()
        try:
            c.assign([TopicPartition(topic, 0)])
            got: list[bytes] = []
            deadline = time.monotonic() + T
            while len(got) < 2 and time.monotonic() < deadline:
                for recs in (await c.getmany(timeout_ms=200)).values():
                    got.extend(r.value for r in recs)
            return got
        finally:
            await c.stop()

    assert asyncio.run(main()) == [b"c1", b"c2"]
    assert _read(server, topic, "read_uncommitted", 3) == [b"c1", b"a1", b"c2"]


def test_zombie_is_fenced(server: Any) -> None:
    from confluent_kafka import KafkaException, Producer

    topic = _topic(server, "zombie")
    conf = {"bootstrap.servers": server.bootstrap, "transactional.id": "zombie",
            "linger.ms": 1}
    old = Producer(conf)
    old.init_transactions(T)
    old.begin_transaction()
    old.produce(topic, b"zombie", partition=0)
    assert old.flush(T) == 0
    new = Producer(conf)
    new.init_transactions(T)  # aborts the old instance's open transaction
    new.begin_transaction()
    new.produce(topic, b"fresh", partition=0)
    new.commit_transaction(T)
    with pytest.raises(KafkaException) as info:
        old.commit_transaction(T)
    assert info.value.args[0].fatal()
    assert "fenced" in str(info.value).lower()
    assert _read(server, topic, "read_committed", 1) == [b"fresh"]


def test_transaction_timeout_aborts_and_fences(server: Any) -> None:
    from confluent_kafka import KafkaException, Producer

    topic = _topic(server, "timeout")
    p = Producer({"bootstrap.servers": server.bootstrap, "transactional.id": "timeout",
                  "transaction.timeout.ms": 1000, "linger.ms": 1})
    p.init_transactions(T)
    p.begin_transaction()
    p.produce(topic, b"late", partition=0)
    assert p.flush(T) == 0
    raw = RawClient(server.host, server.port)
    try:
        deadline = time.monotonic() + T
        while True:  # the coordinator aborts it about a second after it started
            st = raw.call(65, 0, {"transactional_ids": ["timeout"]})["transaction_states"][0]
            if st["transaction_state"] == "CompleteAbort":
                break
            assert time.monotonic() < deadline, st
            time.sleep(0.05)  # polling a condition with a deadline, not synchronizing
    finally:
        raw.close()
    with pytest.raises(KafkaException):
        p.commit_transaction(T)
    # the aborted record is below the last stable offset now: read_committed moves on
    q = Producer({"bootstrap.servers": server.bootstrap, "transactional.id": "timeout-2"})
    q.init_transactions(T)
    q.begin_transaction()
    q.produce(topic, b"after", partition=0)
    q.commit_transaction(T)
    assert _read(server, topic, "read_committed", 1) == [b"after"]


def test_consume_transform_produce_commits_offsets_with_the_transaction(server: Any) -> None:
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    src = _topic(server, "ctp-in")
    dst = _topic(server, "ctp-out")
    seed = Producer({"bootstrap.servers": server.bootstrap})
    for i in range(6):
        seed.produce(src, b"%d" % i, partition=0)
    assert seed.flush(T) == 0
    group = "ctp-group"
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "isolation.level": "read_committed"})
    c.subscribe([src])
    p = Producer({"bootstrap.servers": server.bootstrap, "transactional.id": "ctp",
                  "linger.ms": 1})
    p.init_transactions(T)
    got: list[Any] = []
    deadline = time.monotonic() + T
    while len(got) < 6 and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append(m)
    assert len(got) == 6

    def committed() -> int:
        return c.committed([TopicPartition(src, 0)], T)[0].offset

    # librdkafka's read_committed consumer asks OffsetFetch for stable offsets: while the
    # transaction holds them the broker answers UNSTABLE_OFFSET_COMMIT and it retries (as
    # on Kafka), so the offsets held in the transaction are looked at without it
    peek = Consumer({"bootstrap.servers": server.bootstrap, "group.id": group,
                     "enable.auto.commit": False, "isolation.level": "read_uncommitted"})

    for batch, commit in ((got[:3], True), (got[3:], False)):
        p.begin_transaction()
        for m in batch:
            p.produce(dst, m.value() * 2, partition=0)
        p.send_offsets_to_transaction(
            [TopicPartition(src, 0, batch[-1].offset() + 1)], c.consumer_group_metadata(), T)
        assert p.flush(T) == 0
        if commit:
            assert peek.committed([TopicPartition(src, 0)], T)[0].offset < 0  # held
            with pytest.raises(KafkaException):  # read_committed: unstable until the commit
                c.committed([TopicPartition(src, 0)], 1.0)
            p.commit_transaction(T)
            assert committed() == 3
        else:
            p.abort_transaction(T)
            assert committed() == 3  # an aborted transaction's offsets never land
    c.close()
    peek.close()
    assert _read(server, dst, "read_committed", 3) == [b"00", b"11", b"22"]
