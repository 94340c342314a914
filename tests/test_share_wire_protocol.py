"""Share-group APIs request by request (raw wire): sessions and their epochs, acquired records,
acknowledgement errors, describe, and GROUP configs. What the ShareConsumer tests cannot
provoke on purpose."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wire_util import RawClient  # noqa: E402

from logmq.codec.records import iter_records  # noqa: E402
from logmq.testing.server import LogMQServer  # noqa: E402

INVALID_RECORD_STATE, SHARE_SESSION_NOT_FOUND, INVALID_SHARE_SESSION_EPOCH = 121, 122, 123
UNKNOWN_MEMBER_ID, GROUP_ID_NOT_FOUND, INVALID_CONFIG, INVALID_REQUEST = 25, 69, 40, 42


@pytest.fixture
def env(tmp_path):
    srv = LogMQServer(str(tmp_path)).start()
    srv.create_topic("jobs", partitions=2)
    for i in range(5):
        srv.broker.producer().send("jobs", b"v%d" % i, partition=0).result()
    c = RawClient(srv.host, srv.port)
    yield srv, c
    c.close()
    srv.stop()


def _configure(c: RawClient, group: str, **kv: str) -> dict:
    return c.call(44, 0, {"resources": [{"resource_type": 32, "resource_name": group, "configs": [
        {"name": k.replace("_", "."), "config_operation": 0, "value": v}
        for k, v in kv.items()]}], "validate_only": False})["responses"][0]


def _join(c: RawClient, group: str = "g", member: str = "m1") -> dict:
    return c.call(76, 1, {"group_id": group, "member_id": member, "member_epoch": 0,
                          "rack_id": None, "subscribed_topic_names": ["jobs"]})


def _fetch(c: RawClient, epoch: int, tid: bytes, parts=(0, 1), acks=None, member="m1",
           max_records=100) -> dict:
    return c.call(78, 1, {
        "group_id": "g", "member_id": member, "share_session_epoch": epoch,
        "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20, "max_records": max_records,
        "batch_size": max_records,
        "topics": [{"topic_id": tid, "partitions": [
            {"partition_index": p, "acknowledgement_batches": (acks or {}).get(p, [])}
            for p in parts]}],
        "forgotten_topics_data": []})


def _ack(c: RawClient, epoch: int, tid: bytes, p: int, first: int, last: int, t: int) -> dict:
    return c.call(79, 1, {"group_id": "g", "member_id": "m1", "share_session_epoch": epoch,
                          "topics": [{"topic_id": tid, "partitions": [{
                              "partition_index": p, "acknowledgement_batches": [
                                  {"first_offset": first, "last_offset": last,
                                   "acknowledge_types": [t]}]}]}]})


def test_api_versions_advertise_the_share_apis(env):
    _srv, c = env
    keys = {k["api_key"]: (k["min_version"], k["max_version"])
            for k in c.call(18, 0, {})["api_keys"]}
    assert keys[76] == (1, 1) and keys[77] == (1, 1)
    assert keys[78] == (1, 2) and keys[79] == (1, 2)


def test_session_epochs_records_and_acknowledgements(env):
    srv, c = env
    assert _configure(c, "g", share_auto_offset_reset="earliest")["error_code"] == 0
    hb = _join(c)
    assert hb["error_code"] == 0 and hb["member_epoch"] > 0
    [tp] = hb["assignment"]["topic_partitions"]
    tid = tp["topic_id"]
    assert sorted(tp["partitions"]) == [0, 1]
    assert _fetch(c, 1, tid)["error_code"] == SHARE_SESSION_NOT_FOUND
    assert _fetch(c, 0, tid, member="nobody")["error_code"] == UNKNOWN_MEMBER_ID
    r = _fetch(c, 0, tid, max_records=3)
    assert r["error_code"] == 0 and r["acquisition_lock_timeout_ms"] == 30_000
    [part] = [p for t in r["responses"] for p in t["partitions"] if p["acquired_records"]]
    assert part["partition_index"] == 0
    assert part["acquired_records"] == [{"first_offset": 0, "last_offset": 2,
                                         "delivery_count": 1}]
    assert [v for _o, _t, _k, v, _h in iter_records(part["records"])] == [b"v0", b"v1", b"v2"]
    assert _fetch(c, 5, tid)["error_code"] == INVALID_SHARE_SESSION_EPOCH
    # epoch 1: accept 0..1 piggy-backed, release 2 by ShareAcknowledge (epoch 2)
    r = _fetch(c, 1, tid, acks={0: [{"first_offset": 0, "last_offset": 1,
                                     "acknowledge_types": [1]}]}, max_records=2)
    [p0] = [p for t in r["responses"] for p in t["partitions"] if p["partition_index"] == 0]
    assert p0["acknowledge_error_code"] == 0
    assert p0["acquired_records"] == [{"first_offset": 3, "last_offset": 4,
                                       "delivery_count": 1}]
    a = _ack(c, 2, tid, 0, 2, 2, 2)
    assert a["error_code"] == 0 and a["responses"][0]["partitions"][0]["error_code"] == 0
    again = _ack(c, 3, tid, 0, 2, 2, 1)  # released: no longer held by this member
    assert again["responses"][0]["partitions"][0]["error_code"] == INVALID_RECORD_STATE
    assert _ack(c, 0, tid, 0, 3, 3, 1)["error_code"] == INVALID_SHARE_SESSION_EPOCH
    r = _fetch(c, 4, tid, acks={0: [{"first_offset": 3, "last_offset": 4,
                                     "acknowledge_types": [1]}]})
    [p0] = [p for t in r["responses"] for p in t["partitions"] if p["partition_index"] == 0]
    assert p0["acquired_records"] == [{"first_offset": 2, "last_offset": 2,
                                       "delivery_count": 2}]
    stats = srv.broker.queues.share_group("jobs", "g").stats()
    assert stats.acked == 4 and stats.in_flight == 1
    # closing the session (epoch -1) gives back what it holds
    assert _ack(c, -1, tid, 0, 0, 0, 0)["error_code"] == 0
    assert srv.broker.queues.share_group("jobs", "g").stats().in_flight == 0


def test_a_new_session_cannot_acknowledge(env):
    _srv, c = env
    tid = _join(c)["assignment"]["topic_partitions"][0]["topic_id"]
    r = _fetch(c, 0, tid, acks={0: [{"first_offset": 0, "last_offset": 0,
                                     "acknowledge_types": [1]}]})
    assert r["error_code"] == INVALID_REQUEST


def test_latest_is_the_default_start(env):
    srv, c = env
    tid = _join(c)["assignment"]["topic_partitions"][0]["topic_id"]
    assert not any(p["acquired_records"] for t in _fetch(c, 0, tid)["responses"]
                   for p in t["partitions"])
    srv.broker.producer().send("jobs", b"new", partition=1).result()
    r = _fetch(c, 1, tid)
    [p1] = [p for t in r["responses"] for p in t["partitions"] if p["acquired_records"]]
    assert p1["partition_index"] == 1


def test_describe_lists_members_and_unknown_groups(env):
    srv, c = env
    _join(c, member="m1")
    _join(c, member="m2")
    r = c.call(77, 1, {"group_ids": ["g", "missing"], "include_authorized_operations": False})
    g, missing = r["groups"]
    assert g["error_code"] == 0 and g["group_state"] == "Stable"
    assert sorted(m["member_id"] for m in g["members"]) == ["m1", "m2"]
    assert g["members"][0]["assignment"]["topic_partitions"][0]["topic_name"] == "jobs"
    assert missing["error_code"] == GROUP_ID_NOT_FOUND
    q = srv.broker.queue("jobs", group="g")  # an embedded member shows up beside them
    r = c.call(77, 1, {"group_ids": ["g"], "include_authorized_operations": False})
    emb = [m for m in r["groups"][0]["members"] if m["client_id"] == "logmq-embedded"]
    assert len(emb) == 1 and emb[0]["subscribed_topic_names"] == ["jobs"]
    q.close()
    leave = c.call(76, 1, {"group_id": "g", "member_id": "m2", "member_epoch": -1,
                           "rack_id": None, "subscribed_topic_names": None})
    assert leave["member_epoch"] == -1
    r = c.call(77, 1, {"group_ids": ["g"], "include_authorized_operations": False})
    assert [m["member_id"] for m in r["groups"][0]["members"]] == ["m1"]


def test_group_configs_are_described_and_checked(env):
    _srv, c = env
    assert _configure(c, "g", share_record_lock_duration_ms="5000")["error_code"] == 0
    bad = _configure(c, "g", share_delivery_count_limit="0")
    assert bad["error_code"] == INVALID_CONFIG
    assert _configure(c, "g", no_such_key="1")["error_code"] == INVALID_CONFIG
    r = c.call(32, 1, {"resources": [{"resource_type": 32, "resource_name": "g",
                                      "configuration_keys": None}],
                       "include_synonyms": False})
    got = {e["name"]: (e["value"], e["config_source"]) for e in r["results"][0]["configs"]}
    assert got["share.record.lock.duration.ms"] == ("5000", 8)  # DYNAMIC_GROUP_CONFIG
    assert got["share.delivery.count.limit"] == ("5", 5)  # DEFAULT_CONFIG
    assert got["share.auto.offset.reset"] == ("latest", 5)


def test_list_groups_shows_share_groups_with_their_type(env):
    srv, c = env
    _join(c, group="g")
    srv.broker.queue("jobs", group="embedded-only").close()
    groups = {g["group_id"]: g["protocol_type"] for g in c.call(16, 2, {})["groups"]}
    assert groups["g"] == "share" and groups["embedded-only"] == "share"


def _describe_offsets(c: RawClient, group: str, topics=None) -> dict:
    return c.call(90, 1, {"groups": [{"group_id": group, "topics": topics}]})["groups"][0]


def test_share_group_offsets_describe_alter_delete(env):
    srv, c = env
    assert _describe_offsets(c, "nobody")["error_code"] == GROUP_ID_NOT_FOUND
    q = srv.broker.queue("jobs", group="admin-g")  # earliest: the embedded default
    recs = q.receive(2, timeout=5)
    q.ack(*recs)
    d = _describe_offsets(c, "admin-g")
    [t] = d["topics"]
    parts = {p["partition_index"]: (p["start_offset"], p["lag"]) for p in t["partitions"]}
    assert parts == {0: (2, 3), 1: (0, 0)}
    body = {"group_id": "admin-g", "topics": [{"topic_name": "jobs", "partitions": [
        {"partition_index": 0, "start_offset": 4}]}]}
    assert c.call(91, 0, body)["error_code"] == 68  # NON_EMPTY_GROUP: q is a member
    q.close()
    r = c.call(91, 0, body)
    assert r["error_code"] == 0 and r["responses"][0]["partitions"][0]["error_code"] == 0
    d = _describe_offsets(c, "admin-g", [{"topic_name": "jobs", "partitions": [0]}])
    assert [(p["start_offset"], p["lag"]) for p in d["topics"][0]["partitions"]] == [(4, 1)]
    q2 = srv.broker.queue("jobs", group="admin-g")
    assert [r.value for r in q2.receive(5, timeout=5)] == [b"v4"]  # from the new start
    q2.close()
    r = c.call(92, 0, {"group_id": "admin-g", "topics": [{"topic_name": "jobs"}]})
    assert r["error_code"] == 0 and r["responses"][0]["error_code"] == 0
    assert _describe_offsets(c, "admin-g")["error_code"] == GROUP_ID_NOT_FOUND


def test_unknown_partitions_and_topic_ids_are_reported_per_partition(env):
    _srv, c = env
    tid = _join(c)["assignment"]["topic_partitions"][0]["topic_id"]
    r = _fetch(c, 0, tid, parts=(7,))
    assert [p["error_code"] for t in r["responses"] for p in t["partitions"]] == [3]
    r = _fetch(c, 1, b"\x01" * 16, parts=(0,))
    assert [p["error_code"] for t in r["responses"] for p in t["partitions"]] == [100]


def test_member_count_is_bounded(env, monkeypatch):
    import logmq.server.share as share

    _srv, c = env
    monkeypatch.setattr(share, "MAX_MEMBERS", 2)
    assert _join(c, member="a")["error_code"] == 0
    assert _join(c, member="b")["error_code"] == 0
    assert _join(c, member="c")["error_code"] == 81  # GROUP_MAX_SIZE_REACHED


def test_renew_extends_the_lock_v2(env):
    srv, c = env
    _configure(c, "g", share_auto_offset_reset="earliest",
               share_record_lock_duration_ms="2000")
    tid = _join(c)["assignment"]["topic_partitions"][0]["topic_id"]
    r = _fetch(c, 0, tid, max_records=1)
    assert r["acquisition_lock_timeout_ms"] == 2000
    sg = srv.broker.queues.share_group("jobs", "g")
    [(rec_key, rec)] = [(k, v) for m in sg.members.values() for k, v in m.held.items()]
    before = rec.deadline
    a = c.call(79, 2, {"group_id": "g", "member_id": "m1", "share_session_epoch": 1,
                       "is_renew_ack": True, "topics": [{"topic_id": tid, "partitions": [{
                           "partition_index": 0, "acknowledgement_batches": [{
                               "first_offset": 0, "last_offset": 0,
                               "acknowledge_types": [4]}]}]}]})
    assert a["error_code"] == 0 and a["responses"][0]["partitions"][0]["error_code"] == 0
    assert a["acquisition_lock_timeout_ms"] == 2000
    assert rec_key == (0, 0) and rec.deadline >= before and rec.state == 1  # still ACQUIRED
    assert sg.stats().in_flight == 1


def test_librdkafka_all_topics_metadata_v12_frame_decodes():
    # Metadata v10+ (topic ids) is what share consumers need; librdkafka's all-topics request
    # at v9+ carries 3 stray bytes of its array-count placeholder, which Kafka ignores (so does
    # logmq: bytes after any request body are ignored, as Kafka's broker does)
    from logmq.protocol import decode_request

    frame = bytes.fromhex("0003000c00000004000772646b61666b610000000000010000")
    req = decode_request(frame)
    assert req.header.api_version == 12 and req.body["topics"] is None


def test_a_silent_member_is_removed_after_the_session_timeout(env):
    import time

    srv, c = env
    _configure(c, "g", share_auto_offset_reset="earliest", share_session_timeout_ms="1000")
    tid = _join(c)["assignment"]["topic_partitions"][0]["topic_id"]
    assert _fetch(c, 0, tid, max_records=2)["error_code"] == 0
    assert srv.broker.queues.share_group("jobs", "g").stats().in_flight == 2
    members: list = ["m1"]
    end = time.monotonic() + 15
    while members and time.monotonic() < end:  # describe is what notices the silence
        r = c.call(77, 1, {"group_ids": ["g"], "include_authorized_operations": False})
        members = [m["member_id"] for m in r["groups"][0]["members"]]
    assert members == []
    assert srv.broker.queues.share_group("jobs", "g").stats().in_flight == 0  # released
    assert _fetch(c, 1, tid)["error_code"] == UNKNOWN_MEMBER_ID


def test_a_consumer_group_id_cannot_become_a_share_group(env):
    srv, c = env
    import confluent_kafka

    cons = confluent_kafka.Consumer({"bootstrap.servers": srv.bootstrap,
                                     "group.id": "classic-g", "enable.auto.commit": False})
    cons.commit(offsets=[confluent_kafka.TopicPartition("jobs", 0, 1)], asynchronous=False)
    cons.close()
    r = _join(c, group="classic-g")
    assert r["error_code"] == GROUP_ID_NOT_FOUND and "consumer group" in r["error_message"]
