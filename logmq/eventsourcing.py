"""Persistence module for the ``eventsourcing`` library: ``PERSISTENCE_MODULE=logmq.eventsourcing``.

Set ``LOGMQ_DATA`` to a data directory (optionally ``LOGMQ_FSYNC=always|interval|never`` for
the topics this module creates, default ``always``). An application named ``Bank`` uses the
topics (one partition each, so notification ids are contiguous):

- ``Bank.events``: every stored event as a record: key = originator id (str), value = the
  state bytes, headers ``logmq.version`` (the originator version), ``es.topic`` (the event
  topic) and ``es.idt`` (``u`` when the originator id is a UUID); notification id =
  offset + 1. A process application's tracking position rides in the same batch as its
  events (header ``logmq.tracking``), so both are recorded atomically or not at all;
- ``Bank.snapshots``: the snapshots recorder, same layout;
- ``Bank.tracking``: tracking positions recorded without events.

One ``insert_events`` call is one RecordBatch: atomic, its notification ids contiguous and
never interleaved with another call's. Several factories (applications) in one process
share one open log per directory, since a directory can only be open once (the broker
holds an exclusive lock); the log closes when the last factory using it is closed or
garbage-collected.
"""

from __future__ import annotations

import atexit
import os
import queue
import re
import threading
import weakref
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    ListenNotifySubscription,
    Notification,
    OperationalError,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic

import logmq
from logmq.broker.broker import Broker
from logmq.codec.batch import LOG_OVERHEAD, parse_header
from logmq.codec.records import decode_batch
from logmq.errors import LogMQError, TopicExistsError, WrongExpectedVersionError
from logmq.streams import ANY, Streams, streams_of

__all__ = [
    "LogMQFactory",
    "Factory",
    "LogMQDatastore",
    "LogMQAggregateRecorder",
    "LogMQApplicationRecorder",
    "LogMQTrackingRecorder",
    "LogMQProcessRecorder",
]

TOPIC_HEADER = "es.topic"
IDTYPE_HEADER = "es.idt"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_READ_BYTES = 1 << 20


class LogMQDatastore:
    """One open log per data directory, shared by every factory of the process."""

    _open: dict[str, list[Any]] = {}
    _registry_lock = threading.RLock()
    # Factories that were garbage-collected without close(): their finalizer only queues
    # the release (a finalizer may run inside any thread holding any lock, so it must not
    # take locks or do I/O); a daemon thread does the release.
    _pending: queue.SimpleQueue[LogMQDatastore] = queue.SimpleQueue()
    _closer: threading.Thread | None = None

    def __init__(self, broker: Broker, path: str) -> None:
        self.broker = broker
        self.path = path
        self.streams: Streams = streams_of(broker)
        self.locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    @classmethod
    def acquire(cls, path: str, **config: Any) -> LogMQDatastore:
        real = os.path.realpath(path)
        with cls._registry_lock:
            if cls._closer is None:
                cls._closer = threading.Thread(target=cls._close_pending,
                                               name="logmq-es-closer", daemon=True)
                cls._closer.start()
                atexit.register(cls.close_all)
            entry = cls._open.get(real)
            if entry is None or entry[0].broker.closed:
                entry = [cls(logmq.open(real, **config), real), 0]
                cls._open[real] = entry
            entry[1] += 1
            ds: LogMQDatastore = entry[0]
            return ds

    @classmethod
    def release_later(cls, ds: LogMQDatastore) -> None:
        cls._pending.put(ds)  # SimpleQueue.put is reentrant: safe in a finalizer

    @classmethod
    def _close_pending(cls) -> None:
        while True:
            ds = cls._pending.get()
            try:
                cls.release(ds)
            except Exception:  # noqa: BLE001 - a close that fails must not stop the thread
                pass

    @classmethod
    def release(cls, ds: LogMQDatastore) -> None:
        with cls._registry_lock:
            entry = cls._open.get(ds.path)
            if entry is None or entry[0] is not ds:  # closed by close_all meanwhile
                return
            entry[1] -= 1
            if entry[1] <= 0:
                del cls._open[ds.path]
                entry[0].broker.close()

    @classmethod
    def close_all(cls, path: str | None = None) -> None:
        """Close the shared log of ``path`` (every one if None), whoever still uses it."""
        real = None if path is None else os.path.realpath(path)
        with cls._registry_lock:
            doomed = [p for p in cls._open if real is None or p == real]
            entries = [cls._open.pop(p) for p in doomed]
        for entry in entries:
            entry[0].broker.close()

    def lock(self, name: str) -> threading.Lock:
        with self._locks_lock:
            lk = self.locks.get(name)
            if lk is None:
                lk = self.locks[name] = threading.Lock()
            return lk

    def topic(self, name: str, fsync: str | None) -> str:
        """Create the single-partition topic if needed (notification ids need one partition)."""
        b = self.broker
        if name not in b.list_topics():
            try:
                b.create_topic(name, partitions=1, config={"fsync": fsync} if fsync else None)
            except TopicExistsError:
                pass
        n = b.partitions_for(name)
        if n != 1:
            raise OperationalError(f"topic {name!r} has {n} partitions; the eventsourcing "
                                   "recorders need exactly one")
        return name


