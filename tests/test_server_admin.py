"""The admin surface over the wire (issue 13 item 4): each API answered as Apache Kafka 4.4
answers a one-broker cluster, checked with raw requests against an embedded server.

tests/oracle compares the same calls made by real clients against a real Kafka; these tests
pin the details (error codes, paging, config round trips) in well under a second each.
"""

from __future__ import annotations

import os
import sys

import pytest

import logmq
from logmq.codec.records import encode_batch
from logmq.kafka_codes import ErrorCode as E
from logmq.protocol import SUPPORTED_VERSIONS
from logmq.protocol.codec import SCHEMAS

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wire_util import RawClient, ThreadServer  # noqa: E402

LONG_MAX = str((1 << 63) - 1)
BASE_TS = 1_700_000_000_000


@pytest.fixture
def broker(tmp_path):
    b = logmq.open(str(tmp_path / "data"))
    yield b
    b.close()


@pytest.fixture
def server(broker):
    s = ThreadServer(broker)
    yield s
    s.close()


@pytest.fixture
def c(server):
    cl = RawClient(server.host, server.port)
    yield cl
    cl.close()


def _produce(c: RawClient, topic: str, partition: int, deltas: list[int], **kw: int) -> None:
    batch = encode_batch([(b"k", b"v%d" % d) for d in deltas],
                         timestamps=[BASE_TS + d for d in deltas], **kw)
    assert c.produce(topic, batch, partition)["error_code"] == 0


def _describe(c: RawClient, topic: str, rt: int = 2) -> dict[str, str | None]:
    r = c.call(32, 3, {"resources": [{"resource_type": rt, "resource_name": topic,
                                      "configuration_keys": None}],
                       "include_synonyms": False, "include_documentation": False})
    res = r["results"][0]
    assert res["error_code"] == 0, res
    return {e["name"]: e["value"] for e in res["configs"]}


# ---------------------------------------------------------------------- ApiVersions
def test_api_versions_lists_the_admin_apis(c):
    keys = {k["api_key"]: (k["min_version"], k["max_version"])
            for k in c.call(18, 2, {})["api_keys"]}
    for api, rng in {33: (0, 2), 35: (1, 5), 37: (0, 3), 42: (0, 3), 43: (0, 2), 44: (0, 1),
                     47: (0, 0), 60: (0, 2), 61: (0, 0), 75: (0, 0), 2: (1, 11)}.items():
        assert keys[api] == rng
    assert keys == dict(SUPPORTED_VERSIONS)


def test_unsupported_version_gets_an_error_not_a_closed_connection(c):
    # InitProducerId v6 (2PC) has a layout, but Kafka 4.4 does not advertise it, nor do we
    pid_max = SUPPORTED_VERSIONS[22][1]
    assert pid_max < SCHEMAS["InitProducerIdRequest"]["valid"][1]
    r = c.call(22, pid_max + 1, {"transactional_id": None, "transaction_timeout_ms": 1000})
    assert r["error_code"] == E.UNSUPPORTED_VERSION
    assert c.call(3, 1, {"topics": None})["brokers"]  # the connection still serves


# ---------------------------------------------------------------------- CreatePartitions
def test_create_partitions_grows_and_refuses_like_kafka(c, broker):
    broker.create_topic("t", partitions=1)
    req = {"timeout_ms": 5000, "validate_only": False}
    r = c.call(37, 3, {**req, "topics": [{"name": "t", "count": 3, "assignments": None}]})
    assert r["results"][0]["error_code"] == 0
    assert broker.partitions_for("t") == 3
    for count, msg in [(3, "Topic already has 3 partition(s)."),
                       (2, "The topic t currently has 3 partition(s); 2 would not be an "
                           "increase.")]:
        res = c.call(37, 3, {**req, "topics": [{"name": "t", "count": count,
                                                "assignments": None}]})["results"][0]
        assert (res["error_code"], res["error_message"]) == (E.INVALID_PARTITIONS, msg)
    res = c.call(37, 3, {**req, "topics": [{"name": "nope", "count": 2,
                                            "assignments": None}]})["results"][0]
    assert res["error_code"] == E.UNKNOWN_TOPIC_OR_PARTITION
    res = c.call(37, 3, {**req, "topics": [{"name": "t", "count": 4, "assignments": [
        {"broker_ids": [1]}]}]})["results"][0]
    assert res["error_code"] == E.INVALID_REPLICA_ASSIGNMENT
    res = c.call(37, 1, {**req, "validate_only": True, "topics": [
        {"name": "t", "count": 5, "assignments": [{"broker_ids": [0]}, {"broker_ids": [0]}]}]})
    assert res["results"][0]["error_code"] == 0 and broker.partitions_for("t") == 3
    res = c.call(37, 0, {**req, "topics": [
        {"name": "t", "count": 4, "assignments": [{"broker_ids": [0]}]}]})
    assert res["results"][0]["error_code"] == 0 and broker.partitions_for("t") == 4


