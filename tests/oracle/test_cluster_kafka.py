"""``logmq.connect("kafka://...")`` and ``logmq mirror`` against Apache Kafka 4.4.

The test functions are the main suite's (tests/test_cluster_api.py, tests/test_mirror.py),
collected here a second time with their fixtures pointed at the oracle's real broker: the
same expectations hold for an embedded log, for ``logmq serve`` and for Kafka.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import test_cluster_api as api
import test_mirror as mir
from kafka_oracle import KafkaCluster

# the shared tests, re-collected here (pytest collects test_* names in this module)
test_topic_lifecycle = api.test_topic_lifecycle
test_records_round_trip = api.test_records_round_trip_with_offsets_and_times
test_latest_reset_and_assign = api.test_latest_reset_and_assign
test_keys_land_on_the_same_partitions = api.test_keys_land_on_the_same_partitions
test_group_commit_resume_and_admin_reset = api.test_group_commit_resume_and_admin_reset
test_delete_records = api.test_delete_records
test_unknown_names_raise_typed_errors = api.test_unknown_names_raise_typed_errors
test_local_only_calls = api.test_local_only_calls
test_round_trip_dir_kafka_dir = mir.test_round_trip_dir_served_dir
test_group_resumes_on_kafka = mir.test_group_resumes_on_the_cluster_where_it_stopped

log = api.log


@pytest.fixture
def target(kafka: KafkaCluster) -> str:
    return f"kafka://{kafka.bootstrap}"


@pytest.fixture
def served(kafka: KafkaCluster) -> Iterator[Any]:
    """What test_mirror calls ``served``: anything with ``.bootstrap``; here real Kafka."""
    yield kafka
