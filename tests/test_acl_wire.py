"""ACLs checked on the wire, API by API, with Kafka's codes (raw requests, one client id per
principal: see tests/acl_util.py)."""

from __future__ import annotations

import os
import sys

import pytest

from logmq.codec.records import encode_batch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from acl_util import PT, RT, P, Wire, grant, secure_server, security  # noqa: E402

TOPIC_DENIED, GROUP_DENIED, CLUSTER_DENIED, TXN_DENIED = 29, 30, 31, 53


@pytest.fixture
def srv(tmp_path):
    s = secure_server(str(tmp_path / "d"))
    s.create_topic("orders")
    s.create_topic("secret")
    yield s
    s.stop()


def produce(w: Wire, topic: str, txn: str | None = None) -> int:
    batch = encode_batch([(b"k", b"v")], producer_id=7, producer_epoch=0, base_sequence=0,
                         transactional=True) if txn else encode_batch([(b"k", b"v")])
    r = w.call(0, 8, {"transactional_id": txn, "acks": -1, "timeout_ms": 5000, "topic_data": [
        {"name": topic, "partition_data": [{"index": 0, "records": batch}]}]})
    return r["responses"][0]["partition_responses"][0]["error_code"]


def fetch(w: Wire, *topics: str) -> dict[str, int]:
    r = w.call(1, 11, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20,
                       "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                       "topics": [{"topic": t, "partitions": [
                           {"partition": 0, "current_leader_epoch": -1, "fetch_offset": 0,
                            "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}
                           for t in topics],
                       "forgotten_topics_data": [], "rack_id": ""})
    return {t["topic"]: t["partitions"][0]["error_code"] for t in r["responses"]}


def metadata(w: Wire, topics: list[str] | None, auto: bool = False) -> dict[str, int]:
    r = w.call(3, 8, {"topics": None if topics is None else [{"name": t} for t in topics],
                      "allow_auto_topic_creation": auto,
                      "include_cluster_authorized_operations": False,
                      "include_topic_authorized_operations": False})
    return {t["name"]: t["error_code"] for t in r["topics"]}


def test_principal_without_acls_is_refused_everywhere(srv):
    with Wire(srv, "alice") as w:
        assert produce(w, "orders") == TOPIC_DENIED
        assert fetch(w, "orders") == {"orders": TOPIC_DENIED}
        assert metadata(w, None) == {}  # hidden, not refused
        assert metadata(w, ["orders"]) == {"orders": TOPIC_DENIED}
        r = w.call(19, 4, {"topics": [{"name": "new", "num_partitions": 1,
                                       "replication_factor": 1, "assignments": [],
                                       "configs": []}], "timeout_ms": 1000,
                           "validate_only": False})
        assert r["topics"][0]["error_code"] == TOPIC_DENIED
        r = w.call(20, 3, {"topic_names": ["orders"], "timeout_ms": 1000})
        assert r["responses"][0]["error_code"] == TOPIC_DENIED
        r = w.call(21, 1, {"topics": [{"name": "orders", "partitions": [
            {"partition_index": 0, "offset": -1}]}], "timeout_ms": 1000})
        assert r["topics"][0]["partitions"][0]["error_code"] == TOPIC_DENIED
        r = w.call(22, 1, {"transactional_id": None, "transaction_timeout_ms": 1000})
        assert r["error_code"] == CLUSTER_DENIED
        r = w.call(10, 2, {"key": "g", "key_type": 0})
        assert r["error_code"] == GROUP_DENIED
        r = w.call(10, 2, {"key": "tx", "key_type": 1})
        assert r["error_code"] == TXN_DENIED
        r = w.call(32, 3, {"resources": [
            {"resource_type": 2, "resource_name": "orders", "configuration_keys": None},
            {"resource_type": 4, "resource_name": "0", "configuration_keys": None}],
            "include_synonyms": False, "include_documentation": False})
        assert [x["error_code"] for x in r["results"]] == [TOPIC_DENIED, CLUSTER_DENIED]
        r = w.call(37, 3, {"topics": [{"name": "orders", "count": 2, "assignments": None}],
                           "timeout_ms": 1000, "validate_only": False})
        assert r["results"][0]["error_code"] == TOPIC_DENIED
        r = w.call(35, 4, {"topics": None})
        assert r["error_code"] == CLUSTER_DENIED
        r = w.call(29, 3, {"resource_type_filter": 1, "resource_name_filter": None,
                           "pattern_type_filter": 1, "principal_filter": None,
                           "host_filter": None, "operation": 1, "permission_type": 1})
        assert r["error_code"] == CLUSTER_DENIED
    assert srv.broker.list_topics() == ["orders", "secret"]  # nothing was created or deleted
    assert srv.broker.end_offset(("orders", 0)) == 0