# ---------------------------------------------------------------------- CreateTopics
def test_create_topics_assignment_and_exists_message(c, broker):
    base = {"timeout_ms": 5000, "validate_only": False}
    one = {"name": "a", "num_partitions": -1, "replication_factor": -1, "configs": [],
           "assignments": [{"partition_index": 0, "broker_ids": [0]},
                           {"partition_index": 1, "broker_ids": [0]}]}
    assert c.call(19, 4, {**base, "topics": [one]})["topics"][0]["error_code"] == 0
    assert broker.partitions_for("a") == 2
    again = c.call(19, 4, {**base, "topics": [one]})["topics"][0]
    assert again["error_code"] == E.TOPIC_ALREADY_EXISTS
    assert again["error_message"] == "Topic 'a' already exists."
    bad = dict(one, name="b", assignments=[{"partition_index": 0, "broker_ids": [1]}])
    assert c.call(19, 4, {**base, "topics": [bad]})["topics"][0]["error_code"] \
        == E.INVALID_REPLICA_ASSIGNMENT
    both = dict(one, name="c", num_partitions=2)
    assert c.call(19, 4, {**base, "topics": [both]})["topics"][0]["error_code"] \
        == E.INVALID_REQUEST
    assert "b" not in broker.list_topics() and "c" not in broker.list_topics()


# ---------------------------------------------------------------------- configs
def test_describe_configs_answers_kafka_values(c, broker):
    broker.create_topic("t", partitions=1)
    cfg = _describe(c, "t")
    assert cfg["compression.type"] == "producer"
    assert cfg["min.insync.replicas"] == "1"
    assert cfg["flush.messages"] == LONG_MAX
    assert cfg["retention.ms"] == "604800000"
    assert all(v is not None for k, v in cfg.items() if k != "max.queue.depth")
    broker.alter_topic_config("t", {"fsync": "always"})
    assert _describe(c, "t")["flush.messages"] == "1"
    broker.alter_topic_config("t", {"fsync": "never"})
    assert _describe(c, "t")["flush.ms"] == LONG_MAX


def test_describe_broker_configs(c, broker):
    cfg = _describe(c, "0", rt=4)
    assert cfg["log.retention.hours"] == "168"
    assert cfg["num.partitions"] == str(broker.num_partitions)
    assert cfg["auto.create.topics.enable"] == "true"
    r = c.call(32, 3, {"resources": [{"resource_type": 4, "resource_name": "7",
                                      "configuration_keys": None}]})
    assert r["results"][0]["error_code"] == E.INVALID_REQUEST


def _alter(c: RawClient, api: int, topic: str, configs: list[dict], v: int = 1,
           validate_only: bool = False) -> dict:
    r = c.call(api, v, {"resources": [{"resource_type": 2, "resource_name": topic,
                                       "configs": configs}], "validate_only": validate_only})
    return r["responses"][0]


