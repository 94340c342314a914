"""tests/test_cluster_txn.py's functions against Apache Kafka 4.4 (there: embedded and
``logmq serve``): the same transactional code, the same answers."""

from __future__ import annotations

import pytest
import test_cluster_api as api
import test_cluster_txn as tx
from kafka_oracle import KafkaCluster

test_commit_is_seen_abort_is_not = tx.test_commit_is_seen_abort_is_not
test_offsets_count_only_on_commit = tx.test_offsets_sent_to_a_transaction_count_only_on_commit

log = api.log


@pytest.fixture
def target(kafka: KafkaCluster) -> str:
    return f"kafka://{kafka.bootstrap}"
