"""The differential scenario through kafka-python 3: see common.py."""

from __future__ import annotations

import time
from typing import Any

from common import (
    BY_TIME_TARGET,
    CONFIG_KEYS,
    N_RECORDS,
    PARTITIONS,
    Recorder,
    args,
    poll_until,
    record,
)
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, OffsetSpec
from kafka.structs import OffsetAndMetadata

T_MS = 15000


def main() -> None:
    a = args()
    bs, topic, group = a.bootstrap, f"{a.prefix}-kp", f"{a.prefix}-kp-g"
    rec = Recorder("kafka-python")
    admin = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=T_MS)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    def create() -> Any:
        admin.create_topics({topic: {"num_partitions": PARTITIONS, "replication_factor": 1}})
        return "ok"
    rec.op("create_topic", create)
    rec.op("create_topic_again", create)

    def metadata() -> Any:
        def get() -> Any:
            return admin.describe_topics([topic])[0]
        d = poll_until(get, lambda d: len(d.get("partitions", [])) == PARTITIONS)
        return {"error": d["error_code"]} if d["error_code"] else {
            "partitions": sorted(p["partition_index"] for p in d["partitions"]),
            "leaders_known": all(p["leader_id"] >= 0 for p in d["partitions"])}
    rec.op("metadata", metadata)

    def produce() -> Any:
        p = KafkaProducer(bootstrap_servers=bs, enable_idempotence=True, linger_ms=0)
        out = []
        for i in range(N_RECORDS):
            part, k, v, h, ts = record(i)
            md = p.send(topic, v, key=k, headers=h, partition=part,
                        timestamp_ms=ts).get(T_MS / 1000)
            out.append([md.partition, md.offset])
        p.close()
        return out
    rec.op("produce", produce)

    def consumer(**kw: Any) -> KafkaConsumer:
        return KafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False,
                             request_timeout_ms=T_MS + 1000, **kw)

    def consume() -> Any:
        c = consumer()
        c.assign(tps)
        c.seek_to_beginning()
        out: list[Any] = []
        deadline = time.monotonic() + 15
        while len(out) < N_RECORDS and time.monotonic() < deadline:
            for batch in c.poll(500).values():
                out += [[m.partition, m.offset, m.key, m.value,
                         [[hk, hv] for hk, hv in m.headers], [m.timestamp_type, m.timestamp]]
                        for m in batch]
        c.close()
        return sorted(out)
    rec.op("consume", consume)

    def list_offsets(spec: Any) -> Any:
        res = admin.list_partition_offsets({tp: spec for tp in tps})
        return {str(tp.partition): [o.offset, o.timestamp]
                for tp, o in sorted(res.items(), key=lambda kv: kv[0].partition)}
    rec.op("offsets_earliest", lambda: list_offsets(OffsetSpec.EARLIEST))
    rec.op("offsets_latest", lambda: list_offsets(OffsetSpec.LATEST))
    rec.op("offsets_by_time", lambda: list_offsets(BY_TIME_TARGET))
    rec.op("offsets_max_timestamp", lambda: list_offsets(OffsetSpec.MAX_TIMESTAMP))

    def for_times() -> Any:
        c = consumer()
        res = c.offsets_for_times({tp: BY_TIME_TARGET for tp in tps})
        c.close()
        return {str(tp.partition): (o.offset if o else None) for tp, o in res.items()}
    rec.op("offsets_for_times", for_times)

    member = consumer(group_id=group, auto_offset_reset="earliest",
                      session_timeout_ms=10000)

    def group_consume_commit() -> Any:
        member.subscribe([topic])
        n, deadline = 0, time.monotonic() + 30
        while n < N_RECORDS and time.monotonic() < deadline:
            n += sum(len(b) for b in member.poll(500).values())
        member.commit()
        return {"consumed": n,
                "committed": {str(tp.partition): member.committed(tp) for tp in tps}}
    rec.op("group_consume_commit", group_consume_commit)

    def describe() -> Any:
        g = admin.describe_groups([group])[group]
        members = g.get("members", [])
        parts = sorted(p for m in members
                       for t in (m.get("member_assignment") or {}).get("assigned_partitions", [])
                       for p in t["partitions"])
        return {"state": g.get("group_state"), "protocol_type": g.get("protocol_type"),
                "protocol": g.get("protocol_data") or g.get("protocol"),
                "members": len(members), "assignment": parts}
    rec.op("group_describe", describe)
    rec.op("group_list", lambda: group in {g.get("group_id") for g in admin.list_groups()})
    member.close()

    def group_offsets() -> Any:
        res = admin.list_group_offsets({group: None})[group]
        return {str(tp.partition): o.offset for tp, o in sorted(res.items())}
    rec.op("group_offsets", group_offsets)

    def group_reset() -> Any:
        g = poll_until(lambda: admin.describe_groups([group])[group],
                       lambda g: not g.get("members"))
        admin.alter_group_offsets(group, {tp: OffsetAndMetadata(1, "", -1) for tp in tps})
        return {"state_before": g.get("group_state"), "after": group_offsets()}
    rec.op("group_reset", group_reset)

    def describe_configs() -> Any:
        res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                     config_filter="all")
        entries = _config_entries(res)
        return {k: entries.get(k, "<absent>") for k in CONFIG_KEYS}
    rec.op("describe_configs", describe_configs)

    def delete_records() -> Any:
        res = admin.delete_records({TopicPartition(topic, 0): 2})
        low = [getattr(v, "low_watermark", v) for v in res.values()]
        return {"low_watermark": low, "earliest_after": list_offsets(OffsetSpec.EARLIEST)}
    rec.op("delete_records", delete_records)

    def unknown() -> Any:
        d = admin.describe_topics([f"{topic}-nope"])[0]
        return {"error": d["error_code"]} if d["error_code"] else "ok"
    rec.op("unknown_topic_metadata", unknown)
    rec.op("unknown_topic_offsets", lambda: {str(k): v for k, v in admin.list_partition_offsets(
        {TopicPartition(f"{topic}-nope", 0): OffsetSpec.LATEST}).items()})
    rec.op("create_partitions", lambda: admin.create_partitions({topic: 3}) and "ok")
    rec.op("delete_group", lambda: {k: str(v) for k, v in
                                    dict(admin.delete_groups([group])).items()})

    def transactions() -> Any:
        p = KafkaProducer(bootstrap_servers=bs, transactional_id=f"{topic}-tx",
                          max_block_ms=T_MS)
        p.init_transactions()
        p.begin_transaction()
        p.send(topic, b"committed", partition=1)
        p.commit_transaction()
        p.begin_transaction()
        p.send(topic, b"aborted", partition=1)
        p.abort_transaction()
        p.close()
        c = consumer(isolation_level="read_committed")
        c.assign([TopicPartition(topic, 1)])
        c.seek(TopicPartition(topic, 1), 3)
        seen: list[Any] = []
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            seen += [m.value for b in c.poll(500).values() for m in b]
        c.close()
        return seen
    rec.op("transactions", transactions)

    def delete_topic() -> Any:
        admin.delete_topics([topic])
        d = poll_until(lambda: admin.describe_topics([topic])[0], lambda d: d["error_code"])
        return {"error": d["error_code"]} if d["error_code"] else "still there"
    rec.op("delete_topic", delete_topic)
    rec.dump()


def _config_entries(res: Any) -> dict[str, Any]:
    """name -> value from {"topic": {name: {config: {"value": ...}}}}."""
    out: dict[str, Any] = {}
    for by_name in res.values():
        for entries in by_name.values():
            for name, e in entries.items():
                out[name] = e.get("value") if isinstance(e, dict) else e
    return out


if __name__ == "__main__":
    main()
