"""Client quotas: Kafka's entity precedence, Describe/AlterClientQuotas on the wire, and a
fast producer held to its byte rate by throttling."""

from __future__ import annotations

import os
import sys
import time

import lmdb
import pytest
from confluent_kafka import Producer

from logmq.server.quotas import QuotaManager
from logmq.testing.server import LogMQServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from acl_util import Wire, secure_server  # noqa: E402


def entity(**names):
    return [{"entity_type": t.replace("_", "-"), "entity_name": n} for t, n in names.items()]


def alter(q: QuotaManager, ent, **values):
    r = q.alter({"entries": [{"entity": ent, "ops": [
        {"key": k, "value": v, "remove": v is None} for k, v in values.items()]}],
        "validate_only": False}, 1, None)
    return r["entries"][0]["error_code"]


@pytest.fixture
def quotas(tmp_path):
    env = lmdb.open(str(tmp_path / "m"), max_dbs=4, map_size=1 << 22)
    yield QuotaManager(env)
    env.close()


def test_kafka_entity_precedence(quotas):
    key = "producer_byte_rate"
    assert quotas.quota_for(key, "alice", "app") is None
    alter(quotas, entity(client_id=None), producer_byte_rate=1)
    alter(quotas, entity(client_id="app"), producer_byte_rate=2)
    alter(quotas, entity(user=None), producer_byte_rate=3)
    assert quotas.quota_for(key, "alice", "app") == (((("user", "alice"),)), 3.0)
    alter(quotas, entity(user=None, client_id=None), producer_byte_rate=4)
    alter(quotas, entity(user=None, client_id="app"), producer_byte_rate=5)
    alter(quotas, entity(user="alice"), producer_byte_rate=6)
    assert quotas.quota_for(key, "alice", "app")[1] == 6
    assert quotas.quota_for(key, "bob", "app")[1] == 5
    assert quotas.quota_for(key, "bob", "other")[1] == 4
    alter(quotas, entity(user="alice", client_id=None), producer_byte_rate=7)
    alter(quotas, entity(user="alice", client_id="app"), producer_byte_rate=8)
    assert quotas.quota_for(key, "alice", "app") == (
        (("client-id", "app"), ("user", "alice")), 8.0)
    assert quotas.quota_for(key, "alice", "x")[1] == 7
    assert quotas.quota_for("consumer_byte_rate", "alice", "app") is None
    assert alter(quotas, entity(user="alice", client_id="app"), producer_byte_rate=None) == 0
    assert quotas.quota_for(key, "alice", "app")[1] == 7


def test_bad_quota_changes_are_refused(quotas):
    assert alter(quotas, entity(user="a"), bogus_rate=1) == 42
    assert alter(quotas, entity(user="a"), producer_byte_rate=-1) == 42
    assert alter(quotas, entity(ip="1.2.3.4"), producer_byte_rate=1) == 42
    assert alter(quotas, entity(ip="1.2.3.4"), connection_creation_rate=5) == 0
    assert quotas.describe({"components": [], "strict": False}, 1, None)["entries"][0][
        "entity"] == entity(ip="1.2.3.4")


def test_request_percentage_throttles_by_handler_time(quotas):
    alter(quotas, entity(user="alice"), request_percentage=50)

    class Client:
        client_id = "c"

    c = Client()
    resp = quotas.charge(3, {}, {"throttle_time_ms": 0}, c, "User:alice", 1.0)
    # 1 s of handler time at 50 %: 2 s of allowance, minus the burst credit
    assert 1400 <= resp["throttle_time_ms"] <= 1500
    assert quotas.pending_delay(c) > 1.3 and quotas.pending_delay(c) == 0.0  # once


def test_describe_and_alter_client_quotas_on_the_wire(tmp_path):
    srv = secure_server(str(tmp_path / "d"))
    try:
        with Wire(srv, "admin") as w:
            r = w.call(49, 1, {"entries": [{"entity": entity(user="alice"), "ops": [
                {"key": "producer_byte_rate", "value": 1024.0, "remove": False},
                {"key": "request_percentage", "value": 25.0, "remove": False}]}],
                "validate_only": False})
            assert r["entries"][0]["error_code"] == 0
            r = w.call(48, 1, {"components": [
                {"entity_type": "user", "match_type": 0, "match": "alice"}], "strict": True})
            assert r["error_code"] == 0
            assert r["entries"] == [{"entity": entity(user="alice"), "values": [
                {"key": "request_percentage", "value": 25.0},  # in Kafka's order
                {"key": "producer_byte_rate", "value": 1024.0}]}]
            r = w.call(48, 1, {"components": [
                {"entity_type": "client-id", "match_type": 2, "match": None}],
                "strict": False})
            assert r["entries"] == []
        with Wire(srv, "alice") as w:  # no ALTER_CONFIGS / DESCRIBE_CONFIGS on the cluster
            r = w.call(49, 1, {"entries": [{"entity": entity(user="alice"), "ops": [
                {"key": "producer_byte_rate", "value": 1e9, "remove": False}]}],
                "validate_only": False})
            assert r["entries"][0]["error_code"] == 31
            r = w.call(48, 1, {"components": [], "strict": False})
            assert r["error_code"] == 31
    finally:
        srv.stop()


