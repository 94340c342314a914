"""Session fixtures for the differential suite: a real Apache Kafka 4.4 beside ``logmq serve``.

Why session scope: a KRaft broker takes seconds to start and every scenario uses its own topic
and group names, so one broker of each kind serves the whole run. Both are configured alike
where it matters to what clients observe (auto topic creation off, one partition by default).

These tests are not part of the default ``python -m pytest`` run (pyproject deselects the
``oracle`` marker); ``.ci/step-oracle.sh`` installs their tools and runs them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests"))

from kafka_oracle import KafkaCluster  # noqa: E402
from server_util import ServerProcess  # noqa: E402

#: where the run's observations go (tools/compat_matrix.py turns them into the README table)
RESULTS = Path(os.environ.get("LOGMQ_ORACLE_RESULTS", ROOT / "build" / "oracle-results.json"))
_results: dict[str, dict[str, Any]] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.oracle)


def record_result(client: str, op: str, entry: dict[str, Any]) -> None:
    _results.setdefault(client, {})[op] = entry


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _results:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old: dict[str, Any] = {}
    if RESULTS.exists():  # a partial rerun (-k) updates the clients it ran, keeps the rest
        try:
            old = json.loads(RESULTS.read_text()).get("clients", {})
        except ValueError:
            old = {}
    for client, ops in _results.items():
        old.setdefault(client, {}).update(ops)
    # insertion order is the scenario's order, which the matrix keeps
    RESULTS.write_text(json.dumps({"kafka_version": "4.4.0", "clients": old}, indent=1))


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka"),
                           extra_config={"auto.create.topics.enable": "false"})
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def logmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("logmq")
    cfg = base / "serve.toml"
    cfg.write_text("auto_create_topics = false\nnum_partitions = 1\n")
    with ServerProcess(str(base / "data"), "--config", str(cfg)) as srv:
        yield srv


@pytest.fixture(scope="session")
def bootstraps(kafka: KafkaCluster, logmq_server: ServerProcess) -> dict[str, str]:
    return {"kafka": kafka.bootstrap, "logmq": logmq_server.bootstrap}
