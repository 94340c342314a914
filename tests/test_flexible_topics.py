"""Issue 18.1: topic ids on the wire (KIP-516) at the versions Kafka 4.4 clients use.

The Java client 4.x names topics by id in Fetch v13+, Produce v13, OffsetCommit/OffsetFetch
v10: the id must be the one Metadata v10+ gave, stable across restarts, and another one for
a topic deleted and recreated under the same name.
"""

from __future__ import annotations

import uuid

import flexible_util as fx
from flexible_util import Z, fetch_body, fetch_partition
from wire_util import RawClient, ThreadServer

import logmq
from logmq.codec.records import encode_batch, iter_records
from logmq.kafka_codes import ErrorCode as E

broker, server, c = fx.broker, fx.server, fx.c  # the fixtures


def _ids(c: RawClient, *names: str) -> dict[str, bytes]:
    md = c.call(3, 13, {"topics": [{"name": n, "topic_id": Z} for n in names],
                        "allow_auto_topic_creation": False})
    assert md["error_code"] == 0
    return {t["name"]: t["topic_id"] for t in md["topics"]}


def _produce13(c: RawClient, tid: bytes, records: list, partition: int = 0) -> dict:
    r = c.call(0, 13, {"transactional_id": None, "acks": -1, "timeout_ms": 5000,
                       "topic_data": [{"topic_id": tid, "partition_data": [
                           {"index": partition, "records": encode_batch(records)}]}]})
    assert r["responses"][0]["topic_id"] == tid
    return r["responses"][0]["partition_responses"][0]


def test_metadata_v10_plus_gives_each_topic_its_stored_id(c, broker):
    broker.create_topic("a", partitions=2)
    ids = _ids(c, "a", "missing")
    assert uuid.UUID(bytes=ids["a"]).hex == broker.topic_id("a")
    assert ids["missing"] == Z
    md = c.call(3, 13, {"topics": None})
    assert {t["name"]: t["topic_id"] for t in md["topics"]} == {"a": ids["a"]}
    assert md["error_code"] == 0  # v13: the top-level error code
    # v12+: a topic asked for by id alone
    md = c.call(3, 12, {"topics": [{"name": None, "topic_id": ids["a"]},
                                   {"name": None, "topic_id": uuid.uuid4().bytes}]})
    known, unknown = md["topics"]
    assert (known["name"], known["topic_id"], len(known["partitions"])) == ("a", ids["a"], 2)
    assert unknown["error_code"] == E.UNKNOWN_TOPIC_ID and unknown["name"] is None


def test_produce_v13_and_fetch_v13_by_topic_id(c, broker):
    broker.create_topic("t", partitions=1)
    tid = _ids(c, "t")["t"]
    assert _produce13(c, tid, [(b"k", b"v1"), (b"k", b"v2")])["error_code"] == 0
    assert _produce13(c, uuid.uuid4().bytes, [(b"k", b"x")])["error_code"] == E.UNKNOWN_TOPIC_ID
    for v in (13, 16, 18):
        r = c.call(1, v, fetch_body([{"topic_id": tid, "partitions": [fetch_partition(0, 0)]},
                                     {"topic_id": uuid.uuid4().bytes,
                                      "partitions": [fetch_partition(0, 0)]}]))
        got, bad = r["responses"]
        assert got["topic_id"] == tid
        p = got["partitions"][0]
        assert p["error_code"] == 0 and p["high_watermark"] == 2
        assert [rec[3] for rec in iter_records(p["records"])] == [b"v1", b"v2"]
        assert bad["partitions"][0]["error_code"] == E.UNKNOWN_TOPIC_ID
    # v12 still names topics
    r = c.call(1, 12, fetch_body([{"topic": "t", "partitions": [fetch_partition(0, 1)]}]))
    assert r["responses"][0]["topic"] == "t"
    assert r["responses"][0]["partitions"][0]["high_watermark"] == 2


def test_fetch_v12_reports_a_diverging_epoch_instead_of_out_of_range(c, broker):
    """A fetcher that says its last batch was of epoch 0 at an offset past our log end is
    told where epoch 0 ends (as Kafka 4.4 answers), not reset."""
    broker.create_topic("t", partitions=1)
    broker.partition_log("t", 0).append(encode_batch([(None, b"v")]))
    r = c.call(1, 12, fetch_body([{"topic": "t", "partitions": [
        dict(fetch_partition(0, 5, last_fetched_epoch=0), current_leader_epoch=0)]}]))
    p = r["responses"][0]["partitions"][0]
    assert p["error_code"] == 0 and p["diverging_epoch"] == {"epoch": 0, "end_offset": 1}
    assert not p["records"]
    r = c.call(1, 12, fetch_body([{"topic": "t", "partitions": [fetch_partition(0, 5)]}]))
    q = r["responses"][0]["partitions"][0]  # no last fetched epoch: out of range, as Kafka
    assert q["error_code"] == E.OFFSET_OUT_OF_RANGE and q["high_watermark"] == -1


