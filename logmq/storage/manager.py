"""The storage manager: one data directory's partitions, topic metadata and lifecycle.

Kafka's ``LogManager`` in spirit: it owns the directory lock, the LMDB environment, the
registry of partition logs, the flusher thread (``fsync=interval``), the append notifications
consumers and fetch long-polls wait on, and the topic lifecycle. It imports nothing above the
storage layer: services that must react to a topic going away (the group offset store, the
queue engine) register a listener with :meth:`LogManager.add_topic_listener` instead of being
known here.

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
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from logmq.codec.seal import KeyRing
from logmq.codec.validate import policy_from_config, validate_produce
from logmq.config import (
    TopicConfig,
    normalize_key,
    resolve,
    topic_config_from,
    validate_topic_config,
)
from logmq.errors import (
    BrokerClosedError,
    ConfigError,
    DirectoryLockedError,
    InvalidPartitionError,
    InvalidTopicError,
    TopicExistsError,
    UnknownTopicError,
)
from logmq.storage import datadir
from logmq.storage.fsutil import fsync_path
from logmq.storage.log import PartitionLog
from logmq.storage.memory import MemoryDir, is_memory_path
from logmq.storage.meta import MetaStore
from logmq.storage.sealing import check_encryption_change, pin_encryption
from logmq.types import OffsetAndTimestamp, PartitionInfo, TopicDescription, TopicPartition

__all__ = ["LogManager", "validate_topic_name", "as_tp", "CLEAN_MARKER",
           "LOCK_FILE"]

_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
CLEAN_MARKER = ".clean_shutdown"
LOCK_FILE = ".lock"
#: how often the flusher also writes every partition's recovery checkpoint
CHECKPOINT_INTERVAL_S = 60.0


def validate_topic_name(name: str) -> None:
    if not isinstance(name, str) or not _TOPIC_RE.fullmatch(name) or name in (".", ".."):
        raise InvalidTopicError(
            f"invalid topic name {name!r}: 1-249 characters of [A-Za-z0-9._-], not '.' or '..'"
        )


def as_tp(tp: Any) -> TopicPartition:
    if isinstance(tp, TopicPartition):
        return tp
    try:
        topic, partition = tp
    except (TypeError, ValueError):
        raise TypeError(f"expected (topic, partition), got {tp!r}") from None
    return TopicPartition(topic, int(partition))


class LogManager:
    """An open data directory's storage. Thread-safe; :meth:`close` leaves a clean marker.

    ``defaults`` are broker-wide topic config overrides (Kafka names or underscores);
    ``time_fn`` is the wall clock in seconds (topic creation times), injectable for tests.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        auto_create_topics: bool = True,
        num_partitions: int = 1,
        map_size: int = 16 << 30,
        repair: bool = False,
        defaults: Mapping[str, Any] | None = None,
        time_fn: Callable[[], float] = time.time,
        max_partitions: int = datadir.DEFAULT_MAX_PARTITIONS,
        max_partitions_per_topic: int = datadir.DEFAULT_MAX_PARTITIONS_PER_TOPIC,
        keyring: KeyRing | None = None,
    ) -> None:
        #: encryption at rest: the keys of topics with encryption=aes-256-gcm (None: none)
        self.keyring = keyring
        #: ``":memory:"``: a private directory on a memory file system, removed on close
        self._memory = MemoryDir() if is_memory_path(path) else None
        self.path = self._memory.path if self._memory is not None else os.fspath(path)
        self.max_partitions, self.max_partitions_per_topic = max_partitions, max_partitions_per_topic
        #: partition directories found without metadata and adopted on open (see datadir)
        self.adopted_orphans: list[str] = []
        datadir.check_data_path(self.path)
        self._lock_fd = os.open(os.path.join(self.path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise DirectoryLockedError(
                f"data directory {self.path!r} is already open (by this or another process)"
            ) from None
        self.repair = repair
        self._time = time_fn
        try:
            self._init(auto_create_topics, num_partitions, map_size, defaults or {})
        except BaseException:  # release all it took: a retry (repair=True) must be able to open
            if hasattr(self, "_stop"):
                self._stop.set()
            datadir.release_logs(getattr(self, "_logs", {}).values())
            if hasattr(self, "meta"):
                self.meta.close()
            os.close(self._lock_fd)
            if self._memory is not None:
                self._memory.remove()
            raise

    def _init(self, auto_create: bool, num_partitions: int, map_size: int,
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
            fsync_path(self.path)
        self.meta = MetaStore(os.path.join(self.path, "meta"), map_size=map_size,
                              sync=self._memory is None)
        self._topics: dict[str, dict[str, Any]] = {}
        #: bumped whenever topics or partition counts change (producers cache per topic)
        self.topics_version = 0
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        self._waiters: dict[tuple[str, int], set[Callable[[], None]]] = {}
        self._listeners: list[Callable[[str], None]] = []
        #: topics whose deletion listeners are still running: not to be created again until
        #: they finish, or a late listener would clear the new topic's queue state
        self._deleting: set[str] = set()
        self._stop = threading.Event()
        topics, self.adopted_orphans = datadir.adopt_orphan_partitions(
            self.path, self.meta.topics(), self.meta.put_topic)
        for name, meta in topics.items():
            if not meta.get("id"):  # a directory from before topic ids: give it one, once
                meta = dict(meta, id=uuid.uuid4().hex)
                self.meta.put_topic(name, meta)
            for p in range(meta["partitions"]):
                self._open_partition(name, p, meta, clean=self.opened_clean)
            self._topics[name] = meta
        self._flusher = threading.Thread(target=self._flush_loop, name="logmq-flusher", daemon=True)
        self._flusher.start()

    # ------------------------------------------------------------------ internals
    def check_open(self) -> None:
        if self._closed:
            raise BrokerClosedError("the log is closed")

    def _partition_dir(self, topic: str, partition: int) -> str:
        return os.path.join(self.path, f"{topic}-{partition}")

    def _open_partition(self, topic: str, partition: int, meta: Mapping[str, Any],
                        clean: bool = False) -> PartitionLog:
        """Open one partition of a topic whose metadata is ``meta``; the caller publishes
        ``meta`` in ``_topics`` only after every partition it counts is open, because readers
        look partitions up without the lock (a Describe racing a create once met a topic with
        one partition and no partition 0)."""
        eff = resolve(self.defaults, meta.get("config", {}))
        plog = PartitionLog(self._partition_dir(topic, partition), topic, partition,
                            topic_config_from(eff), clean=clean, repair=self.repair,
                            keyring=self.keyring)
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

    def add_topic_listener(self, fn: Callable[[str], None]) -> None:
        """Call ``fn(topic)`` after a topic is deleted (offset stores, queue state...)."""
        with self._lock:
            self._listeners.append(fn)

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
            if now - last_checkpoint >= CHECKPOINT_INTERVAL_S:
                for lg in logs:
                    if lg.config.fsync != "never":
                        try:
                            lg.flush(checkpoint=True)
                        except OSError:
                            pass
                last_checkpoint = now
            self._stop.wait(interval)

    # ------------------------------------------------------------------ partitions
    def partition_log(self, topic: str, partition: int) -> PartitionLog:
        """The storage object of one partition (raises for unknown topic/partition)."""
        lg = self._logs.get((topic, partition))
        if lg is None:
            self.check_open()
            if topic not in self._topics:
                raise UnknownTopicError(topic)
            raise InvalidPartitionError(topic, partition, self._topics[topic]["partitions"])
        return lg

    def partition_logs(self) -> list[tuple[tuple[str, int], PartitionLog]]:
        """A sorted snapshot of every open partition (what the cleaner walks)."""
        with self._lock:
            return sorted(self._logs.items())

    def ensure_topic(self, topic: str) -> int:
        """Partition count of ``topic``, auto-creating it if allowed."""
        meta = self._topics.get(topic)
        if meta is not None:
            return int(meta["partitions"])
        self.check_open()
        if not self.auto_create_topics:
            raise UnknownTopicError(topic)
        try:
            self.create_topic(topic, partitions=self.num_partitions)
        except TopicExistsError:
            pass
        meta = self._topics.get(topic)
        if meta is None:  # being deleted: retriable, as Kafka's clients treat this code
            raise UnknownTopicError(f"topic {topic!r} is being deleted")
        return int(meta["partitions"])

    # ------------------------------------------------------------------ topics
    def create_topic(self, name: str, partitions: int | None = None,
                     config: Mapping[str, Any] | None = None, *,
                     exist_ok: bool = False) -> TopicDescription:
        """Create a topic; with ``exist_ok`` an existing one is returned unchanged."""
        validate_topic_name(name)
        n = self.num_partitions if partitions is None else partitions
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(f"partitions must be an int >= 1, got {n!r}")
        overrides = pin_encryption(self.defaults, validate_topic_config(config))
        with self._lock:
            self.check_open()
            if name in self._topics:
                if exist_ok:
                    return self.describe_topic(name)
                raise TopicExistsError(name)
            if name in self._deleting:  # Kafka: "Topic 'x' is marked for deletion."
                raise TopicExistsError(f"topic {name!r} is being deleted; create it again "
                                       "once that is done")
            datadir.check_partition_budget(
                name, n, topic_total=n, broker_total=len(self._logs),
                max_per_topic=self.max_partitions_per_topic, max_total=self.max_partitions)
            meta = {"partitions": n, "config": overrides, "id": uuid.uuid4().hex,
                    "created_ms": int(self._time() * 1000)}
            datadir.prepare_partition_dirs(self.path, name, range(n))  # never deletes records
            self.meta.put_topic(name, meta)
            for p in range(n):
                self._open_partition(name, p, meta)
            self._topics[name] = meta
            self.topics_version += 1
        return self.describe_topic(name)

    def create_partitions(self, name: str, total: int) -> None:
        """Grow a topic to ``total`` partitions (Kafka never shrinks a topic)."""
        with self._lock:
            self.check_open()
            meta = self._topics.get(name)
            if meta is None:
                raise UnknownTopicError(name)
            if total <= meta["partitions"]:
                raise ConfigError(f"topic {name!r} already has {meta['partitions']} partitions")
            old = meta["partitions"]
            datadir.check_partition_budget(
                name, total - old, topic_total=total, broker_total=len(self._logs),
                max_per_topic=self.max_partitions_per_topic, max_total=self.max_partitions)
            datadir.prepare_partition_dirs(self.path, name, range(old, total))
            meta = dict(meta, partitions=total)
            self.meta.put_topic(name, meta)
            for p in range(old, total):
                self._open_partition(name, p, meta)
            self._topics[name] = meta
            self.topics_version += 1

    def delete_topic(self, name: str) -> None:
        with self._lock:
            self.check_open()
            meta = self._topics.pop(name, None)
            if meta is None:
                raise UnknownTopicError(name)
            self.meta.delete_topic(name)
            self.topics_version += 1
            for p in range(meta["partitions"]):
                lg = self._logs.pop((name, p), None)
                if lg is not None:
                    lg.delete()
            listeners = list(self._listeners)
            self._deleting.add(name)  # once: a second delete finds no topic
        # Outside the lock: listeners take their own locks (the queue engine's), which are held
        # while calling into this manager (add_waiter); called under it, DeleteTopics, a share
        # group opening and a Fetch deadlocked the server (found by the wire fuzzer). Until
        # they are done, create_topic refuses the name (``_deleting``).
        try:
            for fn in listeners:
                fn(name)
        finally:
            with self._lock:
                self._deleting.discard(name)

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
            self.check_open()
            meta = self._topics.get(name)
            if meta is None:
                raise UnknownTopicError(name)
            overrides = {} if replace else dict(meta.get("config", {}))
            overrides.update(parsed)
            for k in removed_keys:
                overrides.pop(k, None)
            check_encryption_change(name, self.topic_config(name),
                                    resolve(self.defaults, overrides))
            meta = dict(meta, config=overrides)
            self.meta.put_topic(name, meta)
            self._topics[name] = meta
            lc = topic_config_from(resolve(self.defaults, overrides))
            for p in range(meta["partitions"]):
                self._logs[(name, p)].config = lc
        return overrides

    def topic_config(self, name: str) -> dict[str, Any]:
        """The effective config of a topic as a Kafka-named dict."""
        meta = self._topics.get(name)
        if meta is None:
            raise UnknownTopicError(name)
        return resolve(self.defaults, meta.get("config", {}))

    def topic_settings(self, name: str) -> TopicConfig:
        """The effective config of a topic, typed (``.compact``, ``.retention_ms``...)."""
        return topic_config_from(self.topic_config(name))

    def topic_id(self, name: str) -> str:
        """The id the topic got when created: a recreated topic of the same name has another."""
        meta = self._topics.get(name)
        return "" if meta is None else str(meta.get("id", ""))

    def list_topics(self) -> list[str]:
        return sorted(self._topics)

    def partitions_for(self, topic: str) -> int:
        meta = self._topics.get(topic)
        if meta is None:
            raise UnknownTopicError(topic)
        return int(meta["partitions"])

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
        t = as_tp(tp)
        return self.partition_log(t.topic, t.partition).log_start_offset

    def end_offset(self, tp: Any) -> int:
        t = as_tp(tp)
        return self.partition_log(t.topic, t.partition).next_offset

    def offsets(self, tp: Any) -> tuple[int, int]:
        """(log start offset, log end offset) of a partition."""
        t = as_tp(tp)
        lg = self.partition_log(t.topic, t.partition)
        return lg.log_start_offset, lg.next_offset

    def offsets_for_times(self, timestamps: Mapping[Any, int]) -> dict[TopicPartition,
                                                                       OffsetAndTimestamp | None]:
        """Earliest offset per partition whose timestamp is >= the given one (ms), or None."""
        from logmq.codec.records import decode_batch

        out: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        for tp, ts in timestamps.items():
            t = as_tp(tp)
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
        t = as_tp(tp)
        self.ensure_topic(t.topic)
        plog = self.partition_log(t.topic, t.partition)
        data, headers = validate_produce(data, policy_from_config(plog.config))
        first, _ = plog.append(
            data, validate=False, expected_offset=expected_offset, headers=headers)
        return first

    def read_batches(self, tp: Any, offset: int, max_bytes: int = 1 << 20) -> bytes:
        """Stored bytes of whole batches from the one holding ``offset`` (at least one batch)."""
        t = as_tp(tp)
        return self.partition_log(t.topic, t.partition).read_bytes(offset, max_bytes)

    def delete_records(self, tp: Any, before_offset: int) -> int:
        """Make offsets below ``before_offset`` unreadable; returns the new log start offset."""
        t = as_tp(tp)
        return self.partition_log(t.topic, t.partition).delete_records(before_offset)

    # ------------------------------------------------------------------ lifecycle
    def set_keyring(self, keyring: KeyRing | None) -> None:
        """Swap in new encryption keys (a rotated key file): appends and reads of every
        partition use them from the next call on; the cleaner re-seals what needs it."""
        with self._lock:
            self.keyring = keyring
            for lg in self._logs.values():
                lg.keyring = keyring

    def flush(self) -> None:
        """fsync every partition now, whatever the fsync policy."""
        with self._lock:
            logs = list(self._logs.values())
        for lg in logs:
            lg.flush(checkpoint=True)

    def mark_closing(self) -> bool:
        """Refuse new work from now on; False if the manager was already closing or closed.

        The facade calls this first, stops the services above (which may still read and
        append while they wind down), then :meth:`close`.
        """
        with self._lock:
            if self._closed:
                return False
            self._closed = True
        self._stop.set()
        return True

    def close(self) -> None:
        """Stop the flusher, fsync and checkpoint every partition, leave a clean marker."""
        self.mark_closing()
        with self._lock:
            if self._lock_fd < 0:
                return
            fd, self._lock_fd = self._lock_fd, -1
        self._flusher.join()
        for lg in list(self._logs.values()):
            lg.close()
        if self._memory is not None:  # nothing to leave for a next open: it all goes
            self.meta.close()
            os.close(fd)
            self._memory.remove()
            return
        self.meta.env.sync(True)
        self.meta.close()
        with open(os.path.join(self.path, CLEAN_MARKER), "wb") as f:
            f.flush()
            os.fsync(f.fileno())
        fsync_path(self.path)
        os.close(fd)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_memory(self) -> bool:
        """Opened as ``":memory:"``: never fsynced, removed on close and at process exit."""
        return self._memory is not None

    def __repr__(self) -> str:
        return f"<logmq.LogManager {self.path!r} topics={len(self._topics)}>"

