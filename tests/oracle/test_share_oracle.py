"""KIP-932 share groups through confluent-kafka's ShareConsumer, against Apache Kafka 4.4 and
logmq: the scenarios of tests/share_scenarios.py (implicit accept, explicit release and
reject, lock expiry, two consumers) must be observed alike.

Kafka 4.4 serves share groups with no feature flag (ShareGroupHeartbeat v1, ShareGroupDescribe
v1, ShareFetch v1-2, ShareAcknowledge v1-2, as logmq). Its group-level lock duration may not
go below ``group.share.min.record.lock.duration.ms`` (15 s by default), so this module's
broker lowers that to 1 s for the lock-expiry scenario: a broker of its own (~15 s to start).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import share_scenarios as S

from .conftest import KafkaCluster, ServerProcess, record_result

pytestmark = pytest.mark.oracle

SCENARIOS = ["accept_implicit", "release_redelivers", "reject_not_redelivered", "lock_expiry",
             "two_consumers"]
_cache: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def share_brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-share"), extra_config={
        "auto.create.topics.enable": "false",
        "group.share.min.record.lock.duration.ms": "1000"})
    base = tmp_path_factory.mktemp("logmq-share")
    cfg = base / "serve.toml"
    cfg.write_text("auto_create_topics = false\nnum_partitions = 1\n")
    cluster.start()
    try:
        with ServerProcess(str(base / "data"), "--config", str(cfg)) as srv:
            yield {"kafka": cluster.bootstrap, "logmq": srv.bootstrap}
    finally:
        cluster.stop()


def _plain(x: Any) -> Any:
    """JSON-able, with the per-run topic name left out (it differs by design)."""
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items() if k != "topic"}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _run(bootstrap: str, op: str) -> dict[str, Any]:
    try:
        return _plain(getattr(S, op)(bootstrap))
    except Exception as e:  # recorded, then asserted on
        return {"error": f"{type(e).__name__}: {e}"}


@pytest.mark.parametrize("op", SCENARIOS)
def test_share_consumer_matches_kafka(share_brokers: dict[str, str], op: str) -> None:
    k = _run(share_brokers["kafka"], op)
    m = _run(share_brokers["logmq"], op)
    same = k == m
    record_result("confluent-kafka", f"share_{op}", {
        "kafka": k, "logmq": m, "same": same, "kafka_ok": "error" not in k,
        "expected_difference": None})
    assert "error" not in k, f"Apache Kafka failed {op}: {k}"
    assert same, (f"{op} differs\n kafka: {json.dumps(k, sort_keys=True)}\n"
                  f" logmq: {json.dumps(m, sort_keys=True)}")


# ---------------------------------------------------------------------------- Java client
# Kafka's own console share consumer is the Java KafkaShareConsumer, and kafka-share-groups
# (ShareGroupCommand) is the Java Admin client's share-group API: both from the cached jars.
def _java(main: str, *args: str) -> list[str]:
    import subprocess

    from kafka_oracle import java_cmd

    p = subprocess.run(java_cmd(main, *args, heap="-Xmx256m", short_lived=True),
                       capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError(f"{main} exited {p.returncode}: {p.stderr[-2000:]}")
    return p.stdout.split("\n")


def _console(bootstrap: str, topic: str, group: str, n: int, *flags: str) -> list[str]:
    out = _java("org.apache.kafka.tools.consumer.ConsoleShareConsumer",
                "--bootstrap-server", bootstrap, "--topic", topic, "--group", group,
                "--max-messages", str(n), "--timeout-ms", "30000", *flags)
    return sorted(line for line in out if line)


def _offsets(bootstrap: str, group: str) -> list[list[str]]:
    out = _java("org.apache.kafka.tools.consumer.group.ShareGroupCommand",
                "--bootstrap-server", bootstrap, "--describe", "--group", group, "--offsets")
    rows = [line.split() for line in out if line.strip()]
    return [r[2:] for r in rows[1:]]  # partition, start offset, lag (names differ per run)


def java_scenario(bootstrap: str) -> dict[str, Any]:
    topic, group = S.new_group(bootstrap)
    S.produce(bootstrap, topic, [b"j%d" % i for i in range(6)])
    accepted = _console(bootstrap, topic, group, 4)
    after_accept = _offsets(bootstrap, group)
    released = _console(bootstrap, topic, group, 4, "--release")
    rejected = _console(bootstrap, topic, group, 2, "--reject")
    S.produce(bootstrap, topic, [b"marker"])
    tail = _console(bootstrap, topic, group, 1)
    # (no describe after the last run: Kafka's start offset there trails the acknowledgement
    # the console consumer sends on close, logmq's does not)
    tool = ("org.apache.kafka.tools.consumer.group.ShareGroupCommand", "--bootstrap-server",
            bootstrap, "--group", group)
    reset = _java(*tool, "--reset-offsets", "--to-offset", "2", "--topic", topic, "--execute")
    after_reset = _offsets(bootstrap, group)
    again = _console(bootstrap, topic, group, 5)
    deleted = _java(*tool, "--delete-offsets", "--topic", topic)
    return {"accepted": accepted, "after_accept": after_accept, "released": released,
            "rejected": rejected, "tail": tail, "reset": [r.split()[2:] for r in reset[1:]
                                                         if r.strip()],
            "after_reset": after_reset, "again": again,
            "deleted": [r.split()[1:] for r in deleted[1:] if r.strip()],
            "after_delete": _offsets(bootstrap, group)}


def test_java_share_consumer_and_share_groups_tool_match_kafka(
        share_brokers: dict[str, str]) -> None:
    def run(b: str) -> dict[str, Any]:
        try:
            return java_scenario(b)
        except Exception as e:
            return {"error": f"{type(e).__name__}: {e}"}

    k, m = run(share_brokers["kafka"]), run(share_brokers["logmq"])
    same = k == m
    record_result("java", "share_console_consumer", {
        "kafka": k, "logmq": m, "same": same, "kafka_ok": "error" not in k,
        "expected_difference": None})
    assert "error" not in k, f"Apache Kafka failed: {k}"
    assert same, f"differs\n kafka: {json.dumps(k)}\n logmq: {json.dumps(m)}"
