"""Documented differences between what a client observes from logmq and from Apache Kafka 4.4.

Each entry is (client or "*", operation) -> why. The differential test turns every entry into
``xfail(strict=True)``: when logmq changes so that the observation matches Kafka's, the test
fails as XPASS and the entry must go (that is how "not built yet" rows flip when the feature
lands). Three kinds of reason, by prefix:

- "not built yet: ..." a Kafka feature logmq does not have today (planned in issue 13);
- "logmq gap: ..."     behaviour found by this suite that differs from Kafka's, not on
                       purpose (routed to the owner; the text says what differs);
- "deliberate: ..."    logmq differs on purpose;
- "kafka-side: ..."    the client misbehaves against Apache Kafka 4.4 itself, not always
                       (these alone are non-strict: a run where Kafka behaved passes).
"""

from __future__ import annotations

TXN = "not built yet: transactions (InitProducerId with a transactional id answers " \
      "COORDINATOR_NOT_AVAILABLE, so the client times out)"
ADMIN = "not built yet: admin APIs (CreatePartitions, IncrementalAlterConfigs, AlterConfigs, " \
        "DeleteGroups are not in logmq's ApiVersions)"
MAX_TS = "not built yet: ListOffsets max-timestamp spec (-3) answers the earliest offset " \
         "instead of the offset of the record with the largest timestamp"

CONFIGS = "logmq gap: DescribeConfigs for a topic omits compression.type and " \
          "min.insync.replicas (Kafka describes every topic config, defaults included), " \
          "describes flush.messages with a null value and flush.ms as 1000 (Kafka: " \
          "9223372036854775807 for both)"
BROKER_CONFIGS = "logmq gap: DescribeConfigs for the BROKER resource returns no entries " \
                 "(Kafka lists log.retention.hours, num.partitions, ...)"

CREATE_MSG = "logmq gap: CreateTopics' error_message for TOPIC_ALREADY_EXISTS is " \
             "\"topic 'x' already exists\", Kafka's \"Topic 'x' already exists.\" " \
             "(Sarama and kafka-topics print it verbatim)"
KJS_START = "kafka-side: KafkaJS 2.2 against Kafka 4.4 sometimes gets the log end offset (3) " \
            "for its earliest-offset lookup (1 run in 4 here; logmq answered 0 every time), " \
            "so its group consumer waits at the end and the group steps after it differ"

EXPECTED: dict[tuple[str, str], str] = {
    ("*", "describe_configs"): CONFIGS,
    ("*", "describe_broker_configs"): BROKER_CONFIGS,
    ("*", "transactions"): TXN,
    ("*", "create_partitions"): ADMIN,
    ("*", "incremental_alter_configs"): ADMIN,
    ("*", "delete_group"): ADMIN,
    ("*", "offsets_max_timestamp"): MAX_TS,
    ("sarama", "create_topic_again"): CREATE_MSG,
    ("java", "create_topic_assignment"): "logmq gap: CreateTopics with an explicit replica "
                                         "assignment ([0] per partition, valid on one node) is "
                                         "refused with INVALID_REQUEST",
    ("*", "commit_unknown_topic"): "logmq gap: OffsetCommit for a topic that does not exist "
                                   "succeeds; Kafka 4.4 answers UNKNOWN_TOPIC_OR_PARTITION "
                                   "(librdkafka reports it, the Java client retries it until "
                                   "REQUEST_TIMED_OUT)",
    **{("kafkajs", op): KJS_START for op in (
        "offsets_earliest", "offsets_by_time", "group_consume_commit", "group_offsets",
        "group_reset", "delete_records")},
}


def strict(why: str) -> bool:
    return not why.startswith("kafka-side:")


def reason(client: str, op: str) -> str | None:
    return EXPECTED.get((client, op)) or EXPECTED.get(("*", op))
