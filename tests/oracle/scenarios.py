"""The clients the differential suite drives, how to run each one's scenario program, and the
operations each program reports (known at collection time, so each is its own test)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
INTEROP = ROOT / "interop"
SCENARIO_TIMEOUT_S = 240.0

#: the operations of the shared script (interop/python/common.py), in the matrix's row order
CORE_OPS = ["create_topic", "create_topic_again", "metadata", "produce", "consume",
            "offsets_earliest", "offsets_latest", "offsets_by_time", "offsets_by_time_future",
            "offsets_max_timestamp", "offsets_for_times", "group_consume_commit",
            "group_describe", "group_list", "group_offsets", "group_reset", "describe_configs",
            "describe_broker_configs", "delete_records", "unknown_topic_metadata",
            "unknown_topic_offsets", "create_topic_assignment", "commit_unknown_topic",
            "create_partitions", "incremental_alter_configs",
            "delete_group", "transactions", "delete_topic"]


@dataclass
class Client:
    name: str
    argv: list[str]  # the program; --bootstrap and --prefix are appended
    ops: list[str]
    cwd: Path = INTEROP / "python"
    needs: list[str] = field(default_factory=list)  # files/commands that must exist

    def missing(self) -> str | None:
        for n in self.needs:
            if os.sep in n:
                if not (ROOT / n).exists():
                    return f"{n} not built (run .ci/step-oracle.sh)"
            elif shutil.which(n) is None:
                return f"{n} not installed (run .ci/step-oracle.sh)"
        return None


def _ops(*drop: str) -> list[str]:
    return [o for o in CORE_OPS if o not in drop]


#: only the confluent-kafka and Java scenarios run these (librdkafka test-suite findings)
CK_JAVA_ONLY = ("create_topic_assignment", "commit_unknown_topic")
GO_OPS = ["create_topic", "create_topic_again", "metadata", "produce", "consume",
          "offsets_earliest", "offsets_latest", "offsets_by_time", "group_consume_commit",
          "group_describe", "group_offsets", "describe_configs", "delete_records",
          "unknown_topic_metadata", "create_partitions", "delete_group", "delete_topic"]
PY = sys.executable
CLIENTS: dict[str, Client] = {c.name: c for c in [
    # librdkafka refuses a replica assignment without a partition count (client-side check)
    Client("confluent-kafka", [PY, "scenario_confluent.py"], _ops("create_topic_assignment")),
    Client("kafka-python", [PY, "scenario_kafka_python.py"],
           _ops("offsets_max_timestamp", "offsets_by_time_future", "incremental_alter_configs",
                "describe_broker_configs", *CK_JAVA_ONLY)),
    Client("aiokafka", [PY, "scenario_aiokafka.py"],
           _ops("offsets_max_timestamp", "offsets_by_time_future", "incremental_alter_configs",
                "describe_broker_configs", "delete_group", *CK_JAVA_ONLY)),
    Client("java", ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp",
                    f"target/classes{os.pathsep}target/lib/*", "Scenario"], _ops(),
           cwd=INTEROP / "java", needs=["interop/java/target/classes/Scenario.class", "java"]),
    Client("kafkajs", ["node", "scenario.js"],
           _ops("offsets_max_timestamp", "offsets_for_times", "incremental_alter_configs",
                "describe_broker_configs", *CK_JAVA_ONLY),
           cwd=INTEROP / "js", needs=["interop/js/node_modules/kafkajs", "node"]),
    Client("franz-go", ["bin/scenario", "--client", "franz-go"], [*GO_OPS, "transactions"],
           cwd=INTEROP / "go", needs=["interop/go/bin/scenario"]),
    Client("sarama", ["bin/scenario", "--client", "sarama"], GO_OPS,
           cwd=INTEROP / "go", needs=["interop/go/bin/scenario"]),
    Client("kcat", [PY, "scenario_kcat.py"],
           ["metadata", "produce", "consume", "offsets_earliest", "offsets_latest",
            "offsets_by_time", "group_consume_commit", "unknown_topic_metadata"],
           needs=["kcat"]),
]}


class ScenarioFailed(RuntimeError):
    pass


def run_scenario(client: Client, bootstrap: str, prefix: str) -> dict[str, Any]:
    proc = subprocess.run([*client.argv, "--bootstrap", bootstrap, "--prefix", prefix],
                          cwd=client.cwd, capture_output=True, text=True,
                          timeout=SCENARIO_TIMEOUT_S, stdin=subprocess.DEVNULL)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                out: dict[str, Any] = json.loads(line)
            except ValueError:
                break
            out["exit"] = proc.returncode
            out["stderr"] = proc.stderr[-6000:]
            return out
    raise ScenarioFailed(f"{client.name} against {bootstrap} printed no result "
                         f"(exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")


def run_both(client: Client, bootstraps: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The same scenario against both brokers at once (they are independent processes)."""
    prefix = "d-" + client.name.replace("_", "-")
    with ThreadPoolExecutor(2) as ex:
        futs = {k: ex.submit(run_scenario, client, bs, prefix) for k, bs in bootstraps.items()}
        return {k: f.result() for k, f in futs.items()}
