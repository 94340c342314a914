"""Names too long for an LMDB key get an error code, never an exception from a commit.

The 10M-case wire fuzz found AlterShareGroupOffsets raising ``lmdb.BadValsizeError`` for a
long group id (LMDB keys stop at 511 bytes and a store key joins the group id with a topic);
probing every string field of every API found four more handlers doing the same. The limits
are in :mod:`logmq.broker.names` (group ids 200 UTF-8 bytes, SCRAM users 255, ACL bindings
and quota entities 511 as stored); Kafka has none, so where it would accept a name logmq
refuses with the code a bad name gets.
"""

from __future__ import annotations

import logging
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from acl_util import Wire, secure_server  # noqa: E402

import logmq  # noqa: E402
from logmq.broker.acls import AclBinding  # noqa: E402
from logmq.broker.names import MAX_GROUP_ID_BYTES, group_id_problem  # noqa: E402
from logmq.broker.users import UserStore  # noqa: E402
from logmq.errors import ConfigError, InvalidAclError, InvalidGroupIdError  # noqa: E402
from logmq.streams.index import TRACKING_HEADER  # noqa: E402

INVALID_GROUP_ID, INVALID_REQUEST, UNACCEPTABLE_CREDENTIAL = 24, 42, 93
LONG = "n" * 1000
OVER = "é" * 101  # 202 UTF-8 bytes: the limit counts bytes, not characters


def test_group_id_limit_counts_utf8_bytes():
    assert group_id_problem("g" * MAX_GROUP_ID_BYTES) is None
    assert group_id_problem("é" * 100) is None  # 200 bytes
    assert "200" in (group_id_problem(OVER) or "")
    assert group_id_problem("", allow_empty=True) is None  # OffsetCommit allows "" (Kafka too)
    assert group_id_problem("") is not None


@pytest.fixture
def srv(tmp_path):
    s = secure_server(str(tmp_path / "d"))
    s.create_topic("fz")
    yield s
    s.stop()


def _part0(**kw):
    return [{"name": "fz", "partitions": [{"partition_index": 0, **kw}]}]


@pytest.mark.parametrize("name", [LONG, OVER])
def test_long_names_on_the_wire_get_error_codes(srv, caplog, name):
    with caplog.at_level(logging.ERROR), Wire(srv, "admin") as w:
        r = w.call(8, 7, {"group_id": name, "generation_id_or_member_epoch": -1,
                          "member_id": "", "group_instance_id": None,
                          "topics": _part0(committed_offset=1, committed_leader_epoch=-1,
                                           committed_metadata=None)})
        assert r["topics"][0]["partitions"][0]["error_code"] == INVALID_GROUP_ID
        r = w.call(91, 0, {"group_id": name, "topics": [{"topic_name": "fz", "partitions": [
            {"partition_index": 0, "start_offset": 0}]}]})
        assert r["error_code"] == INVALID_GROUP_ID
        r = w.call(44, 1, {"resources": [{"resource_type": 32, "resource_name": name,
                                          "configs": [{"name": "share.record.lock.duration.ms",
                                                       "config_operation": 0,
                                                       "value": "30000"}]}],
                           "validate_only": False})
        assert r["responses"][0]["error_code"] == INVALID_GROUP_ID
        r = w.call(28, 3, {"transactional_id": "t", "group_id": name, "producer_id": 1,
                           "producer_epoch": 0, "generation_id": -1, "member_id": "",
                           "group_instance_id": None,
                           "topics": _part0(committed_offset=1, committed_leader_epoch=-1,
                                            committed_metadata=None)})
        codes = {p["error_code"] for t in r["topics"] for p in t["partitions"]}
        assert codes and 0 not in codes  # refused (before or at the group id), not stored
        assert w.call(18, 0, {})["error_code"] == 0  # the connection still serves
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert srv.broker.queues.groups_of("fz") == []


