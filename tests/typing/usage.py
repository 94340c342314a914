"""What a type checker sees of logmq's public API (checked by tests/test_typing.py, not run).

Each ``assert_type`` fails the check if the inferred type drifts, e.g. to ``Any`` when a
return annotation goes missing.
"""

from __future__ import annotations

import asyncio
from typing import assert_type

import logmq
import logmq.aio
from logmq.aio import AioConsumer, AioLog, AioProducer, AioQueue, AioQueueRecord
from logmq.testing import LogMQServer


def sync_api(path: str) -> None:
    log = logmq.open(path)
    assert_type(log, logmq.Broker)
    assert_type(log.create_topic("t", partitions=2, exist_ok=True), logmq.TopicDescription)
    producer = log.producer(linger_ms=1)
    assert_type(producer, logmq.Producer)
    fut = producer.send("t", b"v", key=b"k")
    assert_type(fut, logmq.RecordFuture)
    assert_type(fut.result(), logmq.RecordMetadata)
    assert_type(producer.send_batch("t", [(b"k", b"v")]), list[logmq.RecordMetadata])
    consumer = log.consumer("t", auto_offset_reset="earliest")
    assert_type(consumer, logmq.Consumer)
    records = consumer.poll(timeout=1.0)
    assert_type(records, list[logmq.Record])
    assert_type(records[0].offset, int)
    assert_type(consumer.position(("t", 0)), int)
    assert_type(consumer.committed(("t", 0)), int | None)
    queue = log.queue("t", group="workers")
    assert_type(queue, logmq.QueueConsumer)
    received = queue.receive(10, timeout=1.0)
    assert_type(received, list[logmq.QueueRecord])
    assert_type(received[0].delivery_count, int)
    assert_type(queue.stats(), logmq.QueueStats)
    assert_type(log.request("rpc", b"q", timeout=1), logmq.Record)
    assert_type(log.end_offset(("t", 0)), int)
    assert_type(log.offsets(("t", 0)), tuple[int, int])
    assert_type(log.list_topics(), list[str])


async def async_api(path: str) -> None:
    async with logmq.aio.open(path) as log:
        assert_type(log, AioLog)
        assert_type(await log.create_topic("t", exist_ok=True), logmq.TopicDescription)
        async with log.producer() as producer:
            assert_type(producer, AioProducer)
            assert_type(await producer.send("t", b"v"), logmq.RecordMetadata)
            assert_type(producer.send_nowait("t", b"v"), asyncio.Future[logmq.RecordMetadata])
            assert_type(await producer.send_batch("t", [(None, b"v")]),
                        list[logmq.RecordMetadata])
        consumer = log.consumer("t", group="g")
        assert_type(consumer, AioConsumer)
        batch = await consumer.getmany(timeout_ms=100, max_records=10)
        assert_type(batch, dict[logmq.TopicPartition, list[logmq.Record]])
        assert_type(await consumer.getone(), logmq.Record)
        async for record in consumer:
            assert_type(record, logmq.Record)
        await consumer.commit()
        queue = log.queue("t", "workers")
        assert_type(queue, AioQueue)
        for job in await queue.receive(5, timeout=1):
            assert_type(job, AioQueueRecord)
            assert_type(await job.renew(), int)
            await job.ack()


def testing_api(path: str) -> None:
    with LogMQServer(path) as server:
        assert_type(server.bootstrap, str)
        assert_type(server.broker, logmq.Broker)
        assert_type(server.create_topic(partitions=3), str)
        assert_type(server.restart(), LogMQServer)