def _key(originator_id: UUID | str) -> bytes:
    return str(originator_id).encode()


def _originator(key: bytes, idt: bytes | None) -> UUID | str:
    s = key.decode()
    return UUID(s) if idt == b"u" else s


class LogMQAggregateRecorder(AggregateRecorder):
    _records_tracking = False

    def __init__(self, datastore: LogMQDatastore, topic: str, fsync: str | None = None) -> None:
        self.datastore = datastore
        self.streams = datastore.streams
        self.topic = datastore.topic(topic, fsync)
        self.tracking_topic = ""  # only the process recorder has one

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any
                      ) -> Sequence[int] | None:
        self._insert(stored_events, kwargs.get("tracking"))
        return None

    def _insert(self, stored_events: Sequence[StoredEvent], tracking: Tracking | None
                ) -> list[int]:
        groups: list[tuple[bytes, list[tuple[bytes | None, list[tuple[str, bytes | None]]]],
                           Any]] = []
        versions: list[list[int]] = []
        for s in stored_events:
            hs: list[tuple[str, bytes | None]] = [(TOPIC_HEADER, s.topic.encode())]
            if isinstance(s.originator_id, UUID):
                hs.append((IDTYPE_HEADER, b"u"))
            groups.append((_key(s.originator_id), [(bytes(s.state), hs)], ANY))
            versions.append([int(s.originator_version)])
        if not self._records_tracking:
            tracking = None
        trk = None if tracking is None else (tracking.application_name,
                                             tracking.notification_id)
        if not groups and trk is None:
            return []
        try:
            if trk is None:  # concurrent inserts are group-committed by the stream layer
                res = self.streams.append_multi(self.topic, 0, groups, versions=versions)
            else:  # the position check spans two topics: one tracked insert at a time
                with self.datastore.lock(self.topic):
                    self._check_tracking(tracking)  # type: ignore[arg-type]
                    if not groups:  # a position alone goes to the tracking topic
                        self.streams.append_multi(self.tracking_topic, 0, [], tracking=trk)
                        return []
                    res = self.streams.append_multi(self.topic, 0, groups, versions=versions,
                                                    tracking=trk)
        except WrongExpectedVersionError as e:
            raise IntegrityError(str(e)) from e
        except LogMQError as e:
            raise OperationalError(str(e)) from e
        return [r.first_offset + 1 for r in res]

    def _check_tracking(self, tracking: Tracking) -> None:
        """Only the process recorder records tracking."""

    def select_events(self, originator_id: UUID | str, *, gt: int | None = None,
                      lte: int | None = None, desc: bool = False, limit: int | None = None
                      ) -> Sequence[StoredEvent]:
        evs = self.streams.read_range(self.topic, _key(originator_id),
                                      0 if gt is None else gt + 1, lte, backwards=desc,
                                      limit=limit)
        out = []
        for e in evs:
            topic = next((v for k, v in e.headers if k == TOPIC_HEADER), b"") or b""
            out.append(StoredEvent(originator_id=originator_id,
                                   originator_version=e.version,  # type: ignore[arg-type]
                                   topic=topic.decode(), state=e.value or b""))
        return out


