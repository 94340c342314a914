"""Apache Kafka's own CLI tools (kafka-tools 4.4.0) against Kafka and against logmq.

Why: operators point ``kafka-topics``/``kafka-consumer-groups``/``kafka-configs`` at anything
that claims to be Kafka; what they print is part of what logmq promises. One fixed script runs
against both brokers (each tool is a JVM start, ~2 s) and every step is compared after
removing what legitimately differs between two clusters (addresses, topic ids).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kafka_oracle import run_cli

from .conftest import record_result
from .expected import FLUSH_MS

pytestmark = pytest.mark.oracle

TOPIC, GROUP = "cli-t", "cli-g"
ALL_CONFIGS = "deliberate: `--all` lists every topic config; logmq's set is its own (Kafka's " \
              "keys it implements, the single-valued ones like compression.type, and its own " \
              "fsync and max.queue.depth), not Kafka's ~40 (remote storage, throttles, ...); " \
              "and " + FLUSH_MS.removeprefix("deliberate: ")

#: step -> (tool, args); {bs} is the broker's bootstrap
STEPS: dict[str, tuple[str, list[str]]] = {
    "topics_create": ("kafka-topics", ["--create", "--topic", TOPIC, "--partitions", "2",
                                       "--replication-factor", "1"]),
    "topics_create_again": ("kafka-topics", ["--create", "--topic", TOPIC, "--partitions", "2"]),
    "topics_list": ("kafka-topics", ["--list", "--exclude-internal"]),
    "topics_describe": ("kafka-topics", ["--describe", "--topic", TOPIC]),
    "configs_describe": ("kafka-configs", ["--describe", "--entity-type", "topics",
                                           "--entity-name", TOPIC]),
    "configs_describe_all": ("kafka-configs", ["--describe", "--all", "--entity-type", "topics",
                                               "--entity-name", TOPIC]),
    "configs_alter": ("kafka-configs", ["--alter", "--entity-type", "topics", "--entity-name",
                                        TOPIC, "--add-config", "max.message.bytes=2000000"]),
    "configs_alter_delete": ("kafka-configs", ["--alter", "--entity-type", "topics",
                                               "--entity-name", TOPIC, "--delete-config",
                                               "max.message.bytes"]),
    "topics_alter_partitions": ("kafka-topics", ["--alter", "--topic", TOPIC,
                                                 "--partitions", "3"]),
    "leader_election": ("kafka-leader-election", ["--election-type", "preferred", "--topic",
                                                  TOPIC, "--partition", "0"]),
    "get_offsets": ("kafka-get-offsets", ["--topic", TOPIC]),
    "get_offsets_max_timestamp": ("kafka-get-offsets", ["--topic", TOPIC, "--time", "-3"]),
    "get_offsets_earliest_local": ("kafka-get-offsets", ["--topic", TOPIC, "--time", "-4"]),
    "get_offsets_latest_tiered": ("kafka-get-offsets", ["--topic", TOPIC, "--time", "-5"]),
    "groups_list": ("kafka-consumer-groups", ["--list"]),
    "groups_describe": ("kafka-consumer-groups", ["--describe", "--group", GROUP]),
    "groups_describe_state": ("kafka-consumer-groups", ["--describe", "--group", GROUP,
                                                        "--state"]),
    "groups_reset_dry_run": ("kafka-consumer-groups", [
        "--reset-offsets", "--group", GROUP, "--topic", TOPIC, "--to-earliest", "--dry-run"]),
    "groups_reset_execute": ("kafka-consumer-groups", [
        "--reset-offsets", "--group", GROUP, "--topic", f"{TOPIC}:0", "--to-offset", "1",
        "--execute"]),
    "groups_describe_after_reset": ("kafka-consumer-groups", ["--describe", "--group", GROUP]),
    "groups_delete_offsets": ("kafka-consumer-groups", ["--delete-offsets", "--group", GROUP,
                                                        "--topic", f"{TOPIC}:1"]),
    "groups_delete": ("kafka-consumer-groups", ["--delete", "--group", GROUP]),
    "transactions_list": ("kafka-transactions", ["list"]),
    "topics_delete": ("kafka-topics", ["--delete", "--topic", TOPIC]),
}

EXPECTED_CLI: dict[str, str] = {
    "configs_describe_all": ALL_CONFIGS,
}

#: the differential scenarios' transactions share the brokers too (ids and timing differ)
LIST_STEPS = {"topics_list", "groups_list", "transactions_list"}
_ADDR = re.compile(r"127\.0\.0\.1:\d+")
_TOPIC_ID = re.compile(r"TopicId: \S+\t")


def normalize(text: str) -> str:
    text = _ADDR.sub("HOST:PORT", text)
    text = _TOPIC_ID.sub("TopicId: <id>\t", text)
    # column padding depends on the widest value; compare the cells
    return "\n".join(" ".join(line.split()) for line in text.strip().splitlines())


def _prepare_group(bootstrap: str) -> None:
    """Three records on partition 0 and a committed group offset 3, through librdkafka.

    The timestamps are given (recent: an old one would meet retention): the largest is on
    offsets 1 and 2, so ``--time -3`` must answer the first record carrying it (1) on both
    brokers. Left to the producer's clock they differed by run (same ms or not).
    """
    import time

    from confluent_kafka import Consumer, Producer, TopicPartition
    p = Producer({"bootstrap.servers": bootstrap})
    now = int(time.time() * 1000)
    for v, ts in ((b"a", now - 2000), (b"b", now), (b"c", now)):
        p.produce(TOPIC, v, partition=0, timestamp=ts)
    assert p.flush(15) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                  "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(TOPIC, 0, 3)], asynchronous=False)
    c.close()


def run_script(bootstrap: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for step, (tool, args) in STEPS.items():
        if step == "get_offsets":
            _prepare_group(bootstrap)
        proc = run_cli(tool, ["--bootstrap-server", bootstrap, *args], timeout=90)
        stdout = normalize(proc.stdout)
        if step in LIST_STEPS:  # other tests' topics and groups share the brokers; order is free
            lines = stdout.splitlines()
            head = lines[:1] if step == "transactions_list" else []  # the column names
            stdout = "\n".join(head + sorted(x for x in lines if x.startswith("cli-")))
        out[step] = {"rc": proc.returncode, "stdout": stdout,
                     "stderr": normalize(proc.stderr)[-1500:]}
    return out


_cache: dict[str, dict[str, dict[str, Any]]] = {}


@pytest.fixture(scope="module")
def cli_runs(bootstraps: dict[str, str]) -> dict[str, dict[str, dict[str, Any]]]:
    if not _cache:
        with ThreadPoolExecutor(2) as ex:
            futs = {k: ex.submit(run_script, bs) for k, bs in bootstraps.items()}
            _cache.update({k: f.result() for k, f in futs.items()})
    return _cache


def _params() -> list[Any]:
    return [pytest.param(s, id=s, marks=[pytest.mark.xfail(strict=True, reason=EXPECTED_CLI[s])]
                         if s in EXPECTED_CLI else []) for s in STEPS]


#: steps where the tool is expected to fail on Kafka too (by the script's design)
ERROR_STEPS = {"topics_create_again"}


@pytest.mark.parametrize("step", _params())
def test_cli_step(step: str, cli_runs: dict[str, dict[str, dict[str, Any]]]) -> None:
    k, m = cli_runs["kafka"][step], cli_runs["logmq"][step]
    same = (k["rc"], k["stdout"]) == (m["rc"], m["stdout"])
    tool = STEPS[step][0]
    record_result("kafka-cli", step, {"kafka": k, "logmq": m, "same": same, "tool": tool,
                                      "kafka_ok": (k["rc"] == 0) != (step in ERROR_STEPS),
                                      "expected_difference": EXPECTED_CLI.get(step)})
    assert (k["rc"] == 0) != (step in ERROR_STEPS), f"{tool} failed on Kafka itself: {k}"
    assert same, f"{step}:\n kafka: {k}\n logmq: {m}"
