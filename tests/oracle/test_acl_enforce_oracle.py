"""ACL enforcement against Apache Kafka 4.4: the same requests from a principal with one
ACL get the same error codes (and the same hidden topics) from both brokers.

Kafka gets a second listener, SASL_PLAINTEXT with PLAIN, where ``alice`` authenticates (its
PLAINTEXT listener stays ``User:ANONYMOUS``, the super user that sets things up). logmq runs
in-process with its test hook mapping the client id ``alice`` to ``User:alice`` (until its
SASL listener lands, that is how a principal reaches it without one).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_oracle import free_port
from wire_util import RawClient

from logmq.codec.records import encode_batch

from .conftest import KafkaCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from acl_util import Wire, secure_server  # noqa: E402

pytestmark = pytest.mark.oracle


class SaslKafka(KafkaCluster):
    """The oracle with a SASL_PLAINTEXT (PLAIN) listener beside its PLAINTEXT one."""

    sasl_port = 0

    def _properties(self, node: int) -> str:
        if not self.sasl_port:
            self.sasl_port = free_port()
        sasl = f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}"
        out = []
        for line in super()._properties(node).splitlines():
            key = line.split("=", 1)[0]
            if key in ("listeners", "advertised.listeners"):
                line += "," + sasl
            elif key == "listener.security.protocol.map":
                line += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
            out.append(line)
        out += ["sasl.enabled.mechanisms=PLAIN",
                "listener.name.sasl_plaintext.plain.sasl.jaas.config="
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                'user_alice="alice-secret";']
        return "\n".join(out) + "\n"


def sasl_client(port: int) -> RawClient:
    c = RawClient("127.0.0.1", port)
    assert c.call(17, 1, {"mechanism": "PLAIN"})["error_code"] == 0
    r = c.call(36, 2, {"auth_bytes": b"\0alice\0alice-secret"})
    assert r["error_code"] == 0, r
    return c


TOPICS = ("orders", "secret", "p-one", "p-two")


def setup_calls(c: Any) -> None:
    """Topics and alice's ACLs, by the super user."""
    r = c.call(19, 4, {"topics": [{"name": n, "num_partitions": 1, "replication_factor": 1,
                                   "assignments": [], "configs": []}
                                  for n in TOPICS],
                       "timeout_ms": 10000, "validate_only": False})
    assert [t["error_code"] for t in r["topics"]] == [0] * len(TOPICS)

    def acl(rt: int, name: str, pt: int, principal: str, op: int, perm: int) -> dict:
        return {"resource_type": rt, "resource_name": name, "resource_pattern_type": pt,
                "principal": principal, "host": "*", "operation": op, "permission_type": perm}

    r = c.call(30, 3, {"creations": [
        acl(2, "orders", 3, "User:alice", 3, 3), acl(2, "orders", 3, "User:alice", 4, 3),
        acl(2, "p-", 4, "User:alice", 3, 3), acl(2, "p-", 4, "User:alice", 4, 3),
        acl(2, "p-two", 3, "User:*", 4, 2),  # DENY beats the prefix ALLOW
        acl(3, "g2", 3, "User:alice", 3, 3)]})
    assert [x["error_code"] for x in r["results"]] == [0] * 6