class LogMQApplicationRecorder(LogMQAggregateRecorder, ApplicationRecorder):
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any
                      ) -> Sequence[int] | None:
        return self._insert(stored_events, kwargs.get("tracking"))

    def select_notifications(self, start: int | None, limit: int, stop: int | None = None,
                             topics: Sequence[str] = (), *, inclusive_of_start: bool = True
                             ) -> Sequence[Notification]:
        if start is None:
            start, inclusive_of_start = 1, True
        if not inclusive_of_start:
            start += 1
        start = max(start, 1)
        wanted = {t.encode() for t in topics}
        plog = self.datastore.broker.partition_log(self.topic, 0)
        pos = max(start - 1, plog.log_start_offset)
        out: list[Notification] = []
        while len(out) < limit and pos < plog.next_offset:
            if stop is not None and pos + 1 > stop:
                break
            data = plog.read_bytes(pos, _READ_BYTES)
            if not data:
                break
            at = 0
            while len(data) - at >= LOG_OVERHEAD and len(out) < limit:
                h = parse_header(data, at)
                if at + h.size > len(data):
                    break
                _, recs = decode_batch(data, at, validate=False)
                for off, _ts, key, value, headers in recs:
                    if off < pos or key is None:
                        continue
                    if stop is not None and off + 1 > stop:
                        return out
                    hd = dict(headers)
                    topic = hd.get(TOPIC_HEADER)
                    if topic is None or (wanted and topic not in wanted):
                        continue
                    ver = hd.get("logmq.version")
                    out.append(Notification(
                        id=off + 1, originator_id=_originator(key, hd.get(IDTYPE_HEADER)),
                        originator_version=int(ver) if ver else 0, topic=topic.decode(),
                        state=value or b""))
                    if len(out) >= limit:
                        return out
                pos = h.next_offset
                at += h.size
        return out

    def max_notification_id(self) -> int | None:
        end = self.datastore.broker.end_offset((self.topic, 0))
        return end or None

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()
                  ) -> Subscription[ApplicationRecorder]:
        return LogMQSubscription(self, gt=gt, topics=topics)


class LogMQSubscription(ListenNotifySubscription[LogMQApplicationRecorder]):
    """Pulls notifications after every append to the events topic (append notifications)."""

    def __init__(self, recorder: LogMQApplicationRecorder, gt: int | None = None,
                 topics: Sequence[str] = ()) -> None:
        self._tp = (recorder.topic, 0)
        self._broker = recorder.datastore.broker
        # registered before the pull thread starts, so no append can slip between
        self._broker.add_waiter(self._tp, self._wakeup)
        super().__init__(recorder=recorder, gt=gt, topics=topics)

    def _wakeup(self) -> None:
        ev = getattr(self, "_has_been_notified", None)
        if ev is not None:
            ev.set()

    def stop(self) -> None:
        super().stop()
        self._broker.remove_waiter(self._tp, self._wakeup)


class LogMQTrackingRecorder(TrackingRecorder):
    def __init__(self, datastore: LogMQDatastore, topic: str, fsync: str | None = None) -> None:
        self.datastore = datastore
        self.streams = datastore.streams
        self.tracking_topic = datastore.topic(topic, fsync)

    def insert_tracking(self, tracking: Tracking) -> None:
        with self.datastore.lock(self.tracking_topic):
            self._check_tracking(tracking)
            try:
                self.streams.append_multi(self.tracking_topic, 0, [], tracking=(
                    tracking.application_name, tracking.notification_id))
            except WrongExpectedVersionError as e:
                raise IntegrityError(str(e)) from e

    def _check_tracking(self, tracking: Tracking) -> None:
        cur = self.max_tracking_id(tracking.application_name)
        if cur is not None and cur >= tracking.notification_id:
            raise IntegrityError(f"tracking id {tracking.notification_id} of "
                                 f"{tracking.application_name!r} is not above {cur}")

    def max_tracking_id(self, application_name: str) -> int | None:
        return self.streams.tracking(self.tracking_topic, application_name)


