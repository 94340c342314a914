"""The facade: one open data directory with its services wired explicitly.

:class:`Broker` is what ``logmq.open`` returns and what the wire server, the CLI and the
asyncio API are built on. It owns a :class:`~logmq.storage.manager.LogManager` (partitions,
topics, append notifications; see there for the directory layout) and the services above it,
each constructed here with exactly what it needs:

* the :class:`~logmq.broker.cleaner.Cleaner` (retention and compaction thread),
* the :class:`~logmq.broker.groups.GroupCoordinator` (consumer groups), started on first use,
* the :class:`~logmq.broker.queues.QueueManager` (share groups, dedup, request-reply), on
  first use,
* the :class:`~logmq.broker.producer_ids.ProducerIdAllocator` (idempotent producers).

Deleting a topic reaches the offset store and the queue engine through the storage manager's
topic listeners, so storage never imports them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from logmq.broker.cleaner import Cleaner
from logmq.broker.consumer import Consumer
from logmq.broker.groups import LmdbOffsetStore
from logmq.broker.groups.consumer_group_coordinator import KafkaGroupCoordinator
from logmq.broker.producer import Producer
from logmq.broker.producer_ids import ProducerIdAllocator
from logmq.broker.queues.manager import QueueManager
from logmq.broker.queues.state import DedupIndex, ShareStateStore
from logmq.clock import SYSTEM_CLOCK, Clock
from logmq.codec.seal import KeyRing
from logmq.config import BrokerConfig, TopicConfig
from logmq.config_load import load_broker_config
from logmq.storage import datadir
from logmq.storage.log import PartitionLog
from logmq.storage.manager import CLEAN_MARKER, LOCK_FILE, LogManager, validate_topic_name
from logmq.storage.meta import MetaStore
from logmq.types import OffsetAndTimestamp, Record, TopicDescription, TopicPartition

if TYPE_CHECKING:
    from logmq.broker.queues.queue import QueueConsumer
    from logmq.broker.transactions import TransactionCoordinator
    from logmq.streams.store import Streams

__all__ = ["Broker", "open_log", "validate_topic_name", "CLEAN_MARKER", "LOCK_FILE"]

class Broker:
    """An open data directory. Thread-safe; use as a context manager or call :meth:`close`.

    Settings (see :data:`logmq.config.BROKER_KEYS`): ``auto_create_topics`` (default True)
    creates a topic with ``num_partitions`` partitions the first time a producer writes to it;
    ``cleaner`` runs retention/compaction in a thread; ``repair=True`` lets opening cut a
    partition at damage found in cleanly closed data instead of refusing with
    CorruptRecordError. Any topic config with underscores (``fsync="always"``,
    ``segment_bytes=...``) is a default for every topic; per-topic overrides win.
    ``LOGMQ_*`` environment variables fill in what the keyword arguments leave unset; pass
    ``config=`` (a :class:`~logmq.config.BrokerConfig`) to skip that resolution entirely.
    ``clock`` (a :class:`~logmq.clock.Clock`) is the one clock the storage manager, the
    cleaner, the group coordinator, the queue engine and the producers read; tests pass a
    :class:`~logmq.clock.ManualClock` to move time without sleeping.
    """

    def __init__(self, path: str | os.PathLike[str], *, config: BrokerConfig | None = None,
                 clock: Clock = SYSTEM_CLOCK, **settings: Any) -> None:
        if config is None:
            config = load_broker_config(settings, env=os.environ)
        elif settings:
            raise TypeError("pass either config= or keyword settings, not both")
        self.config = config
        self.clock = clock
        self.logs = LogManager(path, auto_create_topics=config.auto_create_topics,
                               num_partitions=config.num_partitions, map_size=config.map_size,
                               repair=config.repair, defaults=config.topic_defaults,
                               time_fn=clock.time, max_partitions=config.max_partitions,
                               max_partitions_per_topic=config.max_partitions_per_topic,
                               keyring=KeyRing.load(config.encryption_key_file, os.environ))
        try:
            self._wire()
        except BaseException:
            self.logs.close()
            raise

    def _wire(self) -> None:
        self._lock = threading.Lock()
        self._groups: KafkaGroupCoordinator | None = None
        self._queues: QueueManager | None = None
        self._streams: Streams | None = None
        self._transactions: TransactionCoordinator | None = None
        self.producer_ids = ProducerIdAllocator(self.logs.meta.env)
        if self.logs.adopted_orphans:  # the lost metadata held the producer id counter too
            self.producer_ids.reserve_above(datadir.max_producer_id(lg for _, lg in self.logs.partition_logs()))
        self.logs.add_topic_listener(self._on_topic_deleted)
        self.cleaner: Cleaner | None = None
        if self.config.cleaner:
            self.cleaner = Cleaner(self.logs,
                                   check_interval_ms=self.config.cleaner_check_interval_ms,
                                   max_bytes_per_sec=self.config.cleaner_max_bytes_per_sec,
                                   time_fn=self.clock.time)
            self.cleaner.start()
        from logmq.broker.txn_store import TxnStore

        if TxnStore(self.logs.meta.env).unfinished():
            _ = self.transactions  # complete or time out what a crash left open, now

    def _on_topic_deleted(self, topic: str) -> None:
        if self._groups is not None:
            self._groups.on_topic_deleted(topic)
        else:  # no coordinator yet: drop the committed offsets directly
            LmdbOffsetStore(self.logs.meta.env).delete_topic(topic)
        if self._queues is not None:
            self._queues.on_topic_deleted(topic)
        else:  # no queue engine yet: drop the topic's stored share-group state and dedup ids
            store = ShareStateStore(self.logs.meta.env)
            store.unregister_topic(topic)
            DedupIndex(store).delete_topic(topic)

    # ------------------------------------------------------------------ services
    @property
    def groups(self) -> KafkaGroupCoordinator:
        """The consumer-group coordinator of this directory (started on first use)."""
        with self._lock:
            if self._groups is None:
                self.logs.check_open()
                c = self.config
                coord = KafkaGroupCoordinator(
                    LmdbOffsetStore(self.logs.meta.env), self.logs,
                    consumer_session_timeout_ms=c.group_consumer_session_timeout_ms,
                    consumer_heartbeat_interval_ms=c.group_consumer_heartbeat_interval_ms,
                    initial_rebalance_delay_ms=c.group_initial_rebalance_delay_ms,
                    min_session_timeout_ms=c.group_min_session_timeout_ms,
                    max_session_timeout_ms=c.group_max_session_timeout_ms,
                    time_fn=self.clock.monotonic,
                )
                coord.start()
                self._groups = coord
            return self._groups

    @property
    def transactions(self) -> TransactionCoordinator:
        """The transaction coordinator (started on first use, and on open when transactions
        were left unfinished, so a crash mid-commit completes without waiting for a client)."""
        with self._lock:
            if self._transactions is None:
                self.logs.check_open()
                from logmq.broker.transactions import TransactionCoordinator
                from logmq.broker.txn_store import TxnStore

                offsets = LmdbOffsetStore(self.logs.meta.env)
                self._transactions = TransactionCoordinator(
                    TxnStore(self.logs.meta.env), self.logs.partition_log, offsets.commit,
                    self.producer_ids.allocate, clock=self.clock,
                    max_timeout_ms=self.config.transaction_max_timeout_ms)
                self._transactions.start()
            return self._transactions

    def has_transactions(self) -> bool:
        """Whether the transaction coordinator runs (a check that does not start it)."""
        return self._transactions is not None

    @property
    def queues(self) -> QueueManager:
        """The queue engine (share groups, dedup, queue depth, request-reply), on first use."""
        with self._lock:
            if self._queues is None:
                self.logs.check_open()
                self._queues = QueueManager(self.logs, producer_factory=self.producer,
                                            clock=self.clock)
            return self._queues

    def producer(self, **config: Any) -> Producer:
        """A producer; with ``transactional_id=`` a transactional one (begin/commit/abort,
        see :mod:`logmq.broker.txn_producer`)."""
        self.logs.check_open()
        if config.get("transactional_id") is not None:
            from logmq.broker.txn_producer import TransactionalProducer

            return TransactionalProducer(
                self.logs, self.transactions, config.pop("transactional_id"),
                queues=lambda: self.queues, producer_ids=self.producer_ids, clock=self.clock,
                **config)
        config.pop("transactional_id", None)
        return Producer(self.logs, queues=lambda: self.queues,
                        producer_ids=self.producer_ids, clock=self.clock, **config)

    def consumer(self, *topics: str, **config: Any) -> Consumer:
        self.logs.check_open()
        coordinator = (lambda: self.groups) if config.get("group") is not None else None
        return Consumer(self.logs, *topics, coordinator=coordinator, **config)

    def queue(self, topic: str, group: str = "workers", **config: Any) -> QueueConsumer:
        """A member of share group ``group`` on ``topic``: records shared one by one, with
        per-record ack/nack/reject (see :mod:`logmq.broker.queues`)."""
        return self.queues.consumer(topic, group, **config)

    def request(self, topic: str, value: Any, *, key: Any = None, headers: Any = None,
                timeout: float = 30.0, partition: int | None = None) -> Record:
        """Send a request with reply-to/correlation-id headers and wait for its reply record
        (``QueueRecord.reply`` on the serving side); KafkaTimeoutError after ``timeout`` s."""
        return self.queues.request(topic, value, key=key, headers=headers, timeout=timeout,
                                   partition=partition)

    # ------------------------------------------------------------------ streams by key
    @property
    def streams(self) -> Streams:
        """Streams by key with expected versions (:mod:`logmq.streams`), made on first use."""
        with self._lock:
            if self._streams is None:
                self.logs.check_open()
                from logmq.streams.store import Streams

                self._streams = Streams(self)
                self.logs.add_topic_listener(self._streams.on_topic_deleted)
            return self._streams

    def append_to_stream(self, topic: str, key: Any, events: Any, **kw: Any) -> Any:
        return self.streams.append_to_stream(topic, key, events, **kw)

    def read_stream(self, topic: str, key: Any, from_version: int | None = None,
                    **kw: Any) -> Any:
        return self.streams.read_stream(topic, key, from_version, **kw)

    def subscribe_all(self, topic: str, from_position: Any = None, **kw: Any) -> Any:
        return self.streams.subscribe_all(topic, from_position, **kw)

    # ------------------------------------------------------------------ storage (delegated)
    @property
    def path(self) -> str:
        return self.logs.path

    @property
    def in_memory(self) -> bool:
        """Opened as ``logmq.open(":memory:")``: no fsync, nothing survives close or exit."""
        return self.logs.in_memory

    @property
    def meta(self) -> MetaStore:
        return self.logs.meta

    @property
    def defaults(self) -> dict[str, Any]:
        return self.logs.defaults

    @property
    def topics_version(self) -> int:
        return self.logs.topics_version

    @property
    def opened_clean(self) -> bool:
        return self.logs.opened_clean

    @property
    def auto_create_topics(self) -> bool:
        return self.logs.auto_create_topics

    @property
    def num_partitions(self) -> int:
        return self.logs.num_partitions

    @property
    def repair(self) -> bool:
        return self.logs.repair

    def check_open(self) -> None:
        self.logs.check_open()

    def partition_log(self, topic: str, partition: int) -> PartitionLog:
        return self.logs.partition_log(topic, partition)

    def partition_logs(self) -> list[tuple[tuple[str, int], PartitionLog]]:
        return self.logs.partition_logs()

    def ensure_topic(self, topic: str) -> int:
        return self.logs.ensure_topic(topic)

    def add_waiter(self, tp: tuple[str, int], fn: Callable[[], None]) -> None:
        self.logs.add_waiter(tp, fn)

    def remove_waiter(self, tp: tuple[str, int], fn: Callable[[], None]) -> None:
        self.logs.remove_waiter(tp, fn)

    def add_topic_listener(self, fn: Callable[[str], None]) -> None:
        self.logs.add_topic_listener(fn)

    def create_topic(self, name: str, partitions: int | None = None,
                     config: Mapping[str, Any] | None = None, *,
                     exist_ok: bool = False) -> TopicDescription:
        """Create a topic; with ``exist_ok`` an existing one is returned unchanged."""
        return self.logs.create_topic(name, partitions, config, exist_ok=exist_ok)

    def create_partitions(self, name: str, total: int) -> None:
        self.logs.create_partitions(name, total)

    def delete_topic(self, name: str) -> None:
        self.logs.delete_topic(name)

    def alter_topic_config(self, name: str, config: Mapping[str, Any],
                           *, replace: bool = False) -> dict[str, Any]:
        return self.logs.alter_topic_config(name, config, replace=replace)

    def topic_config(self, name: str) -> dict[str, Any]:
        return self.logs.topic_config(name)

    def topic_settings(self, name: str) -> TopicConfig:
        return self.logs.topic_settings(name)

    def list_topics(self) -> list[str]:
        return self.logs.list_topics()

    def topic_id(self, name: str) -> str:
        return self.logs.topic_id(name)

    def partitions_for(self, topic: str) -> int:
        return self.logs.partitions_for(topic)

    def describe_topic(self, name: str) -> TopicDescription:
        return self.logs.describe_topic(name)

    def start_offset(self, tp: Any) -> int:
        return self.logs.start_offset(tp)

    def end_offset(self, tp: Any) -> int:
        return self.logs.end_offset(tp)

    def offsets(self, tp: Any) -> tuple[int, int]:
        """(log start offset, log end offset) of a partition."""
        return self.logs.offsets(tp)

    def offsets_for_times(self, timestamps: Mapping[Any, int]
                          ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """Earliest offset per partition whose timestamp is >= the given one (ms), or None."""
        return self.logs.offsets_for_times(timestamps)

    def append_batches(self, tp: Any, data: bytes | bytearray | memoryview, *,
                       expected_offset: int | None = None) -> int:
        """Append already-encoded v2 batches (validated, offsets assigned); first offset."""
        return self.logs.append_batches(tp, data, expected_offset=expected_offset)

    def read_batches(self, tp: Any, offset: int, max_bytes: int = 1 << 20) -> bytes:
        """Stored bytes of whole batches from the one holding ``offset`` (at least one batch)."""
        return self.logs.read_batches(tp, offset, max_bytes)

    def delete_records(self, tp: Any, before_offset: int) -> int:
        """Make offsets below ``before_offset`` unreadable; returns the new log start offset."""
        return self.logs.delete_records(tp, before_offset)

    def metrics(self) -> dict[str, Any]:
        """Offsets, sizes, throughput, group lag, queue depths: see :mod:`logmq.ops.figures`."""
        from logmq.ops.figures import metrics_dict

        return metrics_dict(self)

    # ------------------------------------------------------------------ lifecycle
    def reload_encryption_keys(self) -> list[str]:
        """Read the key file (or ``LOGMQ_ENCRYPTION_KEYS``) again, so a rotated key is used
        without a restart: new batches go under the new active key, the cleaner re-seals
        older segments. Returns the key ids now held; a bad file raises ConfigError and the
        old keys stay in use."""
        ring = KeyRing.load(self.config.encryption_key_file, os.environ)
        self.logs.set_keyring(ring)
        if self.cleaner is not None:
            self.cleaner.wake()
        return [] if ring is None else ring.key_ids

    def flush(self) -> None:
        """fsync every partition now, whatever the fsync policy."""
        self.logs.flush()

    def close(self) -> None:
        """Stop the services, fsync and checkpoint every partition, leave a clean marker."""
        if not self.logs.mark_closing():
            return
        if self.cleaner is not None:
            self.cleaner.stop()
        with self._lock:
            services: list[Any] = [s for s in (self._streams, self._queues, self._groups,
                                               self._transactions) if s is not None]
        for s in services:
            s.close()
        self.logs.close()

    @property
    def closed(self) -> bool:
        return self.logs.closed

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<logmq.Broker {self.path!r} topics={len(self.list_topics())}>"


def open_log(path: str | os.PathLike[str] = "logmq-data", **config: Any) -> Broker:
    """Open (creating if needed) a data directory; see :class:`Broker` for the options.

    ``":memory:"`` opens a private log that is never fsynced and is gone after :meth:`close`
    or the end of the process, for tests and ephemeral pipelines (see logmq.storage.memory).
    """
    return Broker(path, **config)