def test_alter_configs_replaces_all_overrides(c, broker):
    broker.create_topic("t", partitions=1, config={"retention.ms": 1000})
    res = _alter(c, 33, "t", [{"name": "segment.bytes", "value": "1048576"},
                              {"name": "compression.type", "value": "producer"}])
    assert res["error_code"] == 0, res
    assert broker.describe_topic("t").overrides == {"segment.bytes": 1048576}
    res = _alter(c, 33, "t", [{"name": "compression.type", "value": "gzip"}])
    assert res["error_code"] == E.INVALID_CONFIG
    res = _alter(c, 33, "t", [{"name": "no.such.key", "value": "1"}])
    assert res["error_code"] == E.INVALID_CONFIG
    res = _alter(c, 33, "t", [{"name": "retention.ms", "value": "5"}], validate_only=True)
    assert res["error_code"] == 0 and broker.describe_topic("t").overrides == {
        "segment.bytes": 1048576}
    res = _alter(c, 33, "nope", [{"name": "retention.ms", "value": "5"}])
    assert res["error_code"] == E.UNKNOWN_TOPIC_OR_PARTITION
    # a describe -> alter round trip (librdkafka 0092) is accepted unchanged
    cfg = _describe(c, "t")
    kafka_keys = ["cleanup.policy", "retention.ms", "flush.messages", "flush.ms",
                  "compression.type", "min.insync.replicas", "segment.bytes"]
    res = _alter(c, 33, "t", [{"name": k, "value": cfg[k]} for k in kafka_keys])
    assert res["error_code"] == 0, res
    assert _describe(c, "t")["retention.ms"] == cfg["retention.ms"]


def test_incremental_alter_configs_operations(c, broker):
    broker.create_topic("t", partitions=1, config={"segment.bytes": 1 << 20})
    assert _alter(c, 44, "t", [{"name": "retention.ms", "config_operation": 0,
                                "value": "123456"}])["error_code"] == 0
    assert _describe(c, "t")["retention.ms"] == "123456"
    assert broker.describe_topic("t").overrides["segment.bytes"] == 1 << 20  # untouched
    assert _alter(c, 44, "t", [{"name": "cleanup.policy", "config_operation": 2,
                                "value": "compact"}], v=0)["error_code"] == 0
    assert set(str(_describe(c, "t")["cleanup.policy"]).split(",")) == {"delete", "compact"}
    assert _alter(c, 44, "t", [{"name": "cleanup.policy", "config_operation": 3,
                                "value": "delete"}])["error_code"] == 0
    assert _describe(c, "t")["cleanup.policy"] == "compact"
    assert _alter(c, 44, "t", [{"name": "retention.ms", "config_operation": 1,
                                "value": None}])["error_code"] == 0
    assert _describe(c, "t")["retention.ms"] == "604800000"
    res = _alter(c, 44, "t", [{"name": "retention.ms", "config_operation": 2, "value": "1"}])
    assert res["error_code"] == E.INVALID_CONFIG
    res = _alter(c, 44, "t", [{"name": "retention.ms", "config_operation": 0, "value": "1"},
                              {"name": "retention.ms", "config_operation": 0, "value": "2"}])
    assert res["error_code"] == E.INVALID_REQUEST


# ---------------------------------------------------------------------- groups
def _commit(c: RawClient, group: str, topic: str, partition: int, offset: int) -> int:
    r = c.call(8, 7, {"group_id": group, "generation_id_or_member_epoch": -1,
                      "member_id": "", "group_instance_id": None, "topics": [
                          {"name": topic, "partitions": [
                              {"partition_index": partition, "committed_offset": offset,
                               "committed_leader_epoch": -1, "committed_metadata": ""}]}]})
    return int(r["topics"][0]["partitions"][0]["error_code"])


def test_offset_commit_unknown_topic_or_partition(c, broker):
    broker.create_topic("t", partitions=1)
    assert _commit(c, "g", "nope", 0, 1) == E.UNKNOWN_TOPIC_OR_PARTITION
    assert _commit(c, "g", "t", 5, 1) == E.UNKNOWN_TOPIC_OR_PARTITION
    assert _commit(c, "g", "t", 0, 1) == 0
    assert broker.groups.fetch_offsets("g", None) == {("t", 0): (1, "")}


def test_delete_groups(c, broker):
    broker.create_topic("t", partitions=1)
    assert _commit(c, "g", "t", 0, 1) == 0
    r = c.call(42, 2, {"groups_names": ["g", "missing"]})
    assert {x["group_id"]: x["error_code"] for x in r["results"]} == {
        "g": 0, "missing": E.GROUP_ID_NOT_FOUND}
    assert broker.groups.fetch_offsets("g", None) == {}


