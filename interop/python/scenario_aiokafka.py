"""The differential scenario through aiokafka (asyncio): see common.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.admin.records_to_delete import RecordsToDelete
from aiokafka.structs import OffsetAndMetadata
from common import (
    BY_TIME_TARGET,
    CONFIG_KEYS,
    N_RECORDS,
    PARTITIONS,
    Recorder,
    args,
    error_name,
    record,
)

T = 15.0


async def aop(rec: Recorder, name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
    try:
        val = await asyncio.wait_for(fn(), 2 * T)
    except Exception as e:  # the error is the observation
        val = {"error": error_name(e) if not isinstance(e, TimeoutError) else "timeout"}
    rec.ops[name] = val
    return val


def _errors(resp: Any) -> Any:
    """The per-topic error codes of a CreateTopics/CreatePartitions/DeleteTopics response."""
    obj = resp.to_object()
    for key in ("topic_errors", "topic_error_codes", "results"):
        if key in obj:
            return [e.get("error_code") for e in obj[key]]
    return obj


async def main() -> None:
    a = args()
    bs, topic, group = a.bootstrap, f"{a.prefix}-aio", f"{a.prefix}-aio-g"
    rec = Recorder("aiokafka")
    admin = AIOKafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=int(T * 1000))
    await admin.start()
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    async def create() -> Any:
        return _errors(await admin.create_topics([NewTopic(topic, PARTITIONS, 1)]))
    await aop(rec, "create_topic", create)
    await aop(rec, "create_topic_again", create)

    async def metadata() -> Any:
        deadline = time.monotonic() + T
        while True:
            d = (await admin.describe_topics([topic]))[0]
            if len(d["partitions"]) == PARTITIONS or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)  # bounded polling
        return {"error_code": d["error_code"],
                "partitions": sorted(p["partition"] for p in d["partitions"]),
                "leaders_known": all(p["leader"] >= 0 for p in d["partitions"])}
    await aop(rec, "metadata", metadata)

    async def produce() -> Any:
        p = AIOKafkaProducer(bootstrap_servers=bs, enable_idempotence=True, linger_ms=0)
        await p.start()
        out = []
        try:
            for i in range(N_RECORDS):
                part, k, v, h, ts = record(i)
                md = await p.send_and_wait(topic, v, key=k, headers=h, partition=part,
                                           timestamp_ms=ts)
                out.append([md.partition, md.offset])
        finally:
            await p.stop()
        return out
    await aop(rec, "produce", produce)

    def consumer(**kw: Any) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False,
                                request_timeout_ms=int(T * 1000) + 1000, **kw)

    async def consume() -> Any:
        c = consumer()
        await c.start()
        try:
            c.assign(tps)
            await c.seek_to_beginning()
            out: list[Any] = []
            deadline = time.monotonic() + T
            while len(out) < N_RECORDS and time.monotonic() < deadline:
                for batch in (await c.getmany(timeout_ms=500)).values():
                    out += [[m.partition, m.offset, m.key, m.value,
                             [[hk, hv] for hk, hv in m.headers],
                             [m.timestamp_type, m.timestamp]] for m in batch]
        finally:
            await c.stop()
        return sorted(out)
    await aop(rec, "consume", consume)

    async def with_consumer(fn: Callable[[AIOKafkaConsumer], Awaitable[Any]]) -> Any:
        c = consumer()
        await c.start()
        try:
            return await fn(c)
        finally:
            await c.stop()

    async def earliest(c: AIOKafkaConsumer) -> Any:
        return {str(tp.partition): o for tp, o in (await c.beginning_offsets(tps)).items()}

    async def latest(c: AIOKafkaConsumer) -> Any:
        return {str(tp.partition): o for tp, o in (await c.end_offsets(tps)).items()}

    async def by_time(c: AIOKafkaConsumer) -> Any:
        res = await c.offsets_for_times({tp: BY_TIME_TARGET for tp in tps})
        return {str(tp.partition): [o.offset, o.timestamp] if o else None
                for tp, o in res.items()}
    await aop(rec, "offsets_earliest", lambda: with_consumer(earliest))
    await aop(rec, "offsets_latest", lambda: with_consumer(latest))
    await aop(rec, "offsets_by_time", lambda: with_consumer(by_time))
    await aop(rec, "offsets_for_times", lambda: with_consumer(by_time))

    member = consumer(group_id=group, auto_offset_reset="earliest", session_timeout_ms=10000)

    async def group_consume_commit() -> Any:
        await member.start()
        member.subscribe([topic])
        n, deadline = 0, time.monotonic() + 2 * T
        while n < N_RECORDS and time.monotonic() < deadline:
            n += sum(len(b) for b in (await member.getmany(timeout_ms=500)).values())
        await member.commit()
        return {"consumed": n, "committed": {str(tp.partition): await member.committed(tp)
                                             for tp in tps}}
    await aop(rec, "group_consume_commit", group_consume_commit)

    async def describe() -> Any:
        resp = (await admin.describe_consumer_groups([group]))[0].to_object()
        g = resp["groups"][0]
        return {"error_code": g["error_code"], "state": g["state"],
                "protocol_type": g["protocol_type"], "protocol": g["protocol"],
                "members": len(g["members"])}
    await aop(rec, "group_describe", describe)

    async def listed() -> Any:
        return group in {g[0] for g in await admin.list_consumer_groups()}
    await aop(rec, "group_list", listed)
    await member.stop()

    async def group_offsets() -> Any:
        res = await admin.list_consumer_group_offsets(group)
        return {str(tp.partition): o.offset for tp, o in sorted(res.items())}
    await aop(rec, "group_offsets", group_offsets)

    async def group_reset() -> Any:
        # aiokafka's admin cannot alter offsets: a group-less commit (generation -1) does it,
        # which is what Kafka's reset tools send for an empty group
        c = consumer(group_id=group)
        await c.start()
        try:
            c.assign(tps)
            await c.commit({tp: OffsetAndMetadata(1, "") for tp in tps})
        finally:
            await c.stop()
        return {"after": await group_offsets()}
    await aop(rec, "group_reset", group_reset)

    async def describe_configs() -> Any:
        resp = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        obj = resp[0].to_object()
        entries = {e["config_names"]: e["config_value"]
                   for r in obj["resources"] for e in r["config_entries"]}
        return {k: entries.get(k, "<absent>") for k in CONFIG_KEYS}
    await aop(rec, "describe_configs", describe_configs)

    async def delete_records() -> Any:
        res = await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(2)})
        return {"low_watermark": list(res.values()),
                "earliest_after": await with_consumer(earliest)}
    await aop(rec, "delete_records", delete_records)

    async def unknown() -> Any:
        return (await admin.describe_topics([f"{topic}-nope"]))[0]["error_code"]
    await aop(rec, "unknown_topic_metadata", unknown)

    async def unknown_offsets(c: AIOKafkaConsumer) -> Any:
        res = await c.end_offsets([TopicPartition(f"{topic}-nope", 0)])
        return {str(k): v for k, v in res.items()}
    await aop(rec, "unknown_topic_offsets", lambda: with_consumer(unknown_offsets))

    async def create_partitions() -> Any:
        return _errors(await admin.create_partitions({topic: NewPartitions(3)}))
    await aop(rec, "create_partitions", create_partitions)

    async def transactions() -> Any:
        p = AIOKafkaProducer(bootstrap_servers=bs, transactional_id=f"{topic}-tx",
                             request_timeout_ms=int(T * 1000))
        await p.start()
        try:
            async with p.transaction():
                await p.send_and_wait(topic, b"committed", partition=1)
            await p.begin_transaction()
            await p.send_and_wait(topic, b"aborted", partition=1)
            await p.abort_transaction()
        finally:
            await p.stop()
        c = consumer(isolation_level="read_committed")
        await c.start()
        try:
            c.assign([TopicPartition(topic, 1)])
            c.seek(TopicPartition(topic, 1), 3)
            seen: list[Any] = []
            deadline = time.monotonic() + 10
            while not seen and time.monotonic() < deadline:
                seen += [m.value for b in (await c.getmany(timeout_ms=500)).values() for m in b]
        finally:
            await c.stop()
        return seen
    await aop(rec, "transactions", transactions)

    async def delete_topic() -> Any:
        errs = _errors(await admin.delete_topics([topic]))
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            d = (await admin.describe_topics([topic]))[0]
            if d["error_code"]:
                return {"delete": errs, "after": d["error_code"]}
            await asyncio.sleep(0.2)  # bounded polling
        return {"delete": errs, "after": "still there"}
    await aop(rec, "delete_topic", delete_topic)
    await admin.close()
    rec.dump()


if __name__ == "__main__":
    asyncio.run(main())