def test_a_quota_throttles_a_fast_producer_to_its_rate(tmp_path):
    rate = 200_000  # bytes per second
    srv = LogMQServer(str(tmp_path / "d"), fsync="never").start()
    try:
        srv.create_topic("fast")
        srv._server.security.quotas.alter({"entries": [{"entity": entity(client_id="fast"),
                                                        "ops": [{"key": "producer_byte_rate",
                                                                 "value": rate}]}]}, 1, None)
        throttles: list[int] = []
        p = Producer({"bootstrap.servers": srv.bootstrap, "client.id": "fast",
                      "linger.ms": 5, "batch.size": 16384, "compression.type": "none",
                      "queue.buffering.max.kbytes": 64,
                      "throttle_cb": lambda ev: throttles.append(ev.throttle_time)})
        delivered: list[tuple[float, int]] = []

        def on_delivery(err, msg):
            assert err is None, err
            delivered.append((time.monotonic(), len(msg.value())))

        value = b"x" * 1000
        start = time.monotonic()
        end = start + 3.5  # a bounded window; the first second pays for the burst credit
        while time.monotonic() < end:
            try:
                p.produce("fast", value, on_delivery=on_delivery)
            except BufferError:
                p.poll(0.05)
            p.poll(0)
        p.flush(15)
        window = [n for t, n in delivered if start + 1.0 <= t < end]
        measured = sum(window) / (end - start - 1.0)
        print(f"quota {rate} B/s, measured {measured:.0f} B/s")
        assert abs(measured - rate) <= 0.2 * rate, (measured, rate)
        assert throttles and max(throttles) > 0  # the client was told, as Kafka tells it
    finally:
        srv.stop()


def test_fetch_bytes_count_against_consumer_byte_rate(quotas):
    alter(quotas, entity(client_id="c"), consumer_byte_rate=1000)

    class Client:
        client_id = "c"

    resp = {"responses": [{"topic": "t", "partitions": [{"records": b"x" * 1500}]}]}
    out = quotas.charge(1, {}, resp, Client(), "User:ANONYMOUS", 0.0)
    # 1500 bytes at 1000 B/s, less the 0.5 s burst credit
    assert 990 <= out["throttle_time_ms"] <= 1000


def test_throttled_response_comes_at_once_and_the_next_request_waits(tmp_path):
    """KIP-219: the over-quota response is sent with its throttle time right away; the
    connection is muted after it, so the next request is read only once the time is up."""
    from logmq.codec.records import encode_batch

    srv = secure_server(str(tmp_path / "d"), authorizer=False)
    try:
        srv.create_topic("t")
        with Wire(srv, "slow") as w:
            w.call(49, 1, {"entries": [{"entity": entity(client_id="slow"), "ops": [
                {"key": "producer_byte_rate", "value": 10_000.0, "remove": False}]}],
                "validate_only": False})
            batch = encode_batch([(None, b"x" * 10_000)])  # 1 s of quota, 0.5 s of credit
            t0 = time.monotonic()
            r = w.call(0, 8, {"transactional_id": None, "acks": 1, "timeout_ms": 1000,
                              "topic_data": [{"name": "t", "partition_data": [
                                  {"index": 0, "records": batch}]}]})
            answered = time.monotonic() - t0
            throttle = r["throttle_time_ms"]
            assert r["responses"][0]["partition_responses"][0]["error_code"] == 0
            assert 400 <= throttle <= 520, throttle
            assert answered < throttle / 1000  # not held back itself
            t1 = time.monotonic()
            w.call(3, 8, {"topics": [], "allow_auto_topic_creation": False,
                          "include_cluster_authorized_operations": False,
                          "include_topic_authorized_operations": False})
            waited = time.monotonic() - t1
            assert waited >= throttle / 1000 - 0.05 - answered, (waited, throttle)
    finally:
        srv.stop()
