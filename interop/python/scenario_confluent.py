"""The differential scenario through confluent-kafka (librdkafka): see common.py."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from common import (
    BY_TIME_TARGET,
    CONFIG_KEYS,
    FUTURE_TARGET,
    N_RECORDS,
    PARTITIONS,
    Recorder,
    args,
    poll_until,
    record,
)
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

T = 15  # seconds: every blocking call's bound


def main() -> None:
    a = args()
    bs, topic, group = a.bootstrap, f"{a.prefix}-ck", f"{a.prefix}-ck-g"
    rec = Recorder("confluent-kafka")
    admin = AdminClient({"bootstrap.servers": bs})

    rec.op("create_topic", lambda: admin.create_topics(
        [NewTopic(topic, PARTITIONS, 1)])[topic].result(T) or "ok")
    rec.op("create_topic_again", lambda: admin.create_topics(
        [NewTopic(topic, PARTITIONS, 1)])[topic].result(T) or "ok")

    def metadata() -> Any:
        md = poll_until(lambda: admin.list_topics(topic, timeout=T).topics[topic],
                        lambda t: t.error is None and len(t.partitions) == PARTITIONS)
        return {"partitions": sorted(md.partitions),
                "leaders_known": all(p.leader >= 0 for p in md.partitions.values())}
    rec.op("metadata", metadata)

    def produce() -> Any:
        p = Producer({"bootstrap.servers": bs, "enable.idempotence": True, "linger.ms": 0})
        got: dict[int, Any] = {}
        for i in range(N_RECORDS):
            part, k, v, h, ts = record(i)

            def cb(err: KafkaError | None, msg: Any, i: int = i) -> None:
                got[i] = err.name() if err else [msg.partition(), msg.offset()]
            p.produce(topic, v, key=k, headers=h, timestamp=ts, partition=part, on_delivery=cb)
            p.flush(T)  # one batch per record: offsets then do not depend on batching
        return [got.get(i) for i in range(N_RECORDS)]
    rec.op("produce", produce)

    def consume() -> Any:
        c = Consumer({"bootstrap.servers": bs, "group.id": f"{group}-reader",
                      "enable.auto.commit": False})
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        out: list[Any] = []
        deadline = time.monotonic() + T
        while len(out) < N_RECORDS and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            out.append([m.partition(), m.offset(), m.key(), m.value(),
                        [[k, v] for k, v in (m.headers() or [])], list(m.timestamp())])
        c.close()
        return sorted(out)
    rec.op("consume", consume)

    def list_offsets(spec: OffsetSpec) -> Any:
        res = admin.list_offsets({TopicPartition(topic, p): spec for p in range(PARTITIONS)},
                                 isolation_level=IsolationLevel.READ_UNCOMMITTED)
        return {str(tp.partition): [f.result(T).offset, f.result(T).timestamp]
                for tp, f in sorted(res.items(), key=lambda kv: kv[0].partition)}
    rec.op("offsets_earliest", lambda: list_offsets(OffsetSpec.earliest()))
    rec.op("offsets_latest", lambda: list_offsets(OffsetSpec.latest()))
    rec.op("offsets_by_time", lambda: list_offsets(OffsetSpec.for_timestamp(BY_TIME_TARGET)))
    rec.op("offsets_by_time_future",
           lambda: list_offsets(OffsetSpec.for_timestamp(FUTURE_TARGET)))
    rec.op("offsets_max_timestamp", lambda: list_offsets(OffsetSpec.max_timestamp()))

    def consumer_for_times() -> Any:
        c = Consumer({"bootstrap.servers": bs, "group.id": f"{group}-times"})
        res = c.offsets_for_times([TopicPartition(topic, p, BY_TIME_TARGET)
                                   for p in range(PARTITIONS)], T)
        c.close()
        return {str(tp.partition): tp.offset for tp in res}
    rec.op("offsets_for_times", consumer_for_times)

    member = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False,
                       "auto.offset.reset": "earliest", "session.timeout.ms": 10000})

    def group_consume_commit() -> Any:
        member.subscribe([topic])
        n, deadline = 0, time.monotonic() + 2 * T
        while n < N_RECORDS and time.monotonic() < deadline:
            m = member.poll(0.5)
            if m is not None and not m.error():
                n += 1
        member.commit(asynchronous=False)
        committed = member.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], T)
        return {"consumed": n, "committed": {str(tp.partition): tp.offset for tp in committed}}
    rec.op("group_consume_commit", group_consume_commit)

    def group_describe() -> Any:
        g = admin.describe_consumer_groups([group])[group].result(T)
        return {"state": str(g.state).split(".")[-1], "simple": g.is_simple_consumer_group,
                "protocol": g.partition_assignor, "members": len(g.members),
                "assignment": sorted(tp.partition for m in g.members
                                     for tp in m.assignment.topic_partitions)}
    rec.op("group_describe", group_describe)
    rec.op("group_list", lambda: group in {g.group_id for g in
                                           admin.list_consumer_groups().result(T).valid})
    member.close()

    def group_offsets() -> Any:
        res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
        return {str(tp.partition): tp.offset
                for tp in sorted(res[group].result(T).topic_partitions,
                                 key=lambda tp: tp.partition)}
    rec.op("group_offsets", group_offsets)

    def group_reset() -> Any:
        g = poll_until(lambda: admin.describe_consumer_groups([group])[group].result(T),
                       lambda g: len(g.members) == 0)
        tps = [TopicPartition(topic, p, 1) for p in range(PARTITIONS)]
        admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, tps)])[group].result(T)
        return {"state_before": str(g.state).split(".")[-1], "after": group_offsets()}
    rec.op("group_reset", group_reset)

    def describe_configs() -> Any:
        r = ConfigResource(ResourceType.TOPIC, topic)
        cfg = admin.describe_configs([r])[r].result(T)
        return {k: cfg[k].value if k in cfg else "<absent>" for k in CONFIG_KEYS}
    rec.op("describe_configs", describe_configs)

    def describe_broker_config() -> Any:
        md = admin.list_topics(timeout=T)
        r = ConfigResource(ResourceType.BROKER, str(next(iter(md.brokers))))
        cfg = admin.describe_configs([r])[r].result(T)
        keys = ["log.retention.hours", "num.partitions", "auto.create.topics.enable"]
        return {k: cfg[k].value if k in cfg else "<absent>" for k in keys}
    rec.op("describe_broker_configs", describe_broker_config)

    def delete_records() -> Any:
        res = admin.delete_records([TopicPartition(topic, 0, 2)])
        low = [f.result(T).low_watermark for f in res.values()]
        return {"low_watermark": low, "earliest_after": list_offsets(OffsetSpec.earliest())}
    rec.op("delete_records", delete_records)

    def unknown_topic() -> Any:
        md = admin.list_topics(f"{topic}-nope", timeout=T)  # librdkafka never auto-creates here
        err = md.topics[f"{topic}-nope"].error
        return err.name() if err else "ok"
    rec.op("unknown_topic_metadata", unknown_topic)
    rec.op("unknown_topic_offsets", lambda: admin.list_offsets(
        {TopicPartition(f"{topic}-nope", 0): OffsetSpec.latest()})[
            TopicPartition(f"{topic}-nope", 0)].result(T).offset)

    def commit_unknown_topic() -> Any:
        c = Consumer({"bootstrap.servers": bs, "group.id": f"{group}-nope"})
        try:
            res = c.commit(offsets=[TopicPartition(f"{topic}-nope", 0, 1)], asynchronous=False)
            return [tp.error.name() if tp.error else "ok" for tp in res or []]
        finally:
            c.close()
    rec.op("commit_unknown_topic", commit_unknown_topic)

    rec.op("create_partitions", lambda: admin.create_partitions(
        [NewPartitions(topic, 3)])[topic].result(T) or "ok")

    def incremental_alter() -> Any:
        r = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
            ConfigEntry("retention.ms", "123456",
                        incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([r])[r].result(T)
        d = ConfigResource(ResourceType.TOPIC, topic)
        # KRaft shows an altered config a moment after the alter returns (see Scenario.java)
        until = time.monotonic() + 10
        while True:
            seen = admin.describe_configs([d])[d].result(T)["retention.ms"].value
            if seen == "123456" or time.monotonic() > until:
                return seen
    rec.op("incremental_alter_configs", incremental_alter)
    rec.op("delete_group", lambda: admin.delete_consumer_groups([group])[group].result(T)
           or "ok")

    def transactions() -> Any:
        p = Producer({"bootstrap.servers": bs, "transactional.id": f"{topic}-tx",
                      "transaction.timeout.ms": 10000})
        p.init_transactions(T)
        p.begin_transaction()
        p.produce(topic, b"committed", partition=1)
        p.commit_transaction(T)
        p.begin_transaction()
        p.produce(topic, b"aborted", partition=1)
        p.abort_transaction(T)
        c = Consumer({"bootstrap.servers": bs, "group.id": f"{group}-rc",
                      "isolation.level": "read_committed", "enable.auto.commit": False})
        c.assign([TopicPartition(topic, 1, 3)])
        seen: list[Any] = []
        deadline = time.monotonic() + T
        while time.monotonic() < deadline and len(seen) < 1:
            m = c.poll(0.5)
            if m is not None and not m.error():
                seen.append(m.value())
        c.close()
        return seen
    rec.op("transactions", transactions)

    def delete_topic() -> Any:
        admin.delete_topics([topic])[topic].result(T)
        md = poll_until(lambda: admin.list_topics(topic, timeout=T).topics[topic],
                        lambda t: t.error is not None)
        return md.error.name() if md.error else "still there"
    rec.op("delete_topic", delete_topic)
    rec.dump()


if __name__ == "__main__":
    try:
        main()
    except KafkaException as e:
        raise SystemExit(f"unexpected: {e}") from e
    sys.stdout.flush()
    sys.stderr.flush()
    # librdkafka can abort() in its destructors after a transactional producer timed out
    # against a broker without transactions; the observations are out, skip the teardown
    os._exit(0)
