"""logmq: an embedded, crash-safe, Kafka-style partitioned log.

Open a directory and you have topics, partitions, consumer groups, work queues (share groups
with per-record acks, retries, dead letters, delays, priorities), retention, compaction and
replay from any offset; records are stored as Kafka RecordBatch v2, so a Kafka client can talk
to the same data through ``logmq serve``.

>>> import logmq, tempfile
>>> with logmq.open(tempfile.mkdtemp()) as log:
...     _ = log.create_topic("events", partitions=2)
...     with log.producer() as p:
...         meta = p.send("events", b"hello", key=b"user-1").result()
...     c = log.consumer("events", auto_offset_reset="earliest")
...     [r.value for r in c.poll(timeout=1)]
[b'hello']
"""

from logmq import errors
from logmq.broker.broker import Broker, open_log
from logmq.broker.consumer import Consumer
from logmq.broker.partitioner import murmur2_partitioner
from logmq.broker.producer import Producer, RecordFuture
from logmq.broker.queues import GroupConfig, QueueConsumer, QueueRecord, QueueStats
from logmq.broker.queues.remote import QueueServer, RemoteQueue
from logmq.broker.queues.worker import AsyncWorker, CircuitBreaker, Worker
from logmq.cluster import connect
from logmq.types import (
    OffsetAndTimestamp,
    PartitionInfo,
    Record,
    RecordMetadata,
    TopicDescription,
    TopicPartition,
)

__version__ = "0.1.0"

open = open_log  # noqa: A001 - logmq.open(path) mirrors sqlite3.connect's role

__all__ = [
    "open",
    "connect",
    "Broker",
    "Producer",
    "Consumer",
    "RecordFuture",
    "TopicPartition",
    "Record",
    "RecordMetadata",
    "PartitionInfo",
    "TopicDescription",
    "OffsetAndTimestamp",
    "murmur2_partitioner",
    "QueueConsumer",
    "QueueRecord",
    "QueueStats",
    "GroupConfig",
    "Worker",
    "AsyncWorker",
    "CircuitBreaker",
    "QueueServer",
    "RemoteQueue",
    "errors",
    "__version__",
]