def test_fetch_v13_long_poll_by_id_wakes_on_produce(c, broker, server):
    broker.create_topic("t", partitions=1)
    tid = _ids(c, "t")["t"]
    other = RawClient(server.host, server.port)
    try:
        import threading

        done: list[dict] = []
        th = threading.Thread(target=lambda: done.append(other.call(1, 16, fetch_body(
            [{"topic_id": tid, "partitions": [fetch_partition(0, 0)]}], max_wait_ms=10_000))))
        th.start()
        broker.partition_log("t", 0).append(encode_batch([(None, b"late")]))
        th.join(15)
        assert done and done[0]["responses"][0]["partitions"][0]["high_watermark"] >= 1
    finally:
        other.close()


def test_a_recreated_topic_has_another_id_and_old_ids_are_unknown(c, broker):
    broker.create_topic("t", partitions=1)
    old = _ids(c, "t")["t"]
    broker.delete_topic("t")
    broker.create_topic("t", partitions=1)
    new = _ids(c, "t")["t"]
    assert new != old and new != Z
    assert _produce13(c, old, [(None, b"x")])["error_code"] == E.UNKNOWN_TOPIC_ID
    assert _produce13(c, new, [(None, b"x")])["error_code"] == 0


def test_topic_ids_survive_a_restart(tmp_path):
    path = str(tmp_path / "d")
    b = logmq.open(path)
    b.create_topic("t", partitions=1)
    before = b.topic_id("t")
    b.close()
    b = logmq.open(path)
    try:
        assert b.topic_id("t") == before
        s = ThreadServer(b)
        cl = RawClient(s.host, s.port)
        try:
            assert _ids(cl, "t")["t"] == uuid.UUID(hex=before).bytes
        finally:
            cl.close()
            s.close()
    finally:
        b.close()


def test_topics_without_an_id_get_one_when_opened(tmp_path):
    """A data directory written before topic ids: each topic gets one, kept from then on."""
    path = str(tmp_path / "d")
    b = logmq.open(path)
    b.create_topic("t", partitions=1)
    meta = dict(b.meta.topics()["t"])
    del meta["id"]
    b.meta.put_topic("t", meta)
    b.close()
    b = logmq.open(path)
    given = b.topic_id("t")
    b.close()
    assert len(given) == 32
    b = logmq.open(path)
    try:
        assert b.topic_id("t") == given
    finally:
        b.close()


def test_offset_commit_and_fetch_v10_by_topic_id(c, broker):
    broker.create_topic("t", partitions=2)
    tid = _ids(c, "t")["t"]
    ghost = uuid.uuid4().bytes
    r = c.call(8, 10, {"group_id": "g", "generation_id_or_member_epoch": -1, "member_id": "",
                       "group_instance_id": None, "topics": [
                           {"topic_id": tid, "partitions": [
                               {"partition_index": 1, "committed_offset": 7,
                                "committed_leader_epoch": -1, "committed_metadata": "m"}]},
                           {"topic_id": ghost, "partitions": [
                               {"partition_index": 0, "committed_offset": 1,
                                "committed_leader_epoch": -1, "committed_metadata": ""}]}]})
    ok, bad = r["topics"]
    assert ok == {"topic_id": tid, "partitions": [{"partition_index": 1, "error_code": 0}]}
    assert bad["topic_id"] == ghost
    assert bad["partitions"][0]["error_code"] == E.UNKNOWN_TOPIC_ID
    assert broker.groups.fetch_offsets("g", None)[("t", 1)][0] == 7
    r = c.call(9, 10, {"groups": [
        {"group_id": "g", "member_id": None, "member_epoch": -1,
         "topics": [{"topic_id": tid, "partition_indexes": [0, 1]},
                    {"topic_id": ghost, "partition_indexes": [0]}]},
        {"group_id": "g", "member_id": None, "member_epoch": -1, "topics": None}],
        "require_stable": True})
    named, everything = r["groups"]
    assert named["error_code"] == 0
    t, g = named["topics"]
    assert t["topic_id"] == tid
    assert [(p["partition_index"], p["committed_offset"], p["metadata"])
            for p in t["partitions"]] == [(0, -1, ""), (1, 7, "m")]
    assert g["topic_id"] == ghost and g["partitions"][0]["error_code"] == E.UNKNOWN_TOPIC_ID
    assert [(x["topic_id"], [p["committed_offset"] for p in x["partitions"]])
            for x in everything["topics"]] == [(tid, [7])]


