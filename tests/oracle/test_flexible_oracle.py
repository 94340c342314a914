"""Issue 18.1 against a real Apache Kafka 4.4: the advertised versions, and the answers to the
fields the newest versions add, the same from both brokers (raw wire calls, tests/wire_util).

The version table itself lives in tests/test_flexible_versions.py (CI runs it without a JVM);
here a real broker confirms it is what Kafka 4.4 advertises.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from .conftest import KafkaCluster, ServerProcess

pytestmark = pytest.mark.oracle

Z = b"\x00" * 16
SW = {"client_software_name": "logmq-oracle", "client_software_version": "1"}


@pytest.fixture(scope="module")
def both(kafka: KafkaCluster, logmq_server: ServerProcess) -> Iterator[dict[str, object]]:
    from wire_util import RawClient

    host, port = kafka.bootstrap.split(",")[0].split(":")
    clients = {"kafka": RawClient(host, int(port), timeout=30),
               "logmq": RawClient(logmq_server.host, logmq_server.port, timeout=30)}
    yield clients
    for c in clients.values():
        c.close()


def _each(both: dict, fn) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {name: fn(c) for name, c in both.items()}


def _same(both: dict, fn) -> object:  # type: ignore[no-untyped-def]
    got = _each(both, fn)
    assert got["kafka"] == got["logmq"], got
    return got["kafka"]


def _coordinator_ready(c) -> None:  # type: ignore[no-untyped-def]
    """Kafka creates its offsets topic on first use: wait (bounded) until it coordinates."""
    deadline = time.monotonic() + 60
    while True:
        r = c.call(10, 6, {"key_type": 0, "coordinator_keys": ["flex-probe"]})
        if r["coordinators"][0]["error_code"] == 0:
            d = c.call(15, 6, {"groups": ["flex-probe"], "include_authorized_operations": False})
            if d["groups"][0]["error_code"] not in (14, 15, 16):  # loading / not available
                return
        assert time.monotonic() < deadline, r
        time.sleep(0.2)  # polling interval of a bounded readiness wait


def test_kafka_4_4_advertises_the_table_logmq_follows(both):
    from test_flexible_versions import KAFKA_4_4

    from logmq.protocol import SUPPORTED_VERSIONS

    got = _each(both, lambda c: {k["api_key"]: (k["min_version"], k["max_version"])
                                 for k in c.call(18, 4, SW)["api_keys"]})
    kafka = {api: got["kafka"][api] for api in KAFKA_4_4}
    assert kafka == KAFKA_4_4
    assert {api: hi for api, (_lo, hi) in got["logmq"].items() if api in KAFKA_4_4} == \
        {api: hi for api, (_lo, hi) in KAFKA_4_4.items()}
    assert got["logmq"] == SUPPORTED_VERSIONS


def test_api_versions_v5_wrong_cluster_and_invalid_software(both):
    r = _same(both, lambda c: (lambda x: (x["error_code"], x["api_keys"]))(
        c.call(18, 5, {**SW, "cluster_id": "AAAAAAAAAAAAAAAAAAAAAA", "node_id": 0})))
    assert r == (129, [])
    _same(both, lambda c: c.call(18, 3, {"client_software_name": "no spaces",
                                         "client_software_version": "1"})["error_code"])


def test_topics_by_id_unknown_everywhere(both):
    ghost = uuid.uuid4().bytes

    def md(c):  # type: ignore[no-untyped-def]
        t = c.call(3, 13, {"topics": [{"name": None, "topic_id": ghost}],
                           "allow_auto_topic_creation": False})["topics"][0]
        return t["error_code"], t["name"], t["topic_id"]

    assert _same(both, md) == (100, None, ghost)

    def produce(c):  # type: ignore[no-untyped-def]
        r = c.call(0, 13, {"transactional_id": None, "acks": -1, "timeout_ms": 5000,
                           "topic_data": [{"topic_id": ghost, "partition_data": [
                               {"index": 0, "records": None}]}]})
        return r["responses"][0]["partition_responses"][0]["error_code"]

    assert _same(both, produce) == 100

    def delete(c):  # type: ignore[no-untyped-def]
        r = c.call(20, 6, {"topics": [{"name": None, "topic_id": ghost},
                                      {"name": "flex-none", "topic_id": Z}],
                           "timeout_ms": 5000})["responses"]
        # Kafka answers name-refused topics before id-refused ones: compare as a set
        return sorted((x["name"] or "", x["error_code"], x["error_message"]) for x in r)

    _same(both, delete)


def test_created_topic_id_matches_metadata_and_fetch(both):
    def create(c):  # type: ignore[no-untyped-def]
        t = c.call(19, 7, {"topics": [{"name": "flex-t", "num_partitions": 2,
                                       "replication_factor": 1, "assignments": [],
                                       "configs": [{"name": "retention.ms", "value": "86400000"}]}],
                           "timeout_ms": 10000, "validate_only": False})["topics"][0]
        cfg = {e["name"]: (e["value"], e["config_source"], e["read_only"])
               for e in t["configs"]}
        return (t["error_code"], t["num_partitions"], t["replication_factor"],
                cfg["retention.ms"], cfg["cleanup.policy"], cfg["min.insync.replicas"],
                t["topic_id"] != Z), t["topic_id"]

    got = _each(both, create)
    assert got["kafka"][0] == got["logmq"][0]
    ids = {name: v[1] for name, v in got.items()}
    deadline = time.monotonic() + 30
    for name, c in both.items():
        while True:  # Kafka's metadata shows a new topic a moment after CreateTopics answers
            t = c.call(3, 13, {"topics": [{"name": "flex-t", "topic_id": Z}],
                               "allow_auto_topic_creation": False})["topics"][0]
            if t["error_code"] == 0 and len(t["partitions"]) == 2:
                break
            assert time.monotonic() < deadline, t
            time.sleep(0.2)  # polling interval of a bounded wait
        assert t["topic_id"] == ids[name]

    def fetch(c, tid: bytes, v: int, offset: int, epoch: int,  # type: ignore[no-untyped-def]
              leader_epoch: int):
        topic = {"topic_id": tid} if v >= 13 else {"topic": "flex-t"}
        r = c.call(1, v, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1,
                          "max_bytes": 1 << 20, "isolation_level": 0, "session_id": 0,
                          "session_epoch": -1, "forgotten_topics_data": [], "rack_id": "",
                          "topics": [{**topic, "partitions": [
                              {"partition": p, "current_leader_epoch": leader_epoch,
                               "fetch_offset": offset, "last_fetched_epoch": epoch,
                               "log_start_offset": -1, "partition_max_bytes": 1 << 20}
                              for p in (0, 5)]}]})
        out = r["responses"][0]
        assert out.get("topic_id", tid) == tid
        return [(p["partition_index"], p["error_code"], p["high_watermark"],
                 p.get("diverging_epoch")) for p in out["partitions"]]

    for v, offset, epoch, le in [(18, 0, -1, -1), (13, 0, -1, 0), (12, 3, 0, 0),
                                 (12, 3, 0, -1), (12, 3, -1, 0), (16, 3, 0, 0)]:
        got = {name: fetch(c, ids[name], v, offset, epoch, le) for name, c in both.items()}
        assert got["kafka"] == got["logmq"], (v, got)

    def list_offsets(c):  # type: ignore[no-untyped-def]
        r = c.call(2, 11, {"replica_id": -1, "isolation_level": 0, "timeout_ms": 1000,
                           "topics": [{"name": "flex-t", "partitions": [
                               {"partition_index": 0, "current_leader_epoch": -1,
                                "timestamp": -6},
                               {"partition_index": 1, "current_leader_epoch": -1,
                                "timestamp": -5}]}]})
        return [(p["error_code"], p["offset"], p["leader_epoch"])
                for p in r["topics"][0]["partitions"]]

    _same(both, list_offsets)


def test_group_answers_at_the_newest_versions(both):
    for c in both.values():
        _coordinator_ready(c)

    def describe(c):  # type: ignore[no-untyped-def]
        g = c.call(15, 6, {"groups": ["flex-nope"],
                           "include_authorized_operations": False})["groups"][0]
        return g["error_code"], g["error_message"], g["group_state"]

    _same(both, describe)

    def commit_unknown(c):  # type: ignore[no-untyped-def]
        r = c.call(8, 10, {"group_id": "flex-g", "generation_id_or_member_epoch": -1,
                           "member_id": "", "group_instance_id": None, "topics": [
                               {"topic_id": uuid.uuid4().bytes, "partitions": [
                                   {"partition_index": 0, "committed_offset": 1,
                                    "committed_leader_epoch": -1, "committed_metadata": ""}]}]})
        return [p["error_code"] for p in r["topics"][0]["partitions"]]

    assert _same(both, commit_unknown) == [100]

    def cluster(c):  # type: ignore[no-untyped-def]
        r = c.call(60, 1, {"include_cluster_authorized_operations": False, "endpoint_type": 2})
        return r["error_code"], r["error_message"]

    _same(both, cluster)


def test_empty_group_id_in_classic_group_apis(both):
    """Kafka refuses an empty group id in the four classic group APIs before looking at
    anything else (tests/test_long_names.py holds logmq's own, stricter refusals)."""
    for c in both.values():
        _coordinator_ready(c)

    def codes(c):  # type: ignore[no-untyped-def]
        join = c.call(11, 9, {"group_id": "", "session_timeout_ms": 10000,
                              "rebalance_timeout_ms": 10000, "member_id": "",
                              "group_instance_id": None, "protocol_type": "consumer",
                              "protocols": [{"name": "range", "metadata": b""}],
                              "reason": None})
        sync = c.call(14, 5, {"group_id": "", "generation_id": 1, "member_id": "m",
                              "group_instance_id": None, "protocol_type": "consumer",
                              "protocol_name": "range", "assignments": []})
        beat = c.call(12, 4, {"group_id": "", "generation_id": 1, "member_id": "m",
                              "group_instance_id": None})
        leave = c.call(13, 5, {"group_id": "", "members": [
            {"member_id": "m", "group_instance_id": None, "reason": None}]})
        return (join["error_code"], join["member_id"], sync["error_code"],
                beat["error_code"], leave["error_code"], leave["members"])

    assert _same(both, codes) == (24, "", 24, 24, 24, [])
