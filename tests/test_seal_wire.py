"""Encryption at rest over ``logmq serve``: Kafka clients read sealed topics, the files do not
show the records, a wrong key answers KAFKA_STORAGE_ERROR, and SIGKILL recovery still holds."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from logmq.codec.seal import KEY_ENV, new_key
from logmq.kafka_codes import ErrorCode

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import crash_harness  # noqa: E402
from server_util import ServerProcess  # noqa: E402
from wire_util import RawClient  # noqa: E402

MARK = b"WIRE-PLAINTEXT"
N = 300


def _key_file(path, key: str) -> str:
    path.write_text(json.dumps({"active": "w1", "keys": {"w1": key}}))
    path.chmod(0o600)
    return str(path)


def _stored(data: str, topic: str) -> bytes:
    return b"".join(open(f, "rb").read() for f in glob.glob(f"{data}/{topic}-*/*.log"))


def _fetch(c: RawClient, topic: str) -> dict:
    return c.call(1, 11, {"max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                          "session_epoch": -1, "topics": [{"topic": topic, "partitions": [
                              {"partition": 0, "fetch_offset": 0,
                               "partition_max_bytes": 1 << 20}]}]})["responses"][0][
                                   "partitions"][0]


def _aiokafka_values(bootstrap: str) -> list[bytes]:
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> list[bytes]:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             check_crcs=True)
        await c.start()
        try:
            tp = TopicPartition("sealed", 0)
            c.assign([tp])
            await c.seek_to_beginning(tp)
            out: list[bytes] = []
            deadline = time.monotonic() + 30
            while len(out) < N and time.monotonic() < deadline:
                for msgs in (await c.getmany(timeout_ms=500)).values():
                    out += [m.value for m in msgs]
            return out
        finally:
            await c.stop()

    return asyncio.run(run())


def test_kafka_clients_read_a_sealed_topic_and_a_wrong_key_is_a_storage_error(tmp_path):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    data = str(tmp_path / "data")
    kf = _key_file(tmp_path / "keys.json", new_key())
    with ServerProcess(data, "--encryption-key-file", kf) as srv:
        admin = AdminClient({"bootstrap.servers": srv.bootstrap})
        admin.create_topics([NewTopic("sealed", 1, 1, config={"encryption": "aes-256-gcm"})]
                            )["sealed"].result(10)
        p = Producer({"bootstrap.servers": srv.bootstrap, "linger.ms": 5,
                      "enable.idempotence": True, "compression.type": "lz4"})
        for i in range(N):
            p.produce("sealed", MARK + b"-%d" % i, key=b"k%d" % (i % 7))
        assert p.flush(30) == 0
        c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "g",
                      "auto.offset.reset": "earliest", "check.crcs": True})
        c.assign([TopicPartition("sealed", 0, 0)])
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(got) < N and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value())
        c.close()
        assert got == [MARK + b"-%d" % i for i in range(N)]
        kc = KafkaConsumer(bootstrap_servers=srv.bootstrap, auto_offset_reset="earliest",
                           consumer_timeout_ms=5000, check_crcs=True)
        kc.assign([KTP("sealed", 0)])
        assert [m.value for m in kc] == got
        kc.close()
        assert _aiokafka_values(srv.bootstrap) == got
        if shutil.which("kcat"):  # on PATH in CI
            out = subprocess.run(["kcat", "-C", "-b", srv.bootstrap, "-t", "sealed", "-o",
                                  "beginning", "-e", "-q", "-f", "%s\\n"],
                                 capture_output=True, timeout=60, check=True).stdout
            assert out.split(b"\n")[:-1] == got
        elif os.environ.get("CI"):
            pytest.fail("kcat is missing in CI")
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

        off = ConfigResource("topic", "sealed", incremental_configs=[ConfigEntry(
            "encryption", "none", incremental_operation=AlterConfigOpType.SET)])
        with pytest.raises(KafkaException, match="cannot be turned off"):
            admin.incremental_alter_configs([off])[off].result(10)
    assert MARK not in _stored(data, "sealed")
    wrong = _key_file(tmp_path / "wrong.json", new_key())
    with ServerProcess(data, "--encryption-key-file", wrong) as srv:
        c2 = RawClient(srv.host, srv.port)
        part = _fetch(c2, "sealed")
        assert part["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
        assert not part["records"]  # never the ciphertext
        assert part["high_watermark"] == N  # offsets need no key
        c2.close()
        assert srv.alive()
        deadline = time.monotonic() + 10  # the operator is told why, in the server's log
        while not any("does not open with key" in ln for ln in srv.lines):
            assert time.monotonic() < deadline, "".join(srv.lines)
            time.sleep(0.05)


def test_sigkill_mid_produce_then_recovery_on_a_sealed_topic(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, f"crash:{new_key()}")  # the harness's children inherit it
    data = str(tmp_path / "data")
    stats = crash_harness.run(data, rounds=6, seed=99, encrypt=True)
    assert stats.errors == [] and stats.rounds == 6 and stats.acked_records > 6
    probe = crash_harness.value_for(0, 1)[4:30]  # a plaintext run of the first value
    stored = _stored(data, crash_harness.TOPIC)
    assert probe not in stored and b"probe" not in stored  # the harness's own appends too
    import logmq
    from logmq.errors import EncryptionKeyError

    with logmq.open(data, cleaner=False) as log:  # and it is really sealed, not just odd
        assert log.topic_config(crash_harness.TOPIC)["encryption"] == "aes-256-gcm"
    monkeypatch.delenv(KEY_ENV)
    with logmq.open(data, cleaner=False) as log, pytest.raises(EncryptionKeyError):
        log.read_batches((crash_harness.TOPIC, 0), 0)