def test_offset_delete(c, broker):
    broker.create_topic("t", partitions=2)
    broker.create_topic("u", partitions=1)
    for tp in [("t", 0), ("t", 1), ("u", 0)]:
        assert _commit(c, "g", tp[0], tp[1], 3) == 0
    r = c.call(47, 0, {"group_id": "g", "topics": [
        {"name": "t", "partitions": [{"partition_index": 0}]},
        {"name": "nope", "partitions": [{"partition_index": 0}]}]})
    assert r["error_code"] == 0
    codes = {(t["name"], p["partition_index"]): p["error_code"]
             for t in r["topics"] for p in t["partitions"]}
    assert codes == {("t", 0): 0, ("nope", 0): E.UNKNOWN_TOPIC_OR_PARTITION}
    assert set(broker.groups.fetch_offsets("g", None)) == {("t", 1), ("u", 0)}
    r = c.call(47, 0, {"group_id": "missing", "topics": []})
    assert r["error_code"] == E.GROUP_ID_NOT_FOUND


# ---------------------------------------------------------------------- ListOffsets
def _list(c: RawClient, topic: str, spec: int, v: int = 9, partition: int = 0) -> tuple:
    r = c.call(2, v, {"replica_id": -1, "isolation_level": 0, "timeout_ms": 1000, "topics": [
        {"name": topic, "partitions": [{"partition_index": partition, "timestamp": spec,
                                        "current_leader_epoch": -1}]}]})
    p = r["topics"][0]["partitions"][0]
    return p["error_code"], p["offset"], p["timestamp"]


def test_list_offsets_specs(c, broker):
    broker.create_topic("t", partitions=2)
    _produce(c, "t", 0, [0, 9000])          # offsets 0, 1
    _produce(c, "t", 0, [3000, 9000, 100])  # offsets 2, 3, 4: the max again, later
    _produce(c, "t", 0, [50])               # offset 5
    assert _list(c, "t", -3, v=7) == (0, 1, BASE_TS + 9000)
    assert _list(c, "t", -2) == (0, 0, -1)
    assert _list(c, "t", -1) == (0, 6, -1)
    assert _list(c, "t", -4, v=8) == (0, 0, -1)
    assert _list(c, "t", -5) == (0, -1, -1)
    assert _list(c, "t", BASE_TS + 5000) == (0, 1, BASE_TS + 9000)
    assert _list(c, "t", -3, partition=1) == (0, -1, -1)  # empty partition
    broker.delete_records(("t", 0), 3)
    assert _list(c, "t", -4) == (0, 3, -1)
    assert _list(c, "t", -3, partition=9)[0] == E.UNKNOWN_TOPIC_OR_PARTITION


# ---------------------------------------------------------------------- the rest
def test_describe_log_dirs(c, broker):
    broker.create_topic("t", partitions=2)
    _produce(c, "t", 1, [1, 2, 3])
    r = c.call(35, 4, {"topics": None})
    assert r["error_code"] == 0
    d = r["results"][0]
    assert d["log_dir"] == os.path.abspath(broker.path)
    assert d["total_bytes"] > 0 and d["usable_bytes"] > 0
    sizes = {p["partition_index"]: p["partition_size"] for t in d["topics"] if t["name"] == "t"
             for p in t["partitions"]}
    assert sizes[0] == 0 and sizes[1] == broker.partition_log("t", 1).size_bytes > 0
    r = c.call(35, 1, {"topics": [{"topic": "t", "partitions": [1]}]})
    assert [(t["name"], [p["partition_index"] for p in t["partitions"]])
            for t in r["results"][0]["topics"]] == [("t", [1])]


def test_describe_producers(c, broker):
    broker.create_topic("t", partitions=1)
    _produce(c, "t", 0, [1, 2], producer_id=42, producer_epoch=3, base_sequence=0)
    r = c.call(61, 0, {"topics": [{"name": "t", "partition_indexes": [0, 7]}]})
    p0, p7 = r["topics"][0]["partitions"]
    assert [(a["producer_id"], a["producer_epoch"], a["last_sequence"])
            for a in p0["active_producers"]] == [(42, 3, 1)]
    assert p7["error_code"] == E.UNKNOWN_TOPIC_OR_PARTITION


