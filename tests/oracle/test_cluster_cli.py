"""The CLI with ``--bootstrap`` against Apache Kafka 4.4: tests/test_cluster_cli.py's
functions (run there against ``logmq serve``), collected again with the oracle's broker."""

from __future__ import annotations

import pytest
import test_cluster_cli as cc
from kafka_oracle import KafkaCluster

test_topics = cc.test_topics_create_list_describe_alter_delete
test_produce_consume_and_inspect = cc.test_produce_consume_and_inspect
test_groups = cc.test_groups_list_describe_reset_and_delete
test_replay = cc.test_replay_a_time_window_into_another_topic
test_kafka_url_target = cc.test_kafka_url_target_and_local_only_commands
test_status_and_queues_list = cc.test_status_and_queues_list
test_replay_from_a_data_directory = cc.test_replay_from_a_data_directory_onto_the_cluster
test_an_active_group = cc.test_an_active_group_is_described_and_not_reset


@pytest.fixture
def cluster(kafka: KafkaCluster) -> str:
    return kafka.bootstrap