def test_long_user_quota_and_acl_names_get_error_codes(srv, caplog):
    with caplog.at_level(logging.ERROR), Wire(srv, "admin") as w:
        r = w.call(51, 0, {"deletions": [], "upsertions": [
            {"name": "u" * 256, "mechanism": 1, "iterations": 4096, "salt": b"s" * 16,
             "salted_password": b"x" * 32}]})
        assert r["results"][0]["error_code"] == UNACCEPTABLE_CREDENTIAL
        r = w.call(49, 1, {"entries": [{"entity": [{"entity_type": "user",
                                                    "entity_name": LONG}],
                                        "ops": [{"key": "producer_byte_rate", "value": 1024.0,
                                                 "remove": False}]}], "validate_only": False})
        assert r["entries"][0]["error_code"] == INVALID_REQUEST
        r = w.call(30, 3, {"creations": [{"resource_type": 2, "resource_name": LONG,
                                          "resource_pattern_type": 3, "principal": "User:a",
                                          "host": "*", "operation": 3,
                                          "permission_type": 3}]})
        assert r["results"][0]["error_code"] == INVALID_REQUEST
        assert w.call(18, 0, {})["error_code"] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_embedded_surfaces_refuse_long_names_with_typed_errors(tmp_path):
    with logmq.open(str(tmp_path / "d")) as log:
        log.create_topic("t" * 249)
        log.create_topic("jobs")
        with pytest.raises(InvalidGroupIdError):
            log.queue("t" * 249, group="g" * (MAX_GROUP_ID_BYTES + 1))
        q = log.queue("t" * 249, group="g" * MAX_GROUP_ID_BYTES)  # the longest key fits
        log.producer().send("t" * 249, b"x").result()
        got = q.receive(1, timeout=5)
        assert len(got) == 1
        got[0].nack(delay=60)  # a due-time entry: the longest share key there is
        q.close()
        with pytest.raises(ConfigError):
            log.groups.commit_offsets(LONG, -1, "", {("jobs", 0): (1, None)})
        # a tracking header comes from any producer: a long name is keyed by its digest
        name = b"p" * 600
        log.producer().send("jobs", b"v", key=b"k",
                            headers=[(TRACKING_HEADER, name + b"\x00" + b"7")]).result()
        assert log.streams.tracking("jobs", name.decode()) == 7
    with pytest.raises(InvalidAclError):
        AclBinding.of(2, LONG, 3, "User:a", "*", 3, 3)
    import lmdb
    env = lmdb.open(str(tmp_path / "u"), max_dbs=4)
    with pytest.raises(ConfigError):
        UserStore(env).set_password("u" * 256, "pw")
    env.close()


def test_classic_group_apis_refuse_ids_kafka_refuses_or_logmq_cannot_store(srv):
    """Kafka answers an empty group id in JoinGroup, SyncGroup, Heartbeat and LeaveGroup with
    INVALID_GROUP_ID (tests/oracle/test_flexible_oracle.py compares); logmq answers the same
    for a group id it could not commit offsets for, instead of letting the group form."""
    with Wire(srv, "admin") as w:
        for gid in ("", "a\x00b", LONG):
            r = w.call(11, 5, {"group_id": gid, "session_timeout_ms": 10000,
                               "rebalance_timeout_ms": 10000, "member_id": "",
                               "group_instance_id": None, "protocol_type": "consumer",
                               "protocols": [{"name": "range", "metadata": b""}]})
            assert r["error_code"] == INVALID_GROUP_ID, gid
            r = w.call(14, 3, {"group_id": gid, "generation_id": 1, "member_id": "m",
                               "group_instance_id": None, "assignments": []})
            assert r["error_code"] == INVALID_GROUP_ID
            r = w.call(12, 3, {"group_id": gid, "generation_id": 1, "member_id": "m",
                               "group_instance_id": None})
            assert r["error_code"] == INVALID_GROUP_ID
            r = w.call(13, 3, {"group_id": gid, "members": [
                {"member_id": "m", "group_instance_id": None}]})
            assert r["error_code"] == INVALID_GROUP_ID
        for gid in ("a\x00b", LONG):  # KIP-848: empty is INVALID_REQUEST, as in Kafka
            r = w.call(68, 0, {"group_id": gid, "member_id": "", "member_epoch": 0,
                               "instance_id": None, "rack_id": None,
                               "rebalance_timeout_ms": 10000, "subscribed_topic_names": ["fz"],
                               "server_assignor": None, "topic_partitions": []})
            assert r["error_code"] == INVALID_GROUP_ID
