"""The audit log: every audited action gives exactly one entry, with the principal that did
it, its peer address, the time and the outcome."""

from __future__ import annotations

import json
import os
import sys
import time

from logmq.broker.audit import Audit, audit_path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from acl_util import Wire, grant, secure_server  # noqa: E402


def entries(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


def commit(w: Wire, group: str, topic: str, offset: int) -> int:
    r = w.call(8, 7, {"group_id": group, "generation_id_or_member_epoch": -1, "member_id": "",
                      "group_instance_id": None, "topics": [{"name": topic, "partitions": [
                          {"partition_index": 0, "committed_offset": offset,
                           "committed_leader_epoch": -1, "committed_metadata": None}]}]})
    return r["topics"][0]["partitions"][0]["error_code"]


def test_every_audited_action_gives_one_entry(tmp_path):
    data = str(tmp_path / "d")
    srv = secure_server(data)
    log = os.path.join(data, "audit.jsonl")
    try:
        srv.create_topic("base")
        srv.broker.producer().send("base", b"v").result()
        expected: list[tuple[str, str, str]] = []
        with Wire(srv, "admin") as w:
            r = w.call(19, 4, {"topics": [{"name": "t1", "num_partitions": 1,
                                           "replication_factor": 1, "assignments": [],
                                           "configs": []}], "timeout_ms": 1000,
                               "validate_only": False})
            assert r["topics"][0]["error_code"] == 0
            expected.append(("topic.create", "User:admin", "ok"))
            r = w.call(33, 2, {"resources": [{"resource_type": 2, "resource_name": "t1",
                                              "configs": [{"name": "retention.ms",
                                                           "value": "100000"}]}],
                               "validate_only": False})
            assert r["responses"][0]["error_code"] == 0
            expected.append(("topic.alter", "User:admin", "ok"))
            r = w.call(37, 3, {"topics": [{"name": "t1", "count": 2, "assignments": None}],
                               "timeout_ms": 1000, "validate_only": False})
            assert r["results"][0]["error_code"] == 0
            expected.append(("partitions.create", "User:admin", "ok"))
            r = w.call(21, 1, {"topics": [{"name": "base", "partitions": [
                {"partition_index": 0, "offset": 1}]}], "timeout_ms": 1000})
            assert r["topics"][0]["partitions"][0]["error_code"] == 0
            expected.append(("records.delete", "User:admin", "ok"))
            assert commit(w, "g", "base", 1) == 0
            expected.append(("offsets.commit", "User:admin", "ok"))
            r = w.call(47, 0, {"group_id": "g", "topics": [
                {"name": "base", "partitions": [{"partition_index": 0}]}]})
            assert r["error_code"] == 0, r
            expected.append(("offsets.delete", "User:admin", "ok"))
            assert commit(w, "g", "base", 1) == 0
            expected.append(("offsets.commit", "User:admin", "ok"))
            r = w.call(42, 2, {"groups_names": ["g"]})
            assert r["results"][0]["error_code"] == 0
            expected.append(("group.delete", "User:admin", "ok"))
            r = w.call(30, 3, {"creations": [
                {"resource_type": 2, "resource_name": "t1", "resource_pattern_type": 3,
                 "principal": "User:alice", "host": "*", "operation": 3,
                 "permission_type": 3}]})
            assert r["results"][0]["error_code"] == 0
            expected.append(("acl.create", "User:admin", "ok"))
            r = w.call(31, 3, {"filters": [
                {"resource_type_filter": 2, "resource_name_filter": "t1",
                 "pattern_type_filter": 3, "principal_filter": None, "host_filter": None,
                 "operation": 1, "permission_type": 1}]})
            assert len(r["filter_results"][0]["matching_acls"]) == 1
            expected.append(("acl.delete", "User:admin", "ok"))
            r = w.call(49, 1, {"entries": [{"entity": [
                {"entity_type": "user", "entity_name": "alice"}], "ops": [
                {"key": "consumer_byte_rate", "value": 1e6, "remove": False}]}],
                "validate_only": False})
            assert r["entries"][0]["error_code"] == 0
            expected.append(("quota.alter", "User:admin", "ok"))
            r = w.call(20, 3, {"topic_names": ["t1"], "timeout_ms": 1000})
            assert r["responses"][0]["error_code"] == 0
            expected.append(("topic.delete", "User:admin", "ok"))
        grant(srv, "User:alice", "DESCRIBE", "base")
        with Wire(srv, "alice") as w:
            r = w.call(20, 3, {"topic_names": ["base"], "timeout_ms": 1000})
            assert r["responses"][0]["error_code"] == 29
            expected.append(("topic.delete", "User:alice", "denied"))
            r = w.call(19, 4, {"topics": [{"name": "t2", "num_partitions": 1,
                                           "replication_factor": 1, "assignments": [],
                                           "configs": []}], "timeout_ms": 1000,
                               "validate_only": False})
            expected.append(("topic.create", "User:alice", "denied"))
            # a member's own commits and plain reads are not audited
            w.call(3, 8, {"topics": None, "allow_auto_topic_creation": False,
                          "include_cluster_authorized_operations": False,
                          "include_topic_authorized_operations": False})
        with Wire(srv, "admin") as w:
            r = w.call(19, 4, {"topics": [{"name": "base", "num_partitions": 1,
                                           "replication_factor": 1, "assignments": [],
                                           "configs": []}], "timeout_ms": 1000,
                               "validate_only": False})
            assert r["topics"][0]["error_code"] == 36
            expected.append(("topic.create", "User:admin", "error:TOPIC_ALREADY_EXISTS"))
        got = entries(log)
        assert [(e["event"], e["principal"], e["outcome"]) for e in got] == expected
        for e in got:
            assert e["peer"].startswith("127.0.0.1:")
            assert e["time"].endswith("Z") and e["time"].startswith(time.strftime("%Y-"))
        assert got[0]["topic"] == "t1" and got[3]["offset"] == 1
        assert got[9]["acl"]["principal"] == "User:alice"
    finally:
        srv.stop()
    assert os.stat(log).st_mode & 0o777 == 0o600


def test_audit_is_off_without_the_authorizer_unless_asked(tmp_path):
    assert audit_path(None, str(tmp_path), False) is None
    assert audit_path(None, str(tmp_path), True) == str(tmp_path / "audit.jsonl")
    assert audit_path("off", str(tmp_path), True) is None
    assert audit_path(None, ":memory:", True) is None
    srv = secure_server(str(tmp_path / "d"), authorizer=False,
                        audit_log=str(tmp_path / "a.jsonl"))
    try:
        with Wire(srv, "bob") as w:
            w.call(20, 3, {"topic_names": ["nope"], "timeout_ms": 1000})
    finally:
        srv.stop()
    assert [(e["event"], e["principal"], e["outcome"]) for e in entries(
        str(tmp_path / "a.jsonl"))] == [("topic.delete", "User:bob",
                                         "error:UNKNOWN_TOPIC_OR_PARTITION")]
    assert not os.path.exists(tmp_path / "d" / "audit.jsonl")


def test_record_api_for_authentication(tmp_path):
    a = Audit(str(tmp_path / "x.jsonl"))
    a.record("authenticate", "User:alice", "10.0.0.1:5000", "ok", mechanism="SCRAM-SHA-256")
    a.record("authenticate", "User:mallory", "10.0.0.2:5001", "failed", mechanism="PLAIN")
    a.close()
    a.record("authenticate", "User:late", "x", "ok")  # after close: dropped, no error
    got = entries(str(tmp_path / "x.jsonl"))
    assert [(e["principal"], e["outcome"], e["mechanism"]) for e in got] == [
        ("User:alice", "ok", "SCRAM-SHA-256"), ("User:mallory", "failed", "PLAIN")]


def test_audit_topic_carries_the_same_entries(tmp_path):
    srv = secure_server(str(tmp_path / "d"), audit_topic="_audit")
    try:
        with Wire(srv, "admin") as w:
            w.call(19, 4, {"topics": [{"name": "t", "num_partitions": 1,
                                       "replication_factor": 1, "assignments": [],
                                       "configs": []}], "timeout_ms": 1000,
                           "validate_only": False})
            w.call(20, 3, {"topic_names": ["t"], "timeout_ms": 1000})
        with Wire(srv, "alice") as w:
            w.call(20, 3, {"topic_names": ["_audit"], "timeout_ms": 1000})  # refused
        c = srv.broker.consumer("_audit", auto_offset_reset="earliest")
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            got += c.poll(timeout=0.5)
        c.close()
        assert [(r.key, json.loads(r.value)["principal"]) for r in got] == [
            (b"topic.create", "User:admin"), (b"topic.delete", "User:admin"),
            (b"topic.delete", "User:alice")]
        assert "_audit" in srv.broker.list_topics()
        file_entries = entries(str(tmp_path / "d" / "audit.jsonl"))
        assert [json.loads(r.value) for r in got] == file_entries
    finally:
        srv.stop()