def test_group_apis_need_group_acls(srv):
    grant(srv, "User:alice", "READ", "orders")
    with Wire(srv, "alice") as w:
        r = w.call(11, 5, {"group_id": "g", "session_timeout_ms": 10000,
                           "rebalance_timeout_ms": 10000, "member_id": "",
                           "group_instance_id": None, "protocol_type": "consumer",
                           "protocols": [{"name": "range", "metadata": b""}]})
        assert r["error_code"] == GROUP_DENIED
        r = w.call(8, 7, {"group_id": "g", "generation_id_or_member_epoch": -1,
                          "member_id": "", "group_instance_id": None, "topics": [
                              {"name": "orders", "partitions": [
                                  {"partition_index": 0, "committed_offset": 1,
                                   "committed_leader_epoch": -1,
                                   "committed_metadata": None}]}]})
        assert r["topics"][0]["partitions"][0]["error_code"] == GROUP_DENIED
        r = w.call(9, 5, {"group_id": "g", "topics": None, "require_stable": False})
        assert r["error_code"] == GROUP_DENIED
        r = w.call(15, 4, {"groups": ["g"], "include_authorized_operations": False})
        assert r["groups"][0]["error_code"] == GROUP_DENIED
        r = w.call(42, 2, {"groups_names": ["g"]})
        assert r["results"][0]["error_code"] == GROUP_DENIED
        grant(srv, "User:alice", "READ", "g", rtype=RT.GROUP)
        r = w.call(8, 7, {"group_id": "g", "generation_id_or_member_epoch": -1,
                          "member_id": "", "group_instance_id": None, "topics": [
                              {"name": t, "partitions": [
                                  {"partition_index": 0, "committed_offset": 1,
                                   "committed_leader_epoch": -1,
                                   "committed_metadata": None}]} for t in ("orders", "secret")]})
        codes = {t["name"]: t["partitions"][0]["error_code"] for t in r["topics"]}
        assert codes == {"orders": 0, "secret": TOPIC_DENIED}
        r = w.call(9, 5, {"group_id": "g", "topics": None, "require_stable": False})
        assert r["error_code"] == 0
        assert [t["name"] for t in r["topics"]] == ["orders"]
        r = w.call(16, 2, {"states_filter": []})
        assert [g["group_id"] for g in r["groups"]] == ["g"]  # READ implies DESCRIBE
    with Wire(srv, "bob") as w:
        assert w.call(16, 2, {"states_filter": []})["groups"] == []  # hidden


def test_allow_then_deny_beats_allow(srv):
    grant(srv, "User:alice", "WRITE,READ", "orders")
    with Wire(srv, "alice") as w:
        assert produce(w, "orders") == 0
        assert fetch(w, "orders", "secret") == {"orders": 0, "secret": TOPIC_DENIED}
        assert metadata(w, None) == {"orders": 0}
        grant(srv, "User:*", "WRITE", "orders", perm=P.DENY)
        assert produce(w, "orders") == TOPIC_DENIED
        assert fetch(w, "orders") == {"orders": 0}