class LogMQProcessRecorder(LogMQApplicationRecorder, LogMQTrackingRecorder, ProcessRecorder):
    _records_tracking = True

    def __init__(self, datastore: LogMQDatastore, topic: str, tracking_topic: str,
                 fsync: str | None = None) -> None:
        LogMQApplicationRecorder.__init__(self, datastore, topic, fsync)
        self.tracking_topic = datastore.topic(tracking_topic, fsync)

    def insert_tracking(self, tracking: Tracking) -> None:
        self._insert([], tracking)

    def _check_tracking(self, tracking: Tracking) -> None:
        LogMQTrackingRecorder._check_tracking(self, tracking)

    def max_tracking_id(self, application_name: str) -> int | None:
        a = self.streams.tracking(self.topic, application_name)
        b = self.streams.tracking(self.tracking_topic, application_name)
        if a is None:
            return b
        return a if b is None else max(a, b)


class LogMQFactory(InfrastructureFactory[LogMQTrackingRecorder]):
    LOGMQ_DATA = "LOGMQ_DATA"
    LOGMQ_FSYNC = "LOGMQ_FSYNC"
    LOGMQ_TOPIC_PREFIX = "LOGMQ_TOPIC_PREFIX"

    aggregate_recorder_class = LogMQAggregateRecorder
    application_recorder_class = LogMQApplicationRecorder
    tracking_recorder_class = LogMQTrackingRecorder
    process_recorder_class = LogMQProcessRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        path = self.env.get(self.LOGMQ_DATA)
        if not path:
            raise OSError("logmq data directory not found in environment with keys: "
                          f"{', '.join(self.env.create_keys(self.LOGMQ_DATA))}")
        self.fsync = self.env.get(self.LOGMQ_FSYNC) or "always"
        if self.fsync not in ("always", "interval", "never"):
            raise OSError(f"{self.LOGMQ_FSYNC} must be always, interval or never, "
                          f"got {self.fsync!r}")
        prefix = self.env.get(self.LOGMQ_TOPIC_PREFIX) or self.env.name or "eventsourcing"
        self.prefix = _SAFE.sub("_", prefix)[:200]
        self.datastore = LogMQDatastore.acquire(path)
        self._finalizer = weakref.finalize(self, LogMQDatastore.release_later, self.datastore)

    def _topic(self, suffix: str) -> str:
        return f"{self.prefix}.{_SAFE.sub('_', suffix)}"

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return self.aggregate_recorder_class(self.datastore, self._topic(purpose), self.fsync)

    def application_recorder(self) -> ApplicationRecorder:
        topic = self.env.get(self.APPLICATION_RECORDER_TOPIC)
        cls = resolve_topic(topic) if topic else self.application_recorder_class
        assert issubclass(cls, LogMQApplicationRecorder)
        return cls(self.datastore, self._topic("events"), self.fsync)

    def tracking_recorder(self, tracking_recorder_class: type[LogMQTrackingRecorder] | None
                          = None) -> LogMQTrackingRecorder:
        if tracking_recorder_class is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            tracking_recorder_class = (resolve_topic(topic) if topic
                                       else self.tracking_recorder_class)
        assert tracking_recorder_class is not None
        assert issubclass(tracking_recorder_class, LogMQTrackingRecorder)
        return tracking_recorder_class(self.datastore, self._topic("tracking"), self.fsync)

    def process_recorder(self) -> ProcessRecorder:
        topic = self.env.get(self.PROCESS_RECORDER_TOPIC)
        cls = resolve_topic(topic) if topic else self.process_recorder_class
        assert issubclass(cls, LogMQProcessRecorder)
        return cls(self.datastore, self._topic("events"), self._topic("tracking"), self.fsync)

    def close(self) -> None:
        if self._finalizer.detach() is not None:
            LogMQDatastore.release(self.datastore)
        super().close()


Factory = LogMQFactory
