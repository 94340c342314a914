"""Queue semantics on the log: share groups, message options, workers, request-reply.

Built on partitions rather than beside them, in the spirit of Kafka's share groups (KIP-932):
many members share a topic's records with per-record acknowledgement, while plain consumer
groups keep reading the same log by offset.

* :mod:`~logmq.broker.queues.group` the share-group state machine (window, locks, retries,
  dead letters, due-time index), :mod:`~logmq.broker.queues.state` its LMDB persistence;
* :mod:`~logmq.broker.queues.queue` ``QueueConsumer`` / ``QueueRecord``;
* :mod:`~logmq.broker.queues.manager` the per-broker ``QueueManager`` (dedup, queue depth,
  request-reply);
* :mod:`~logmq.broker.queues.options` the header names message options use;
* :mod:`~logmq.broker.queues.worker` ``Worker`` / ``AsyncWorker``;
* :mod:`~logmq.broker.queues.remote` queue members in other processes.
"""

from logmq.broker.queues.filters import RecordFilter, make_filter
from logmq.broker.queues.group import GroupConfig, QueueStats
from logmq.broker.queues.manager import REPLY_TOPIC, QueueManager, queue_manager
from logmq.broker.queues.queue import QueueConsumer, QueueRecord

__all__ = [
    "QueueManager",
    "queue_manager",
    "QueueConsumer",
    "QueueRecord",
    "QueueStats",
    "GroupConfig",
    "RecordFilter",
    "make_filter",
    "REPLY_TOPIC",
]