def test_prefixed_acls_and_create_rights(srv):
    grant(srv, "User:alice", "WRITE,CREATE,DESCRIBE", "logs-", pattern=PT.PREFIXED)
    with Wire(srv, "alice") as w:
        assert metadata(w, ["logs-a"], auto=True) == {"logs-a": 0}  # auto-created
        assert produce(w, "logs-a") == 0
        assert produce(w, "orders") == TOPIC_DENIED
        assert metadata(w, ["other"], auto=True) == {"other": TOPIC_DENIED}
    assert "logs-a" in srv.broker.list_topics() and "other" not in srv.broker.list_topics()
    grant(srv, "User:bob", "WRITE,DESCRIBE", "*")
    with Wire(srv, "bob") as w:  # WRITE without CREATE: the topic is not made by a produce
        assert metadata(w, ["nope"], auto=True) == {"nope": TOPIC_DENIED}
        assert produce(w, "nope") == 3  # UNKNOWN_TOPIC_OR_PARTITION
        r = w.call(22, 1, {"transactional_id": None, "transaction_timeout_ms": 1000})
        assert r["error_code"] == 0  # WRITE on some topic is enough for idempotence
    assert "nope" not in srv.broker.list_topics()


def test_super_user_does_everything(srv):
    with Wire(srv, "admin") as w:
        assert produce(w, "secret") == 0
        assert fetch(w, "secret") == {"secret": 0}
        assert set(metadata(w, None)) == {"orders", "secret"}
        r = w.call(20, 3, {"topic_names": ["secret"], "timeout_ms": 1000})
        assert r["responses"][0]["error_code"] == 0
    assert srv.broker.list_topics() == ["orders"]


def test_transactional_id_acls(srv):
    grant(srv, "User:alice", "WRITE", "orders")
    with Wire(srv, "alice") as w:
        assert produce(w, "orders", txn="tx1") == TXN_DENIED
        r = w.call(22, 1, {"transactional_id": "tx1", "transaction_timeout_ms": 1000})
        assert r["error_code"] == TXN_DENIED


def test_acl_apis_roundtrip_and_cluster_rights(srv):
    creation = {"resource_type": 2, "resource_name": "orders", "resource_pattern_type": 3,
                "principal": "User:carol", "host": "*", "operation": 3, "permission_type": 3}
    bad = dict(creation, principal="carol")
    with Wire(srv, "alice") as w:
        r = w.call(30, 3, {"creations": [creation]})
        assert r["results"][0]["error_code"] == CLUSTER_DENIED
    with Wire(srv, "admin") as w:
        r = w.call(30, 3, {"creations": [creation, bad]})
        assert [x["error_code"] for x in r["results"]] == [0, 42]
        r = w.call(29, 3, {"resource_type_filter": 2, "resource_name_filter": "orders",
                           "pattern_type_filter": 2, "principal_filter": None,
                           "host_filter": None, "operation": 1, "permission_type": 1})
        assert r["error_code"] == 0
        assert r["resources"] == [{"resource_type": 2, "resource_name": "orders",
                                   "pattern_type": 3, "acls": [
                                       {"principal": "User:carol", "host": "*",
                                        "operation": 3, "permission_type": 3}]}]
    with Wire(srv, "carol") as w:
        assert fetch(w, "orders") == {"orders": 0}
    with Wire(srv, "admin") as w:
        r = w.call(31, 3, {"filters": [{"resource_type_filter": 1, "resource_name_filter": None,
                                        "pattern_type_filter": 1, "principal_filter":
                                            "User:carol", "host_filter": None,
                                        "operation": 1, "permission_type": 1}]})
        assert len(r["filter_results"][0]["matching_acls"]) == 1
    assert len(security(srv).acls) == 0
    with Wire(srv, "carol") as w:
        assert fetch(w, "orders") == {"orders": TOPIC_DENIED}