@pytest.fixture(scope="module")
def alice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cluster = SaslKafka(tmp_path_factory.mktemp("kafka-enforce"), extra_config={
        "auto.create.topics.enable": "false",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS"})
    cluster.start()
    srv = secure_server(str(tmp_path_factory.mktemp("logmq-enforce") / "data"),
                        super_users="User:ANONYMOUS", auto_create_topics=False)
    srv._server.security.principal_hook = (  # type: ignore[union-attr]
        lambda c: "User:alice" if c.client_id == "alice" else "User:ANONYMOUS")
    try:
        admin_k = RawClient("127.0.0.1", cluster.ports[0])
        setup_calls(admin_k)
        with Wire(srv, "root") as admin_l:
            setup_calls(admin_l)
        deadline = time.monotonic() + 30  # Kafka makes its offsets topic on first lookup
        while admin_k.call(10, 2, {"key": "g2", "key_type": 0})["error_code"] != 0:
            assert time.monotonic() < deadline, "Kafka's group coordinator never came up"
            time.sleep(0.2)  # polling interval of a bounded wait
        ours, theirs = Wire(srv, "alice"), sasl_client(cluster.sasl_port)
        deadline = time.monotonic() + 20  # Kafka's broker applies the ACLs a moment later
        while time.monotonic() < deadline:
            r = theirs.call(1, 11, fetch_body("orders"))
            if r["responses"][0]["partitions"][0]["error_code"] == 0:
                break
            time.sleep(0.2)  # polling interval of a bounded wait
        yield {"kafka": theirs, "logmq": ours}
    finally:
        srv.stop()
        cluster.stop()


def fetch_body(topic: str) -> dict:
    return {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": topic, "partitions": [
                {"partition": 0, "current_leader_epoch": -1, "fetch_offset": 0,
                 "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
            "forgotten_topics_data": [], "rack_id": ""}


def produce_body(topic: str, txn: str | None = None, transactional: bool = False) -> dict:
    batch = encode_batch([(b"k", b"v")], producer_id=1000 if transactional else -1,
                         producer_epoch=0 if transactional else -1,
                         base_sequence=0 if transactional else -1, transactional=transactional)
    return {"transactional_id": txn, "acks": -1, "timeout_ms": 5000, "topic_data": [
        {"name": topic, "partition_data": [{"index": 0, "records": batch}]}]}


def part_codes(key: str, parts: str, code: str = "error_code") -> Callable[[dict], Any]:
    return lambda r: sorted((t.get("name") or t.get("topic"), [p[code] for p in t[parts]])
                            for t in r[key])


def top(r: dict) -> Any:
    return r["error_code"]


GROUP_JOIN = {"group_id": "g", "session_timeout_ms": 10000, "rebalance_timeout_ms": 10000,
              "member_id": "", "group_instance_id": None, "protocol_type": "consumer",
              "protocols": [{"name": "range", "metadata": b""}]}
COMMIT = {"group_id": "g", "generation_id_or_member_epoch": -1, "member_id": "",
          "group_instance_id": None, "topics": [{"name": "orders", "partitions": [
              {"partition_index": 0, "committed_offset": 1, "committed_leader_epoch": -1,
               "committed_metadata": None}]}]}
META = {"allow_auto_topic_creation": False, "include_cluster_authorized_operations": True,
        "include_topic_authorized_operations": True}

#: name -> (api, version, body, what to compare)
CASES: dict[str, tuple[int, int, dict, Callable[[dict], Any]]] = {
    "produce_allowed": (0, 8, produce_body("orders"),
                        part_codes("responses", "partition_responses")),
    "produce_refused": (0, 8, produce_body("secret"),
                        part_codes("responses", "partition_responses")),
    # a transactional id with plain batches: Kafka checks it only for transactional ones
    "produce_txn_id_plain_batch": (0, 8, produce_body("orders", "tx"),
                                   part_codes("responses", "partition_responses")),
    "produce_txn_refused": (0, 8, produce_body("orders", "tx", transactional=True),
                            part_codes("responses", "partition_responses")),
    "fetch": (1, 11, {**fetch_body("orders"), "topics": fetch_body("orders")["topics"]
                      + fetch_body("secret")["topics"]},
              part_codes("responses", "partitions")),
    "list_offsets": (2, 7, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": n, "partitions": [{"partition_index": 0, "current_leader_epoch": -1,
                                    "timestamp": -1}]} for n in ("orders", "secret")]},
        part_codes("topics", "partitions")),
    "metadata_all": (3, 8, {"topics": None, **META},
                     lambda r: (sorted((t["name"], t["error_code"],
                                        t["topic_authorized_operations"])
                                       for t in r["topics"]),
                                r["cluster_authorized_operations"])),
    "metadata_named": (3, 8, {"topics": [{"name": "secret"}, {"name": "orders"}], **META},
                       lambda r: sorted((t["name"], t["error_code"]) for t in r["topics"])),
    "create_topics": (19, 4, {"topics": [{"name": "new", "num_partitions": 1,
                                          "replication_factor": 1, "assignments": [],
                                          "configs": []}], "timeout_ms": 5000,
                              "validate_only": False},
                      lambda r: [(t["name"], t["error_code"]) for t in r["topics"]]),
    "delete_topics": (20, 3, {"topic_names": ["secret", "orders"], "timeout_ms": 5000},
                      lambda r: sorted((t["name"], t["error_code"]) for t in r["responses"])),
    "delete_records": (21, 1, {"topics": [{"name": "orders", "partitions": [
        {"partition_index": 0, "offset": 0}]}], "timeout_ms": 5000},
        part_codes("topics", "partitions")),
    "init_producer_id": (22, 1, {"transactional_id": None, "transaction_timeout_ms": 60000},
                         top),
    "init_producer_id_txn": (22, 1, {"transactional_id": "tx",
                                     "transaction_timeout_ms": 60000}, top),
    "find_coordinator_group": (10, 2, {"key": "g", "key_type": 0}, top),
    "find_coordinator_txn": (10, 2, {"key": "tx", "key_type": 1}, top),
    "join_group": (11, 5, GROUP_JOIN, top),
    "offset_commit": (8, 7, COMMIT, part_codes("topics", "partitions")),
    "offset_fetch": (9, 5, {"group_id": "g", "topics": None, "require_stable": False}, top),
    "describe_groups": (15, 4, {"groups": ["g"], "include_authorized_operations": True},
                        lambda r: [(g["group_id"], g["error_code"]) for g in r["groups"]]),
    "list_groups": (16, 2, {"states_filter": []}, lambda r: (r["error_code"], r["groups"])),
    "delete_groups": (42, 2, {"groups_names": ["g"]},
                      lambda r: [(g["group_id"], g["error_code"]) for g in r["results"]]),
    "describe_configs": (32, 3, {"resources": [
        {"resource_type": 2, "resource_name": "secret", "configuration_keys": ["x"]},
        {"resource_type": 4, "resource_name": "0", "configuration_keys": ["x"]}],
        "include_synonyms": False, "include_documentation": False},
        lambda r: sorted((x["resource_name"], x["error_code"]) for x in r["results"])),
    "alter_configs": (33, 2, {"resources": [
        {"resource_type": 2, "resource_name": "orders",
         "configs": [{"name": "retention.ms", "value": "1000"}]}], "validate_only": True},
        lambda r: [(x["resource_name"], x["error_code"]) for x in r["responses"]]),
    "create_partitions": (37, 3, {"topics": [{"name": "orders", "count": 2,
                                              "assignments": None}],
                                  "timeout_ms": 5000, "validate_only": True},
                          lambda r: [(x["name"], x["error_code"]) for x in r["results"]]),
    "describe_log_dirs": (35, 4, {"topics": None}, top),
    "describe_acls": (29, 3, {"resource_type_filter": 1, "resource_name_filter": None,
                              "pattern_type_filter": 1, "principal_filter": None,
                              "host_filter": None, "operation": 1, "permission_type": 1}, top),
    "create_acls": (30, 3, {"creations": [
        {"resource_type": 2, "resource_name": "x", "resource_pattern_type": 3,
         "principal": "User:alice", "host": "*", "operation": 3, "permission_type": 3}]},
        lambda r: [x["error_code"] for x in r["results"]]),
    "describe_client_quotas": (48, 1, {"components": [], "strict": False}, top),
    "produce_prefixed": (0, 8, produce_body("p-one"),
                         part_codes("responses", "partition_responses")),
    "produce_denied": (0, 8, produce_body("p-two"),
                       part_codes("responses", "partition_responses")),
    "fetch_denied_write_only": (1, 11, fetch_body("p-two"),
                                part_codes("responses", "partitions")),
    "offset_commit_group_allowed": (8, 7, {**COMMIT, "group_id": "g2", "topics": [
        {"name": n, "partitions": [{"partition_index": 0, "committed_offset": 0,
                                    "committed_leader_epoch": -1,
                                    "committed_metadata": None}]}
        for n in ("orders", "secret")]}, part_codes("topics", "partitions")),
    "offset_fetch_group_allowed": (9, 5, {"group_id": "g2", "topics": None,
                                          "require_stable": False},
                                   lambda r: (r["error_code"], part_codes(
                                       "topics", "partitions")(r))),
    "join_group_allowed": (11, 5, {**GROUP_JOIN, "group_id": "g2"}, top),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_answer_for_alice(alice, case):
    api, version, body, observe = CASES[case]
    got = {k: observe(alice[k].call(api, version, body)) for k in ("logmq", "kafka")}
    deadline = time.monotonic() + 20
    while got["kafka"] in RETRIABLE and time.monotonic() < deadline:
        time.sleep(0.2)  # Kafka's producer id / coordinator still loading: bounded retry
        got["kafka"] = observe(alice["kafka"].call(api, version, body))
    assert got["logmq"] == got["kafka"]


RETRIABLE = (14, 15)  # COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE
