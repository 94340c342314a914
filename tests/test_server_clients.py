"""Real Kafka clients against ``logmq serve`` (a subprocess on a loopback port)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_util import ServerProcess  # noqa: E402

N = 500


@pytest.fixture
def server(tmp_path):
    with ServerProcess(str(tmp_path / "data")) as s:
        yield s


def _expected(i: int) -> tuple[bytes, bytes, list[tuple[str, bytes]], int]:
    return (b"key-%d" % (i % 17), b"value-%d" % i, [("h", b"%d" % i)], 1_700_000_000_000 + i)


def test_confluent_kafka_produce_consume_exact(server):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic("ck", num_partitions=3, replication_factor=1)])["ck"].result(10)
    p = Producer({"bootstrap.servers": server.bootstrap, "linger.ms": 5,
                  "enable.idempotence": True, "acks": "all"})
    for i in range(N):
        k, v, h, ts = _expected(i)
        p.produce("ck", v, key=k, headers=h, timestamp=ts)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "ck-reader",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition("ck", p, 0) for p in range(3)])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < N and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        got.append((m.key(), m.value(), m.headers(), m.timestamp()[1]))
    c.close()
    assert sorted(got, key=lambda r: r[3]) == [
        (k, v, h, ts) for k, v, h, ts in map(_expected, range(N))]


def test_kafka_python_idempotent_produce_and_group_consume(server):
    from kafka import KafkaConsumer, KafkaProducer

    p = KafkaProducer(bootstrap_servers=server.bootstrap, acks="all",
                      enable_idempotence=True, linger_ms=5)
    for i in range(N):
        k, v, h, ts = _expected(i)
        p.send("kp", v, key=k, headers=h, timestamp_ms=ts)
    p.flush(30)
    p.close()
    c = KafkaConsumer("kp", bootstrap_servers=server.bootstrap, group_id="kp-g",
                      auto_offset_reset="earliest", consumer_timeout_ms=5000)
    got = [(m.key, m.value, list(m.headers), m.timestamp) for m in c]
    c.close()
    assert sorted(got, key=lambda r: r[3]) == [
        (k, v, h, ts) for k, v, h, ts in map(_expected, range(N))]


def test_aiokafka_roundtrip_and_offsets_for_times(server):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    async def main() -> None:
        p = AIOKafkaProducer(bootstrap_servers=server.bootstrap)
        await p.start()
        for i in range(100):
            k, v, h, ts = _expected(i)
            await p.send("ak", v, key=k, headers=h, timestamp_ms=ts, partition=0)
        await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=server.bootstrap, auto_offset_reset="earliest")
        await c.start()
        tp = TopicPartition("ak", 0)
        c.assign([tp])
        found = await c.offsets_for_times({tp: 1_700_000_000_000 + 42})
        assert found[tp].offset == 42
        c.seek(tp, 40)
        got = []
        while len(got) < 60:
            batch = await c.getmany(timeout_ms=2000)
            for msgs in batch.values():
                got.extend(msgs)
        await c.stop()
        assert [m.offset for m in got] == list(range(40, 100))
        assert [m.value for m in got] == [b"value-%d" % i for i in range(40, 100)]

    asyncio.run(main())


def test_kcat_produce_and_consume(server):
    kcat = shutil.which("kcat")
    if kcat is None and not os.environ.get("CI"):
        pytest.skip("kcat is not installed (apt-get install kcat; .ci/run installs it)")
    assert kcat, "kcat must be installed (CI installs it from Debian)"
    lines = "".join(f"k{i}:line-{i}\n" for i in range(50))
    subprocess.run([kcat, "-b", server.bootstrap, "-t", "kc", "-P", "-K:", "-p", "0"],
                   input=lines, text=True, check=True, timeout=30)
    out = subprocess.run([kcat, "-b", server.bootstrap, "-t", "kc", "-C", "-e", "-o",
                          "beginning", "-f", "%k=%s@%o\n"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    assert out.splitlines() == [f"k{i}=line-{i}@{i}" for i in range(50)]


def test_admin_create_delete_describe(server):
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    fs = admin.create_topics([NewTopic("adm", num_partitions=4, replication_factor=1,
                                       config={"retention.ms": "12345"})])
    fs["adm"].result(10)
    md = admin.list_topics(timeout=10)
    assert len(md.topics["adm"].partitions) == 4
    res = ConfigResource(ConfigResource.Type.TOPIC, "adm")
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["retention.ms"].value == "12345"
    assert configs["cleanup.policy"].value == "delete"
    dup = admin.create_topics([NewTopic("adm", num_partitions=1, replication_factor=1)])
    with pytest.raises(Exception, match="TOPIC_ALREADY_EXISTS|already exists"):
        dup["adm"].result(10)
    admin.delete_topics(["adm"])["adm"].result(10)
    assert "adm" not in admin.list_topics(timeout=10).topics


def test_garbage_and_oversized_frames_close_only_that_connection(server):
    from logmq.protocol import decode_response, encode_request

    # a complete frame whose bytes are not a request (api key -1, then noise)
    garbage = b"\xff\xff" + bytes(range(2, 64))
    with socket.create_connection((server.host, server.port)) as s:
        s.sendall(struct.pack(">i", len(garbage)) + garbage)
        s.settimeout(10)
        assert s.recv(100) == b""  # the server closed it
    with socket.create_connection((server.host, server.port)) as s:
        s.sendall(struct.pack(">i", 1 << 30))  # 1 GiB frame: refused before any body
        s.settimeout(10)
        assert s.recv(100) == b""
    with socket.create_connection((server.host, server.port)) as s:
        s.sendall(struct.pack(">i", -5))
        s.settimeout(10)
        assert s.recv(100) == b""
    # and it still serves a well-behaved client
    with socket.create_connection((server.host, server.port)) as s:
        s.sendall(encode_request(18, 2, 7, "t", {}))
        s.settimeout(10)
        size = struct.unpack(">i", _recv_exact(s, 4))[0]
        corr, body = decode_response(18, 2, _recv_exact(s, size))
        assert corr == 7 and body["error_code"] == 0
        assert {k["api_key"] for k in body["api_keys"]} >= {0, 1, 3, 11, 18}
    assert server.alive()


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, "connection closed"
        buf += chunk
    return buf


def _roundtrip(s: socket.socket, api: int, version: int, corr: int, body: dict) -> dict:
    from logmq.protocol import decode_response, encode_request

    s.sendall(encode_request(api, version, corr, "test", body))
    size = struct.unpack(">i", _recv_exact(s, 4))[0]
    got_corr, resp = decode_response(api, version, _recv_exact(s, size))
    assert got_corr == corr
    return resp


def test_retried_idempotent_batch_is_not_duplicated_and_bad_crc_refused(server):
    from logmq.codec.records import encode_batch

    with socket.create_connection((server.host, server.port)) as s:
        s.settimeout(10)
        init = _roundtrip(s, 22, 1, 1, {"transactional_id": None, "transaction_timeout_ms": 1})
        pid = init["producer_id"]
        assert init["error_code"] == 0 and pid >= 0
        batch = encode_batch([(b"k", b"v1"), (b"k", b"v2")], timestamp=1, producer_id=pid,
                             producer_epoch=0, base_sequence=0)
        req = {"acks": -1, "timeout_ms": 1000, "transactional_id": None, "topic_data": [
            {"name": "idem", "partition_data": [{"index": 0, "records": batch}]}]}
        _roundtrip(s, 3, 8, 2, {"topics": [{"name": "idem"}],
                                "allow_auto_topic_creation": True})
        first = _roundtrip(s, 0, 8, 3, req)
        again = _roundtrip(s, 0, 8, 4, req)  # a client retry of the same batch
        p1 = first["responses"][0]["partition_responses"][0]
        p2 = again["responses"][0]["partition_responses"][0]
        assert p1["error_code"] == 0 and p2["error_code"] == 0
        assert p1["base_offset"] == p2["base_offset"] == 0
        gap = encode_batch([(b"k", b"v9")], timestamp=1, producer_id=pid, producer_epoch=0,
                           base_sequence=9)
        req["topic_data"][0]["partition_data"][0]["records"] = gap
        p3 = _roundtrip(s, 0, 8, 5, req)["responses"][0]["partition_responses"][0]
        assert p3["error_code"] == 45  # OUT_OF_ORDER_SEQUENCE_NUMBER
        bad = bytearray(encode_batch([(b"k", b"x")], timestamp=1))
        bad[-1] ^= 0xFF
        req["topic_data"][0]["partition_data"][0]["records"] = bytes(bad)
        p4 = _roundtrip(s, 0, 8, 6, req)["responses"][0]["partition_responses"][0]
        assert p4["error_code"] == 2  # CORRUPT_MESSAGE
        lo = _roundtrip(s, 2, 5, 7, {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": "idem", "partitions": [{"partition_index": 0, "timestamp": -1,
                                             "current_leader_epoch": -1}]}]})
        assert lo["topics"][0]["partitions"][0]["offset"] == 2  # nothing appended twice


def test_unsupported_api_versions_request_gets_v0_answer(server):
    from logmq.protocol import encode_request

    with socket.create_connection((server.host, server.port)) as s:
        s.settimeout(10)
        # ApiVersions v6 (newer than any Kafka has): a flexible (v2) request header
        v5 = encode_request(18, 5, 11, "x", {"client_software_name": "t",
                                             "client_software_version": "1"})
        s.sendall(v5[:6] + struct.pack(">h", 6) + v5[8:])
        size = struct.unpack(">i", _recv_exact(s, 4))[0]
        from logmq.protocol import decode_response

        corr, body = decode_response(18, 0, _recv_exact(s, size))
        assert corr == 11 and body["error_code"] == 35
        assert any(k["api_key"] == 0 for k in body["api_keys"])


GROUP_MEMBER = r"""
import sys, json
from confluent_kafka import Consumer, KafkaException
bootstrap, topic, name = sys.argv[1], sys.argv[2], sys.argv[3]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "g3", "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "session.timeout.ms": 6000,
              "heartbeat.interval.ms": 200, "client.id": name})
c.subscribe([topic])
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "poll":
        out = []
        for _ in range(10):
            m = c.poll(0.3)
            if m is not None and not m.error():
                out.append([m.partition(), m.offset()])
        if out:
            try:
                c.commit(asynchronous=False)
            except KafkaException:  # partitions revoked meanwhile: nothing left to commit
                pass
        print(json.dumps({"records": out, "assignment": sorted(
            tp.partition for tp in c.assignment())}), flush=True)
    elif cmd == "close":
        c.close()
        print(json.dumps({"closed": True}), flush=True)
        break
"""


def test_consumer_group_of_three_processes(tmp_path):
    import json

    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    data = str(tmp_path / "data")
    srv = ServerProcess(data).start()
    try:
        admin = AdminClient({"bootstrap.servers": srv.bootstrap})
        admin.create_topics([NewTopic("g3t", num_partitions=6, replication_factor=1)])[
            "g3t"].result(10)
        p = Producer({"bootstrap.servers": srv.bootstrap, "linger.ms": 5})
        for i in range(600):
            p.produce("g3t", b"%d" % i, key=b"k%d" % i)
        assert p.flush(30) == 0
        members = [subprocess.Popen([sys.executable, "-c", GROUP_MEMBER, srv.bootstrap,
                                     "g3t", f"m{i}"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True) for i in range(3)]

        def ask(m: subprocess.Popen, cmd: str) -> dict:
            assert m.stdin and m.stdout
            m.stdin.write(cmd + "\n")
            m.stdin.flush()
            return json.loads(m.stdout.readline())

        seen: set[tuple[int, int]] = set()
        rounds = 0
        while True:
            replies = [ask(m, "poll") for m in members]
            for r in replies:
                seen.update(map(tuple, r["records"]))
            parts = [set(r["assignment"]) for r in replies]
            if all(len(x) == 2 for x in parts) and len(seen) >= 300:
                break
            rounds += 1
            assert rounds < 200, parts
        assert set().union(*parts) == set(range(6))
        ask(members[2], "close")  # one member leaves: the other two take its partitions
        members[2].wait(30)
        rounds = 0
        while len(seen) < 600:
            replies = [ask(m, "poll") for m in members[:2]]
            for r in replies:
                seen.update(map(tuple, r["records"]))
            rounds += 1
            assert rounds < 200
        assert set().union(*(set(r["assignment"]) for r in replies)) == set(range(6))
        assert len(seen) == 600  # every record of every partition, none lost
        for m in members[:2]:
            ask(m, "close")
            m.wait(30)
        assert srv.stop() == 0  # SIGTERM: clean shutdown
        assert os.path.exists(os.path.join(data, ".clean_shutdown"))
        # committed offsets survive a server restart
        srv2 = ServerProcess(data).start()
        try:
            from confluent_kafka import Consumer, TopicPartition

            c = Consumer({"bootstrap.servers": srv2.bootstrap, "group.id": "g3"})
            committed = c.committed([TopicPartition("g3t", p) for p in range(6)], timeout=10)
            c.close()
            assert sum(tp.offset for tp in committed) == 600
        finally:
            srv2.stop()
    finally:
        if srv.alive():
            srv.stop(signal.SIGKILL)


def test_many_idle_connections_do_not_block_others(server):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    n = min(800, soft - 100)
    idle = [socket.create_connection((server.host, server.port)) for _ in range(n)]
    try:
        with socket.create_connection((server.host, server.port)) as s:
            s.settimeout(10)
            md = _roundtrip(s, 3, 8, 1, {"topics": [{"name": "busy"}],
                                         "allow_auto_topic_creation": True})
            assert md["topics"][0]["error_code"] == 0
        from confluent_kafka import Consumer, Producer, TopicPartition

        p = Producer({"bootstrap.servers": server.bootstrap})
        for i in range(100):
            p.produce("busy", b"%d" % i, partition=0)
        assert p.flush(30) == 0
        c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "x",
                      "auto.offset.reset": "earliest"})
        c.assign([TopicPartition("busy", 0, 0)])
        got = 0
        while got < 100:
            m = c.poll(10)
            assert m is not None
            if not m.error():
                got += 1
        c.close()
    finally:
        for s in idle:
            s.close()
    assert server.alive()