def test_create_topics_v5_plus_answers_with_configs_and_v7_the_id(c, broker):
    r = c.call(19, 7, {"topics": [{"name": "t", "num_partitions": 3, "replication_factor": 1,
                                   "assignments": [], "configs": [
                                       {"name": "retention.ms", "value": "1000"}]}],
                       "timeout_ms": 5000, "validate_only": False})
    t = r["topics"][0]
    assert t["error_code"] == 0 and t["num_partitions"] == 3 and t["replication_factor"] == 1
    assert uuid.UUID(bytes=t["topic_id"]).hex == broker.topic_id("t")
    cfg = {e["name"]: e for e in t["configs"]}
    assert cfg["retention.ms"]["value"] == "1000" and cfg["retention.ms"]["config_source"] == 1
    assert cfg["cleanup.policy"]["value"] == "delete" and cfg["cleanup.policy"]["config_source"] == 5
    assert cfg["min.insync.replicas"]["config_source"] == 3  # a broker default, as in Kafka 4
    again = c.call(19, 7, {"topics": [{"name": "t", "num_partitions": 3, "replication_factor": 1,
                                       "assignments": [], "configs": []}],
                           "timeout_ms": 5000, "validate_only": False})["topics"][0]
    assert again["error_code"] == E.TOPIC_ALREADY_EXISTS
    assert (again["num_partitions"], again["topic_id"], again["configs"]) == (-1, Z, [])
    vo = c.call(19, 5, {"topics": [{"name": "u", "num_partitions": -1, "replication_factor": -1,
                                    "assignments": [], "configs": [
                                        {"name": "segment.bytes", "value": "1048576"}]}],
                        "timeout_ms": 5000, "validate_only": True})["topics"][0]
    assert vo["error_code"] == 0 and vo["num_partitions"] == broker.num_partitions
    assert {e["name"]: e["value"] for e in vo["configs"]}["segment.bytes"] == "1048576"
    assert "u" not in broker.list_topics()


def test_delete_topics_v6_by_name_or_id(c, broker):
    broker.create_topic("a", partitions=1)
    broker.create_topic("b", partitions=1)
    ids = _ids(c, "a", "b")
    ghost = uuid.uuid4().bytes
    r = c.call(20, 6, {"topics": [{"name": None, "topic_id": ids["a"]},
                                  {"name": "b", "topic_id": Z},
                                  {"name": None, "topic_id": ghost},
                                  {"name": "nope", "topic_id": Z}], "timeout_ms": 5000})
    a, b, g, n = r["responses"]
    assert (a["name"], a["topic_id"], a["error_code"]) == ("a", ids["a"], 0)
    assert (b["name"], b["topic_id"], b["error_code"]) == ("b", ids["b"], 0)
    assert (g["name"], g["topic_id"], g["error_code"]) == (None, ghost, E.UNKNOWN_TOPIC_ID)
    assert g["error_message"] == "This server does not host this topic ID."
    assert (n["error_code"], n["topic_id"]) == (E.UNKNOWN_TOPIC_OR_PARTITION, Z)
    assert broker.list_topics() == []


def test_list_offsets_v11_and_spec_versions(c, broker):
    broker.create_topic("t", partitions=1)
    broker.partition_log("t", 0).append(encode_batch([(None, b"v")]))

    def lo(v: int, ts: int) -> dict:
        return c.call(2, v, {"replica_id": -1, "isolation_level": 0, "timeout_ms": 1000,
                             "topics": [{"name": "t", "partitions": [
                                 {"partition_index": 0, "current_leader_epoch": -1,
                                  "timestamp": ts}]}]})["topics"][0]["partitions"][0]

    p = lo(11, -6)  # earliest pending upload: nothing is tiered, so none
    assert (p["error_code"], p["offset"], p["leader_epoch"]) == (0, -1, -1)
    assert lo(11, -1)["offset"] == 1
    assert lo(10, -6)["error_code"] == E.UNSUPPORTED_VERSION  # -6 needs v11
    assert lo(6, -3)["error_code"] == E.UNSUPPORTED_VERSION  # max timestamp needs v7
    assert lo(7, -3)["offset"] == 0


def test_fetch_high_watermark_covers_records_an_append_raced_in(c, broker, server, monkeypatch):
    """An append landing between Fetch's look at the end offset and its read must not leave
    records at or above the high watermark the response states (clients count lag from it)."""
    broker.create_topic("t", partitions=1)
    tid = _ids(c, "t")["t"]
    plog = broker.partition_log("t", 0)
    orig = plog.read

    def racing_read(offset: int, max_bytes: int):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(plog, "read", orig)
        plog.append(encode_batch([(None, b"raced")]))  # lands after the end offset was read
        return orig(offset, max_bytes)

    monkeypatch.setattr(plog, "read", racing_read)
    part = c.call(1, 16, fetch_body([{"topic_id": tid, "partitions": [fetch_partition(0, 0)]}])
                  )["responses"][0]["partitions"][0]
    assert part["records"], "the raced-in batch is in the response"
    assert part["high_watermark"] == 1 and part["last_stable_offset"] == 1
