"""The oracle itself: a 3-broker KRaft cluster (for tests that need replication) starts,
replicates a topic to all three, and stops without leaving a process behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka_oracle import KafkaCluster, probe, run_cli

pytestmark = pytest.mark.oracle


def test_three_broker_cluster_replicates_and_stops(tmp_path: Path) -> None:
    cluster = KafkaCluster(tmp_path, brokers=3)
    cluster.start()
    try:
        assert len(cluster.ports) == 3 and len(set(cluster.ports)) == 3
        assert all(probe("127.0.0.1", p) == 3 for p in cluster.ports)
        bs = cluster.bootstrap
        run_cli("kafka-topics", ["--bootstrap-server", bs, "--create", "--topic", "r3",
                                 "--partitions", "3", "--replication-factor", "3"], check=True)
        out = run_cli("kafka-topics", ["--bootstrap-server", bs, "--describe", "--topic", "r3"],
                      check=True).stdout
        rows = [line for line in out.splitlines() if "Partition:" in line]
        assert len(rows) == 3
        for row in rows:
            isr = row.split("Isr:")[1].split()[0]
            assert sorted(isr.split(",")) == ["0", "1", "2"], row
    finally:
        procs = list(cluster.procs)
        cluster.stop()
    assert all(p.poll() is not None for p in procs)
    assert cluster.procs == []