def test_describe_topic_partitions_pages(c, broker):
    broker.create_topic("a", partitions=3)
    broker.create_topic("b", partitions=1)
    r = c.call(75, 0, {"topics": [], "response_partition_limit": 2, "cursor": None})
    assert [(t["name"], [p["partition_index"] for p in t["partitions"]])
            for t in r["topics"]] == [("a", [0, 1])]
    assert r["next_cursor"] == {"topic_name": "a", "partition_index": 2}
    r = c.call(75, 0, {"topics": [], "response_partition_limit": 2,
                       "cursor": r["next_cursor"]})
    assert [(t["name"], [p["partition_index"] for p in t["partitions"]])
            for t in r["topics"]] == [("a", [2]), ("b", [0])]
    assert r["next_cursor"] is None
    assert r["topics"][0]["topic_id"].hex() == broker.topic_id("a")
    r = c.call(75, 0, {"topics": [{"name": "zz"}], "cursor": None})
    assert r["topics"][0]["error_code"] == E.UNKNOWN_TOPIC_OR_PARTITION


def test_elect_leaders_is_a_no_op(c, broker):
    broker.create_topic("t", partitions=1)
    r = c.call(43, 2, {"election_type": 0, "timeout_ms": 1000, "topic_partitions": [
        {"topic": "t", "partitions": [0, 4]}]})
    assert r["error_code"] == 0
    codes = [p["error_code"] for p in r["replica_election_results"][0]["partition_result"]]
    assert codes == [E.ELECTION_NOT_NEEDED, E.UNKNOWN_TOPIC_OR_PARTITION]
    r = c.call(43, 1, {"election_type": 1, "timeout_ms": 1000, "topic_partitions": None})
    assert r["error_code"] == 0 and r["replica_election_results"] == []


def test_api_without_a_handler_is_refused_in_its_own_layout(c):
    """ListPartitionReassignments (not served: nothing to reassign on one node):
    UNSUPPORTED_VERSION in its response layout (header v1, throttle_time_ms, error_code),
    and the connection keeps serving."""
    import struct

    frame = (struct.pack(">hhih", 46, 0, 99, 3) + b"raw" + b"\x00"
             + struct.pack(">i", 1000) + b"\x00" + b"\x00")
    c.sock.sendall(struct.pack(">i", len(frame)) + frame)
    resp = c.read_frame()
    corr, tags, throttle, code = struct.unpack_from(">iBih", resp, 0)
    assert (corr, tags, throttle, code) == (99, 0, 0, E.UNSUPPORTED_VERSION)
    assert c.call(3, 1, {"topics": None})["brokers"]


def test_api_key_kafka_does_not_define_closes_the_connection(c):
    import struct

    frame = struct.pack(">hhih", 999, 0, 5, 3) + b"raw"
    c.sock.sendall(struct.pack(">i", len(frame)) + frame)
    with pytest.raises(ConnectionError):
        c.read_frame()


def test_offset_delete_refuses_topics_an_active_group_consumes(c, broker):
    from wire_util import wait_until

    broker.create_topic("t", partitions=1)
    broker.create_topic("u", partitions=1)
    assert _commit(c, "g", "u", 0, 2) == 0
    member = broker.consumer("t", group="g")
    try:
        wait_until(lambda: member.poll(0.05) is not None and member.assignment(), 10,
                   "the embedded member's assignment")
        r = c.call(47, 0, {"group_id": "g", "topics": [
            {"name": "t", "partitions": [{"partition_index": 0}]},
            {"name": "u", "partitions": [{"partition_index": 0}]}]})
        codes = {t["name"]: t["partitions"][0]["error_code"] for t in r["topics"]}
        assert codes == {"t": E.GROUP_SUBSCRIBED_TO_TOPIC, "u": 0}
        assert ("u", 0) not in broker.groups.fetch_offsets("g", None)
    finally:
        member.close(commit=False)


def test_group_ids_that_cannot_be_ones_get_invalid_group_id(c):
    r = c.call(42, 2, {"groups_names": ["\x00", "fine-but-missing"]})
    assert [x["error_code"] for x in r["results"]] == [E.INVALID_GROUP_ID, E.GROUP_ID_NOT_FOUND]
    r = c.call(47, 0, {"group_id": "\x00", "topics": [
        {"name": "t", "partitions": [{"partition_index": 0}]}]})
    assert r["error_code"] in (E.INVALID_GROUP_ID, E.GROUP_ID_NOT_FOUND)
    assert c.call(3, 1, {"topics": None})["brokers"]