def test_metadata_reports_authorized_operations_when_asked(srv):
    grant(srv, "User:alice", "READ", "orders")
    with Wire(srv, "alice") as w:
        r = w.call(3, 8, {"topics": None, "allow_auto_topic_creation": False,
                          "include_cluster_authorized_operations": True,
                          "include_topic_authorized_operations": True})
        assert [t["name"] for t in r["topics"]] == ["orders"]
        assert r["topics"][0]["topic_authorized_operations"] == (1 << 3) | (1 << 8)
        assert r["cluster_authorized_operations"] == 0
        r = w.call(75, 0, {"topics": [{"name": "orders"}, {"name": "secret"}],
                           "response_partition_limit": 100, "cursor": None})
        assert [(t["name"], t["error_code"]) for t in r["topics"]] == [
            ("orders", 0), ("secret", TOPIC_DENIED)]
        assert r["topics"][0]["topic_authorized_operations"] == (1 << 3) | (1 << 8)


def test_authorizer_off_answers_security_disabled(tmp_path):
    srv = secure_server(str(tmp_path / "d"), authorizer=False)
    try:
        with Wire(srv, "alice") as w:
            r = w.call(30, 3, {"creations": [
                {"resource_type": 2, "resource_name": "t", "resource_pattern_type": 3,
                 "principal": "User:a", "host": "*", "operation": 3, "permission_type": 3}]})
            assert r["results"][0]["error_code"] == 54
            srv.create_topic("anything")
            assert produce(w, "anything") == 0  # no authorizer: everyone may
    finally:
        srv.stop()


class _Ask:
    """The authorizer's answers for a rule tested alone: DESCRIBE on what ``allowed`` names."""

    def __init__(self, *allowed: str) -> None:
        self.allowed = set(allowed)

    def may(self, op, rtype, name):
        return name in self.allowed

    def may_any(self, op, rtype):
        return bool(self.allowed)

    def ops(self, rtype, name):
        return 0

    def topic_exists(self, name):
        return True

    def auto_create(self):
        return False

    def name_of(self, entry, key):
        return entry.get(key) or {b"\x01" * 16: "by-id"}.get(entry.get("topic_id"), "")


def test_offset_fetch_batched_form_rule():
    from logmq.server.authz_rules import RULES

    body = {"groups": [{"group_id": "g1", "topics": [
        {"name": "a", "partition_indexes": [0]}, {"name": "b", "partition_indexes": [0, 1]}]},
        {"group_id": "g2", "topics": None}], "require_stable": False}
    plan = RULES[9](body, 8, _Ask("g1", "a"))
    assert plan.response is None
    assert plan.body["groups"] == [{"group_id": "g1", "topics": [
        {"name": "a", "partition_indexes": [0]}]}]
    resp = plan.merge({"groups": [{"group_id": "g1", "error_code": 0, "topics": [
        {"name": "a", "partitions": [{"partition_index": 0, "committed_offset": 5}]}]}]})
    g1, g2 = resp["groups"]
    assert [t["name"] for t in g1["topics"]] == ["a", "b"]
    assert [p["error_code"] for p in g1["topics"][1]["partitions"]] == [TOPIC_DENIED] * 2
    assert g2 == {"group_id": "g2", "topics": [], "error_code": GROUP_DENIED}
    assert RULES[9](body, 8, _Ask()).response["groups"][0]["error_code"] == GROUP_DENIED


def test_topic_ids_are_resolved_before_checking():
    from logmq.server.authz_rules import RULES

    body = {"topics": [{"topic_id": b"\x01" * 16, "partitions": [{"partition": 0}]},
                       {"topic_id": b"\x02" * 16, "partitions": [{"partition": 0}]}],
            "max_wait_ms": 500}
    plan = RULES[1](body, 13, _Ask("by-id"))
    assert [t["topic_id"] for t in plan.body["topics"]] == [b"\x01" * 16]
    assert plan.body["max_wait_ms"] == 0
    resp = plan.merge({"responses": []})
    assert resp["responses"][0]["topic_id"] == b"\x02" * 16
    assert resp["responses"][0]["partitions"][0]["error_code"] == TOPIC_DENIED
