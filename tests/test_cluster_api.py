"""One module, two backends: ``logmq.connect(dir)`` and ``logmq.connect("kafka://...")`` must
answer alike, so an app moves to a cluster by changing its target string.

The main suite runs the kafka:// side against ``logmq serve`` (the plugin's in-process
server); tests/oracle/test_cluster_kafka.py runs these same functions against Apache Kafka.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import logmq
from logmq.broker.partitioner import key_partition
from logmq.errors import (
    ConfigError,
    InvalidPartitionError,
    TopicExistsError,
    UnknownTopicError,
    UnsupportedOnClusterError,
)
from logmq.testing import LogMQServer
from logmq.types import Record, TopicPartition


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``logmq serve`` in this process (auto topic creation off, as on the oracle's Kafka)."""
    server = LogMQServer(tmp_path_factory.mktemp("served"), auto_create_topics=False).start()
    try:
        yield f"kafka://{server.bootstrap}"
    finally:
        server.stop()


@pytest.fixture(params=["embedded", "kafka"])
def target(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "embedded":
        return str(tmp_path / "log")
    return str(request.getfixturevalue("served"))


@pytest.fixture
def log(target: str) -> Iterator[Any]:
    with logmq.connect(target, **({"auto_create_topics": False}
                                  if not target.startswith("kafka://") else {})) as lg:
        yield lg


def name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def is_cluster(log: Any) -> bool:
    return str(log.path).startswith("kafka://")


def poll_n(c: Any, n: int, timeout: float = 30.0) -> list[Record]:
    out: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out.extend(c.poll(0.5))
    return out


def fill(log: Any, topic: str, n: int, partition: int | None = None) -> None:
    with log.producer() as p:
        futs = [p.send(topic, b"v%d" % i, key=b"k%d" % i, headers=[("i", b"%d" % i)],
                       partition=partition, timestamp=1_700_000_000_000 + i) for i in range(n)]
        for f in futs:
            f.result(30)


def test_topic_lifecycle(log: Any) -> None:
    t = name()
    d = log.create_topic(t, 3, {"retention.ms": 123456})
    assert d.name == t and [p.partition for p in d.partitions] == [0, 1, 2]
    assert d.overrides == {"retention.ms": 123456}
    assert d.config["retention.ms"] == 123456 and d.config["cleanup.policy"] == "delete"
    with pytest.raises(TopicExistsError):
        log.create_topic(t, 3)
    assert log.create_topic(t, 1, exist_ok=True).name == t
    assert t in log.list_topics() and log.partitions_for(t) == 3
    log.delete_topic(t)
    assert t not in log.list_topics()
    with pytest.raises(UnknownTopicError):
        log.describe_topic(t)
    with pytest.raises(UnknownTopicError):
        log.delete_topic(t)


def test_records_round_trip_with_offsets_and_times(log: Any) -> None:
    t = name()
    log.create_topic(t, 1)
    fill(log, t, 10, partition=0)
    with log.producer() as p:
        p.send(t, None, key=b"gone", partition=0).result(30)  # tombstone != b""
        p.send(t, b"", key=None, partition=0).result(30)
    tp = TopicPartition(t, 0)
    assert log.offsets(tp) == (0, 12)
    c = log.consumer(t, auto_offset_reset="earliest")
    assert c.position(tp) == 0
    got = poll_n(c, 12)
    assert [(r.offset, r.key, r.value) for r in got[:2]] == [(0, b"k0", b"v0"), (1, b"k1", b"v1")]
    assert got[3].headers == [("i", b"3")] and got[3].timestamp == 1_700_000_000_003
    assert (got[10].value, got[11].value, got[11].key) == (None, b"", None)
    assert c.position(tp) == 12 and c.lag(tp) == 0
    c.seek(tp, 4)
    assert [r.offset for r in poll_n(c, 8)][:2] == [4, 5]
    found = log.offsets_for_times({tp: 1_700_000_000_007})
    assert found[tp] is not None and found[tp].offset == 7
    assert log.offsets_for_times({tp: 1_800_000_000_000})[tp] is None
    c.seek_to_timestamp(1_700_000_000_005)
    assert poll_n(c, 1)[0].offset == 5
    c.close()


def test_latest_reset_and_assign(log: Any) -> None:
    t = name()
    log.create_topic(t, 2)
    fill(log, t, 4, partition=1)
    c = log.consumer(auto_offset_reset="latest")
    c.assign([(t, 1)])
    assert c.assignment() == {TopicPartition(t, 1)} and c.position((t, 1)) == 4
    fill(log, t, 2, partition=1)
    assert [r.offset for r in poll_n(c, 2)] == [4, 5]
    with pytest.raises(InvalidPartitionError):
        c.assign([(t, 7)])
    c.close()


def test_keys_land_on_the_same_partitions(log: Any) -> None:
    t = name()
    log.create_topic(t, 5)
    with log.producer() as p:
        metas = [p.send(t, b"x", key=b"user-%d" % i).result(30) for i in range(20)]
    assert [m.partition for m in metas] == [key_partition(b"user-%d" % i, 5) for i in range(20)]
    with log.producer(partitioner=logmq.murmur2_partitioner) as p:
        metas = [p.send(t, b"x", key=b"user-%d" % i).result(30) for i in range(20)]
    assert [m.partition for m in metas] == [logmq.murmur2_partitioner(b"user-%d" % i, 5)
                                           for i in range(20)]


def test_group_commit_resume_and_admin_reset(log: Any) -> None:
    t, g = name(), name("g")
    log.create_topic(t, 2)
    fill(log, t, 10)
    c = log.consumer(t, group=g, auto_offset_reset="earliest", enable_auto_commit=False)
    got = poll_n(c, 10)
    assert len(got) == 10
    c.commit()
    committed = {tp: c.committed(tp) for tp in (TopicPartition(t, 0), TopicPartition(t, 1))}
    assert sum(v or 0 for v in committed.values()) == 10
    c.close()
    fill(log, t, 4)
    c2 = log.consumer(t, group=g, auto_offset_reset="earliest")
    assert {r.value for r in poll_n(c2, 4)} == {b"v0", b"v1", b"v2", b"v3"}
    c2.close(commit=False)
    assert g in [row[0] for row in log.groups.list_groups()]
    offs = log.groups.fetch_offsets(g, None)
    assert {k: v[0] for k, v in offs.items()} == {(tp.topic, tp.partition): v
                                                 for tp, v in committed.items()}
    log.groups.commit_offsets(g, -1, "", {(t, 0): (0, None), (t, 1): (0, None)})
    c3 = log.consumer(t, group=g, auto_offset_reset="latest")
    assert len(poll_n(c3, 14)) == 14
    c3.close(commit=False)


def test_delete_records(log: Any) -> None:
    t = name()
    log.create_topic(t, 1)
    fill(log, t, 6, partition=0)
    assert log.delete_records((t, 0), 4) == 4
    assert log.start_offset((t, 0)) == 4
    c = log.consumer(t, auto_offset_reset="earliest")
    assert [r.offset for r in poll_n(c, 2)] == [4, 5]
    c.close()


def test_unknown_names_raise_typed_errors(log: Any) -> None:
    with pytest.raises(UnknownTopicError):
        log.end_offset((name("missing"), 0))
    with log.producer() as p, pytest.raises(UnknownTopicError):
        p.send(name("missing"), b"x")
    t = name()
    log.create_topic(t, 1)
    with pytest.raises(InvalidPartitionError):
        log.end_offset((t, 3))
    with log.producer() as p, pytest.raises(InvalidPartitionError):
        p.send(t, b"x", partition=1)


def test_local_only_calls(log: Any) -> None:
    t = name()
    log.create_topic(t, 1)
    if not is_cluster(log):
        with log.producer() as p:
            assert p.send(t, b"a", expected_offset=0).result(10).offset == 0
        return
    with log.producer() as p, pytest.raises(UnsupportedOnClusterError, match="expected_offset"):
        p.send(t, b"a", expected_offset=0)
    for call in (lambda: log.append_batches((t, 0), b""),
                 lambda: log.append_to_stream(t, b"k", [b"e"]),
                 lambda: log.read_batches((t, 0), 0)):
        with pytest.raises(UnsupportedOnClusterError):
            call()
    with pytest.raises(UnsupportedOnClusterError, match="fsync"):
        log.create_topic(name(), 1, {"fsync": "always"})


def test_connect_targets(tmp_path: Any) -> None:
    with logmq.connect(f"file://{tmp_path}/a") as a:
        assert isinstance(a, logmq.Broker) and a.path.endswith("/a")
    for bad in ("http://x", "kafka://", "kafka://host-without-port", "kafka://u:p@h:1"):
        with pytest.raises(ConfigError):
            logmq.connect(bad)


def test_kafka_url_settings_become_librdkafka_config() -> None:
    from logmq.cluster.common import client_config, parse_kafka_url

    boot, settings = parse_kafka_url(
        "kafka://a:9092,b:9093?security_protocol=SASL_SSL&sasl_mechanism=SCRAM-SHA-512")
    cfg = client_config(boot, {**settings, "sasl_username": "u", "ssl_cafile": "/ca.pem",
                               "socket.timeout.ms": 5000})
    assert cfg["bootstrap.servers"] == "a:9092,b:9093"
    assert (cfg["security.protocol"], cfg["sasl.mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (cfg["sasl.username"], cfg["ssl.ca.location"]) == ("u", "/ca.pem")
    assert cfg["socket.timeout.ms"] == 5000


def test_unreachable_cluster_is_a_bounded_typed_error() -> None:
    from logmq.errors import KafkaTimeoutError

    t0 = time.monotonic()
    with logmq.connect("kafka://127.0.0.1:1", request_timeout=1) as log, \
            pytest.raises(KafkaTimeoutError):
        log.list_topics()
    assert time.monotonic() - t0 < 10
