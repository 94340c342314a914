"""The broker: one data directory's topics, partitions, metadata and background threads.

Everything above the storage layer goes through here: the embedded producer and consumer,
the wire server, the CLI. It owns the directory lock, the LMDB environment, the partition
logs, the flusher thread (fsync='interval') and the append notifications consumers and fetch
long-polls wait on.

Layout of a data directory::

    <data>/.lock                 exclusive flock held while open
    <data>/.clean_shutdown       present only after a clean close (deleted on open)
    <data>/meta/                 LMDB environment (topics, group offsets, producer/queue state)
    <data>/<topic>-<partition>/  one directory of segments per partition
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from logmq.broker.config import log_config_from, normalize_key, resolve, validate_topic_config
from logmq.broker.meta import MetaStore
from logmq.errors import (
    BrokerClosedError,
    ConfigError,
    DirectoryLockedError,
    InvalidPartitionError,
    InvalidTopicError,
    TopicExistsError,
    UnknownTopicError,
)
from logmq.storage.log import PartitionLog, _fsync_dir
from logmq.types import OffsetAndTimestamp, PartitionInfo, TopicDescription, TopicPartition

__all__ = ["Broker", "open_log"]

_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
CLEAN_MARKER = ".clean_shutdown"
LOCK_FILE = ".lock"


def validate_topic_name(name: str) -> None:
    if not isinstance(name, str) or not _TOPIC_RE.fullmatch(name) or name in (".", ".."):
        raise InvalidTopicError(
            f"invalid topic name {name!r}: 1-249 characters of [A-Za-z0-9._-], not '.' or '..'"
        )


def _as_tp(tp: Any) -> TopicPartition:
    if isinstance(tp, TopicPartition):
        return tp
    try:
        topic, partition = tp
    except (TypeError, ValueError):
        raise TypeError(f"expected (topic, partition), got {tp!r}") from None
    return TopicPartition(topic, int(partition))


class Broker:
    """An open data directory. Thread-safe; use as a context manager or call :meth:`close`.

    Broker-wide keyword config (``fsync="always"``, ``segment_bytes=...``, any topic config
    with underscores) sets defaults for every topic; per-topic overrides win.
    ``auto_create_topics`` (default True) creates a topic with ``num_partitions`` partitions
    the first time a producer writes to it. ``repair=True`` lets opening cut a partition at
    damage found in cleanly closed data instead of refusing with CorruptRecordError.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        auto_create_topics: bool = True,
        num_partitions: int = 1,
        cleaner: bool = True,
        map_size: int = 16 << 30,
        repair: bool = False,
        **defaults: Any,
    ) -> None:
        self.path = os.fspath(path)
        os.makedirs(self.path, exist_ok=True)
        self._lock_fd = os.open(os.path.join(self.path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise DirectoryLockedError(
                f"data directory {self.path!r} is already open (by this or another process)"
            ) from None
        self.repair = repair
        try:
            self._init(auto_create_topics, num_partitions, cleaner, map_size, defaults)
        except BaseException:
            os.close(self._lock_fd)
            raise

    def _init(self, auto_create: bool, num_partitions: int, cleaner: bool, map_size: int,
              defaults: Mapping[str, Any]) -> None:
        if num_partitions < 1:
            raise ConfigError("num_partitions must be >= 1")
        self.auto_create_topics = auto_create
        self.num_partitions = num_partitions
        self.defaults = validate_topic_config(defaults)
        self._lock = threading.RLock()
        self._closed = False
        marker = os.path.join(self.path, CLEAN_MARKER)
        self.opened_clean = os.path.exists(marker)
        if self.opened_clean:
            os.unlink(marker)
            _fsync_dir(self.path)
        self.meta = MetaStore(os.path.join(self.path, "meta"), map_size=map_size)
        self._topics: dict[str, dict[str, Any]] = {}
        #: bumped whenever topics or partition counts change (producers cache per topic)
        self.topics_version = 0
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        self._waiters: dict[tuple[str, int], set[Callable[[], None]]] = {}
        self._stop = threading.Event()
        for name, meta in self.meta.topics().items():
            self._topics[name] = meta
            for p in range(meta["partitions"]):
                self._open_partition(name, p, clean=self.opened_clean)
        self._extensions: dict[str, Any] = {}
        self._flusher = threading.Thread(target=self._flush_loop, name="logmq-flusher", daemon=True)
        self._flusher.start()
        self.cleaner = None
        if cleaner:
            self._start_cleaner()

    def _start_cleaner(self) -> None:
        try:
            from logmq.broker.cleaner import Cleaner
        except ImportError:  # the cleaner module is optional during bootstrap
            return
        self.cleaner = Cleaner(self)
        self.cleaner.start()

    # ------------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self._closed:
            raise BrokerClosedError("the log is closed")

    def _partition_dir(self, topic: str, partition: int) -> str:
        return os.path.join(self.path, f"{topic}-{partition}")

    def _open_partition(self, topic: str, partition: int, clean: bool = False) -> PartitionLog:
        eff = resolve(self.defaults, self._topics[topic].get("config", {}))
        plog = PartitionLog(self._partition_dir(topic, partition), topic, partition,
                            log_config_from(eff), clean=clean, repair=self.repair)
        plog.on_append = self._notify
        self._logs[(topic, partition)] = plog
        return plog

    def _notify(self, plog: PartitionLog) -> None:
        waiters = self._waiters.get((plog.topic, plog.partition))
        if waiters:
            for w in list(waiters):
                w()

    def add_waiter(self, tp: tuple[str, int], fn: Callable[[], None]) -> None:
        """Call ``fn`` (from the appending thread) after every append to ``tp``."""
        with self._lock:
            self._waiters.setdefault((tp[0], tp[1]), set()).add(fn)

    def remove_waiter(self, tp: tuple[str, int], fn: Callable[[], None]) -> None:
        with self._lock:
            s = self._waiters.get((tp[0], tp[1]))
            if s:
                s.discard(fn)

    def _flush_loop(self) -> None:
        last_checkpoint = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                logs = list(self._logs.values())
            interval = min((lg.config.flush_ms for lg in logs if lg.config.fsync == "interval"),
                           default=1000) / 1000
            now = time.monotonic()
            for lg in logs:
                try:
                    lg.flush_if_due(now)
                except BrokerClosedError:
                    pass
                except OSError:
                    pass  # a deleted topic's files may vanish under us
            if now - last_checkpoint >= 60:
                for lg in logs:
                    if lg.config.fsync != "never":
                        try:
                            lg.flush(checkpoint=True)
                        except OSError:
                            pass
                last_checkpoint = now
            self._stop.wait(interval)

    def partition_log(self, topic: str, partition: int) -> PartitionLog:
        """The storage object of one partition (raises for unknown topic/partition)."""
        lg = self._logs.get((topic, partition))
        if lg is None:
            self._check_open()
            if topic not in self._topics:
                raise UnknownTopicError(topic)
            raise InvalidPartitionError(topic, partition, self._topics[topic]["partitions"])
        return lg

    def ensure_topic(self, topic: str) -> int:
        """Partition count of ``topic``, auto-creating it if allowed."""
        meta = self._topics.get(topic)
        if meta is not None:
            return meta["partitions"]
        self._check_open()
        if not self.auto_create_topics:
            raise UnknownTopicError(topic)
        try:
            self.create_topic(topic, partitions=self.num_partitions)
        except TopicExistsError:
            pass
        return self._topics[topic]["partitions"]

    # ------------------------------------------------------------------ topics
    def create_topic(self, name: str, partitions: int | None = None,
                     config: Mapping[str, Any] | None = None) -> TopicDescription:
        validate_topic_name(name)
        n = self.num_partitions if partitions is None else partitions
        if not isinstance(n, int) or n < 1 or n > 100_000:
            raise ConfigError(f"partitions must be between 1 and 100000, got {n!r}")
        overrides = validate_topic_config(config)
        with self._lock:
            self._check_open()
            if name in self._topics:
                raise TopicExistsError(name)
            meta = {"partitions": n, "config": overrides, "id": uuid.uuid4().hex,
                    "created_ms": int(time.time() * 1000)}
            for p in range(n):  # leftovers of a crash during delete must not resurface
                shutil.rmtree(self._partition_dir(name, p), ignore_errors=True)
            self.meta.put_topic(name, meta)
            self._topics[name] = meta
            for p in range(n):
                self._open_partition(name, p)
            self.topics_version += 1
        return self.describe_topic(name)

    def create_partitions(self, name: str, total: int) -> None:
        """Grow a topic to ``total`` partitions (Kafka never shrinks a topic)."""
        with self._lock:
            self._check_open()
            meta = self._topics.get(name)
            if meta is None:
                raise UnknownTopicError(name)
            if total <= meta["partitions"]:
                raise ConfigError(f"topic {name!r} already has {meta['partitions']} partitions")
            old = meta["partitions"]
            meta = dict(meta, partitions=total)
            self.meta.put_topic(name, meta)
            self._topics[name] = meta
            for p in range(old, total):
                self._open_partition(name, p)
            self.topics_version += 1

    def delete_topic(self, name: str) -> None:
        with self._lock:
            self._check_open()
            meta = self._topics.pop(name, None)
            if meta is None:
                raise UnknownTopicError(name)
            self.meta.delete_topic(name)
            self.topics_version += 1
            for p in range(meta["partitions"]):
                lg = self._logs.pop((name, p), None)
                if lg is not None:
                    lg.delete()
            for ext in self._extensions.values():
                hook = getattr(ext, "on_topic_deleted", None)
                if hook is not None:
                    hook(name)
            if "groups" not in self._extensions:  # no coordinator yet: drop offsets directly
                from logmq.broker.groups import LmdbOffsetStore

                LmdbOffsetStore(self.meta.env).delete_topic(name)

    def alter_topic_config(self, name: str, config: Mapping[str, Any],
                           *, replace: bool = False) -> dict[str, Any]:
        """Set (or with ``replace`` reset to exactly) per-topic overrides; effective at once.

        A value of None removes an override. Storage settings are swapped into the live
        partition logs, so no restart is needed.
        """
        changes = {k: v for k, v in config.items() if v is not None}
        removed = [k for k, v in config.items() if v is None]
        parsed = validate_topic_config(changes)
        removed_keys = [normalize_key(k) for k in removed]
        with self._lock:
            self._check_open()
            meta = self._topics.get(name)
            if meta is None:
                raise UnknownTopicError(name)
            overrides = {} if replace else dict(meta.get("config", {}))
            overrides.update(parsed)
            for k in removed_keys:
                overrides.pop(k, None)
            meta = dict(meta, config=overrides)
            self.meta.put_topic(name, meta)
            self._topics[name] = meta
            lc = log_config_from(resolve(self.defaults, overrides))
            for p in range(meta["partitions"]):
                self._logs[(name, p)].config = lc
        return overrides

    def topic_config(self, name: str) -> dict[str, Any]:
        meta = self._topics.get(name)
        if meta is None:
            raise UnknownTopicError(name)
        return resolve(self.defaults, meta.get("config", {}))

    def list_topics(self) -> list[str]:
        return sorted(self._topics)

    def partitions_for(self, topic: str) -> int:
        meta = self._topics.get(topic)
        if meta is None:
            raise UnknownTopicError(topic)
        return meta["partitions"]

    def describe_topic(self, name: str) -> TopicDescription:
        meta = self._topics.get(name)
        if meta is None:
            raise UnknownTopicError(name)
        parts = []
        for p in range(meta["partitions"]):
            lg = self._logs.get((name, p))
            if lg is None:  # another thread is creating or deleting it right now
                raise UnknownTopicError(name)
            segs = lg.segments
            parts.append(PartitionInfo(p, lg.log_start_offset, lg.next_offset,
                                       sum(s.size for s in segs), len(segs)))
        return TopicDescription(name, parts, self.topic_config(name), dict(meta.get("config", {})))

    # ------------------------------------------------------------------ offsets
    def start_offset(self, tp: Any) -> int:
        t = _as_tp(tp)
        return self.partition_log(t.topic, t.partition).log_start_offset

    def end_offset(self, tp: Any) -> int:
        t = _as_tp(tp)
        return self.partition_log(t.topic, t.partition).next_offset

    def offsets(self, tp: Any) -> tuple[int, int]:
        """(log start offset, log end offset) of a partition."""
        t = _as_tp(tp)
        lg = self.partition_log(t.topic, t.partition)
        return lg.log_start_offset, lg.next_offset

    def offsets_for_times(self, timestamps: Mapping[Any, int]) -> dict[TopicPartition,
                                                                       OffsetAndTimestamp | None]:
        """Earliest offset per partition whose timestamp is >= the given one (ms), or None."""
        from logmq.codec.records import decode_batch

        out: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        for tp, ts in timestamps.items():
            t = _as_tp(tp)
            lg = self.partition_log(t.topic, t.partition)
            off = lg.offset_for_timestamp(ts)
            if off is None:
                out[t] = None
                continue
            data = lg.read_bytes(off, 1, whole_batches=True)
            _, recs = decode_batch(data, 0)
            rts = next((r[1] for r in recs if r[0] >= off), ts)
            out[t] = OffsetAndTimestamp(off, rts)
        return out

    # ------------------------------------------------------------------ raw batches
    def append_batches(self, tp: Any, data: bytes | bytearray | memoryview, *,
                       expected_offset: int | None = None) -> int:
        """Append already-encoded v2 batches (validated, offsets assigned); first offset."""
        from logmq.codec.validate import policy_from_config, validate_produce

        t = _as_tp(tp)
        self.ensure_topic(t.topic)
        data, headers = validate_produce(data, policy_from_config(self.topic_config(t.topic)))
        first, _ = self.partition_log(t.topic, t.partition).append(
            data, validate=False, expected_offset=expected_offset, headers=headers)
        return first

    def read_batches(self, tp: Any, offset: int, max_bytes: int = 1 << 20) -> bytes:
        """Stored bytes of whole batches from the one holding ``offset`` (at least one batch)."""
        t = _as_tp(tp)
        return self.partition_log(t.topic, t.partition).read_bytes(offset, max_bytes)

    def delete_records(self, tp: Any, before_offset: int) -> int:
        """Make offsets below ``before_offset`` unreadable; returns the new log start offset."""
        t = _as_tp(tp)
        return self.partition_log(t.topic, t.partition).delete_records(before_offset)

    # ------------------------------------------------------------------ clients
    def producer(self, **config: Any):  # -> Producer (import cycle kept out of module scope)
        from logmq.broker.producer import Producer

        return Producer(self, **config)

    def consumer(self, *topics: str, **config: Any):
        from logmq.broker.consumer import Consumer

        return Consumer(self, *topics, **config)

    def queue(self, topic: str, group: str = "workers", **config: Any):  # -> QueueConsumer
        """A member of share group ``group`` on ``topic``: records shared one by one, with
        per-record ack/nack/reject (see :mod:`logmq.broker.queues`)."""
        from logmq.broker.queues.manager import queue_manager

        return queue_manager(self).consumer(topic, group, **config)

    def request(self, topic: str, value: Any, *, key: Any = None, headers: Any = None,
                timeout: float = 30.0, partition: int | None = None):  # -> Record
        """Send a request with reply-to/correlation-id headers and wait for its reply record
        (``QueueRecord.reply`` on the serving side); KafkaTimeoutError after ``timeout`` s."""
        from logmq.broker.queues.manager import queue_manager

        return queue_manager(self).request(topic, value, key=key, headers=headers,
                                           timeout=timeout, partition=partition)

    def extension(self, name: str, factory: Callable[[Broker], Any]) -> Any:
        """A per-broker singleton (group coordinator, queue manager...), created on first use."""
        with self._lock:
            ext = self._extensions.get(name)
            if ext is None:
                self._check_open()
                ext = factory(self)
                self._extensions[name] = ext
            return ext

    # ------------------------------------------------------------------ lifecycle
    def flush(self) -> None:
        """fsync every partition now, whatever the fsync policy."""
        with self._lock:
            logs = list(self._logs.values())
        for lg in logs:
            lg.flush(checkpoint=True)

    def close(self) -> None:
        """Stop background work, fsync and checkpoint every partition, leave a clean marker."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self.cleaner is not None:
            self.cleaner.stop()
        self._flusher.join()
        for ext in list(self._extensions.values()):
            close = getattr(ext, "close", None)
            if close is not None:
                close()
        for lg in list(self._logs.values()):
            lg.close()
        self.meta.env.sync(True)
        self.meta.close()
        with open(os.path.join(self.path, CLEAN_MARKER), "wb") as f:
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(self.path)
        os.close(self._lock_fd)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<logmq.Broker {self.path!r} topics={len(self._topics)}>"


def open_log(path: str | os.PathLike[str] = "logmq-data", **config: Any) -> Broker:
    """Open (creating if needed) a data directory; see :class:`Broker` for the options."""
    return Broker(path, **config)


def iter_tps(items: Iterable[Any]) -> list[TopicPartition]:
    return [_as_tp(x) for x in items]
