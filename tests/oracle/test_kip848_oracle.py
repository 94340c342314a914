"""KIP-848 (``group.protocol=consumer``) against Apache Kafka 4.4 and logmq: the same
observations (kip848_scenario.py says what), key by key.

Both brokers get their own instance here, configured alike: consumer-group heartbeats every
500 ms, a 10 s session timeout, and Kafka's ``group.consumer.migration.policy=disabled``
(logmq does not convert a group with members from one protocol to the other; with the policy
off Kafka refuses those joiners too, which is what gets compared). One extra JVM, ~10 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from .conftest import KafkaCluster, ServerProcess, record_result

pytestmark = pytest.mark.oracle

HERE = Path(__file__).parent
SCENARIO_TIMEOUT_S = 300
_cache: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def kip848_brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-kip848"), extra_config={
        "auto.create.topics.enable": "false",
        "group.consumer.migration.policy": "disabled",
        "group.consumer.min.heartbeat.interval.ms": "200",
        "group.consumer.heartbeat.interval.ms": "500",
        "group.consumer.min.session.timeout.ms": "2000",
        "group.consumer.session.timeout.ms": "10000"})
    base = tmp_path_factory.mktemp("logmq-kip848")
    cfg = base / "serve.toml"
    cfg.write_text("auto_create_topics = false\nnum_partitions = 1\n"
                   "group_consumer_heartbeat_interval_ms = 500\n"
                   "group_consumer_session_timeout_ms = 10000\n")
    cluster.start()
    try:
        with ServerProcess(str(base / "data"), "--config", str(cfg)) as srv:
            yield {"kafka": cluster.bootstrap, "logmq": srv.bootstrap}
    finally:
        cluster.stop()


def _run(bootstrap: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(HERE / "kip848_scenario.py"), "--bootstrap", bootstrap,
         "--prefix", "k848"], capture_output=True, text=True, timeout=SCENARIO_TIMEOUT_S,
        stdin=subprocess.DEVNULL)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            out: dict[str, Any] = json.loads(line)
            return out
    raise AssertionError(f"KIP-848 scenario against {bootstrap} printed no result "
                         f"(exit {proc.returncode}):\n{proc.stderr[-4000:]}")


JAVA = HERE.parents[1] / "interop" / "java"


def _run_java(bootstrap: str) -> dict[str, Any]:
    """interop/java's Kip848 main class (KafkaConsumer 4.4.0, group.protocol=consumer)."""
    proc = subprocess.run(
        ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp",
         f"target/classes{os.pathsep}target/lib/*", "Kip848", "--bootstrap", bootstrap,
         "--prefix", "k848j"], capture_output=True, text=True, timeout=SCENARIO_TIMEOUT_S,
        cwd=JAVA, stdin=subprocess.DEVNULL)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            out: dict[str, Any] = json.loads(line)
            return out
    raise AssertionError(f"Kip848.java against {bootstrap} printed no result "
                         f"(exit {proc.returncode}):\n{proc.stderr[-4000:]}")


_java_cache: dict[str, dict[str, Any]] = {}


def _observe_java(brokers: dict[str, str]) -> dict[str, dict[str, Any]]:
    if not (JAVA / "target" / "classes" / "Kip848.class").exists():
        pytest.fail("interop/java is not built: mvn -q -B -f interop/java/pom.xml package "
                    "-DskipTests")
    if not _java_cache:
        with ThreadPoolExecutor(2) as ex:
            futs = {k: ex.submit(_run_java, bs) for k, bs in brokers.items()}
            _java_cache.update({k: f.result() for k, f in futs.items()})
    return _java_cache


def _observe(brokers: dict[str, str]) -> dict[str, dict[str, Any]]:
    if not _cache:
        with ThreadPoolExecutor(2) as ex:
            futs = {k: ex.submit(_run, bs) for k, bs in brokers.items()}
            _cache.update({k: f.result() for k, f in futs.items()})
    return _cache


OPS = ["versions", "a_alone", "split", "describe_two", "second", "after_leave",
       "describe_one", "committed", "describe_empty", "raw_join", "raw_fenced",
       "raw_unknown_member", "raw_unknown_group", "raw_no_subscription", "raw_bad_assignor",
       "raw_empty_member_v1", "raw_leave", "raw_leave_again", "static_join", "static_dup",
       "static_leave", "static_rejoin", "static_old_id", "static_after", "hb_into_classic",
       "consumer_join", "classic_join_into_consumer", "describe_groups_of_consumer",
       "list_groups", "cgd_of_classic", "cgd_unknown"]


@pytest.mark.parametrize("op", OPS)
def test_same_kip848_observation(op: str, kip848_brokers: dict[str, str]) -> None:
    obs = _observe(kip848_brokers)
    k, m = obs["kafka"].get(op), obs["logmq"].get(op)
    record_result("confluent-kafka", f"kip848_{op}", {
        "kafka": k, "logmq": m, "same": k == m, "kafka_ok": k is not None,
        "expected_difference": None})
    assert k is not None, f"Apache Kafka gave no {op}"
    assert k == m, (f"{op} differs\n kafka: {json.dumps(k, sort_keys=True)}\n"
                    f" logmq: {json.dumps(m, sort_keys=True)}")


def test_kafka_did_what_the_scenario_expects(kip848_brokers: dict[str, str]) -> None:
    """The comparison above means something only if the scenario worked on Kafka (it would
    also pass if both brokers consumed nothing)."""
    k = _observe(kip848_brokers)["kafka"]
    assert k["a_alone"] == {"ok": True, "held": 4, "exact": True}
    assert k["split"]["ok"] and k["split"]["disjoint"] and k["split"]["union"] == [0, 1, 2, 3]
    assert k["second"] == {"ok": True, "no_dup": True, "no_gap": True, "owners": True}
    assert k["after_leave"] == {"ok": True, "exact": True}
    assert k["committed"] == [[p, 60] for p in range(4)]


JAVA_OPS = ["a_alone", "split", "second", "after_leave", "committed", "regex"]


@pytest.mark.parametrize("op", JAVA_OPS)
def test_java_consumer_protocol_same_observation(op: str,
                                                 kip848_brokers: dict[str, str]) -> None:
    obs = _observe_java(kip848_brokers)
    k, m = obs["kafka"].get(op), obs["logmq"].get(op)
    record_result("java", f"kip848_{op}", {
        "kafka": k, "logmq": m, "same": k == m, "kafka_ok": k is not None,
        "expected_difference": None})
    assert k is not None and (not isinstance(k, dict) or k.get("ok", True)), \
        f"Apache Kafka did not do what Kip848.java expects for {op}: {k}"
    assert k == m, (f"{op} differs\n kafka: {json.dumps(k, sort_keys=True)}\n"
                    f" logmq: {json.dumps(m, sort_keys=True)}")
