"""Issue 18.1: real clients speak the flexible versions logmq now advertises, and work.

Each client produces, consumes in a group and commits against an embedded server, and the
server's ``versions_seen`` shows which versions it used: confluent-kafka 2.16 (librdkafka)
fetches by topic id (Fetch v16) and asks offsets in the multi-group form (OffsetFetch v9);
kafka-python 3 uses SyncGroup v5, LeaveGroup v5 and batched FindCoordinator v6. The Java
client's share (Fetch v18, Produce v13, OffsetCommit/OffsetFetch v10) is exercised by the
oracle differential suite (tests/oracle), which runs it against logmq and Kafka 4.4.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator

import flexible_util as fx
import pytest

broker = fx.broker  # the fixture


@pytest.fixture
def srv(broker) -> Iterator[fx.ThreadServer]:
    broker.create_topic("t", partitions=2)
    s = fx.ThreadServer(broker)
    yield s
    s.close()


def _seen(s: fx.ThreadServer) -> dict[int, int]:
    """The newest version of each API used since the last call."""
    def take() -> dict[int, int]:
        out: dict[int, int] = {}
        for (api, v) in s.server.versions_seen:
            out[api] = max(v, out.get(api, -1))
        s.server.versions_seen.clear()
        return out

    return s.state(take)


def _at_least(seen: dict[int, int], want: dict[int, int]) -> None:
    low = {api: (seen.get(api), v) for api, v in want.items() if seen.get(api, -1) < v}
    assert not low, f"api: (used, expected at least) {low}"


def test_confluent_kafka_uses_topic_ids_and_flexible_versions(srv):
    from confluent_kafka import Consumer, Producer

    bs = f"{srv.host}:{srv.port}"
    p = Producer({"bootstrap.servers": bs})
    p.produce("t", b"x", partition=1)
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": bs, "group.id": "g", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        c.subscribe(["t"])
        got = None
        for _ in range(60):  # bounded: 60 polls of at most 0.5 s
            m = c.poll(0.5)
            if m is not None and not m.error():
                got = m
                break
        assert got is not None and got.value() == b"x"
        c.commit(message=got, asynchronous=False)
    finally:
        c.close()
    _at_least(_seen(srv), {18: 3, 3: 13, 0: 9, 1: 13, 8: 8, 9: 8})
    assert srv.server.broker.groups.fetch_offsets("g", None)[("t", 1)][0] == 1


def test_kafka_python_uses_the_newest_classic_group_versions(srv):
    import kafka

    bs = f"{srv.host}:{srv.port}"
    kp = kafka.KafkaProducer(bootstrap_servers=bs)
    kp.send("t", b"y", partition=0).get(10)
    kp.close()
    kc = kafka.KafkaConsumer("t", bootstrap_servers=bs, group_id="g2",
                             auto_offset_reset="earliest", consumer_timeout_ms=8000)
    try:
        values = []
        for r in kc:
            values.append(r.value)
            break
        assert values == [b"y"]
        kc.commit()
    finally:
        kc.close()
    _at_least(_seen(srv), {18: 3, 3: 9, 0: 9, 1: 12, 10: 4, 11: 6, 13: 5, 14: 5,
                           8: 8, 9: 8})


def test_aiokafka_and_kcat_still_work_at_their_versions(srv):
    import aiokafka

    bs = f"{srv.host}:{srv.port}"

    async def run() -> bytes:
        ap = aiokafka.AIOKafkaProducer(bootstrap_servers=bs)
        await ap.start()
        try:
            await ap.send_and_wait("t", b"z", partition=0)
        finally:
            await ap.stop()
        ac = aiokafka.AIOKafkaConsumer("t", bootstrap_servers=bs, group_id="g3",
                                       auto_offset_reset="earliest")
        await ac.start()
        try:
            r = await asyncio.wait_for(ac.getone(), 30)
            await ac.commit()
            return bytes(r.value)
        finally:
            await ac.stop()

    assert asyncio.run(run()) == b"z"
    kcat = shutil.which("kcat")
    assert kcat is not None, "kcat is installed in CI (apt-get install kcat)"
    subprocess.run([kcat, "-b", bs, "-P", "-t", "t", "-p", "1"], input="w\n", text=True,
                   timeout=30, check=True)
    out = subprocess.run([kcat, "-b", bs, "-C", "-t", "t", "-p", "1", "-e", "-o", "beginning",
                          "-q"], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.split() == ["w"]
    assert _seen(srv).get(1, -1) >= 4  # both fetched
