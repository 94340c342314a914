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
