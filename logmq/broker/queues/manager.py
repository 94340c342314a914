"""The per-broker queue manager: share groups, dedup, backpressure and request-reply.

One :class:`QueueManager` per open data directory (``Broker.queues``, wired by the facade). It
owns the LMDB-backed state store and its journal, the share groups in memory, the message-id
dedup index the producer consults, the queue-depth check behind ``max.queue.depth``, and the
reply router behind ``log.request``. A small committer thread commits journal entries nobody
waits for (window bookkeeping, dedup entries), so they do not wait for the next ack.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from logmq.broker.queues import options as O
from logmq.broker.queues.group import GroupConfig, ShareGroup
from logmq.broker.queues.state import DedupIndex, ShareStateStore
from logmq.clock import SYSTEM_CLOCK, Clock
from logmq.errors import (
    ConfigError,
    KafkaTimeoutError,
    QueueFullError,
    TopicExistsError,
)
from logmq.types import Header, Record, RecordMetadata

if TYPE_CHECKING:
    from logmq.broker.producer import Producer, RecordFuture
    from logmq.broker.queues.queue import QueueConsumer
    from logmq.storage.interface import LogStore

__all__ = ["QueueManager", "queue_manager", "REPLY_TOPIC"]

#: where ``log.request`` asks for replies (one partition, one hour of retention)
REPLY_TOPIC = "logmq.replies"


class _HasQueues(Protocol):
    @property
    def queues(self) -> QueueManager: ...


def queue_manager(broker: _HasQueues) -> QueueManager:
    """The data directory's queue manager (``Broker.queues``; kept for old callers)."""
    return broker.queues


class _Reservation:
    __slots__ = ("ready", "future", "error", "seq")

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.future: RecordFuture | None = None
        self.error: BaseException | None = None
        self.seq: int | None = None  # journal sequence of the index entry, once written


class ReplyRouter:
    """Hands replies on the reply topic to the requests waiting for them (no extra thread).

    Requesters wait on one condition; appends to the reply topic wake them, and whoever holds
    the lock reads the new replies and files them by correlation id.
    """

    def __init__(self, broker: LogStore, topic: str = REPLY_TOPIC) -> None:
        self.broker = broker
        self.topic = topic
        try:
            broker.create_topic(topic, partitions=1, config={"retention.ms": 3_600_000})
        except TopicExistsError:
            pass
        self.cond = threading.Condition()
        self.pos = broker.end_offset((topic, 0))
        self.waiting: dict[bytes, Record | None] = {}
        broker.add_waiter((topic, 0), self._notify)

    def _notify(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def register(self, corr: bytes) -> None:
        with self.cond:
            self.waiting[corr] = None

    def _read(self) -> None:
        plog = self.broker.partition_log(self.topic, 0)
        from logmq.codec.records import iter_records

        while self.pos < plog.next_offset:
            self.pos = max(self.pos, plog.log_start_offset)
            data = plog.read_bytes(self.pos, 1 << 20)
            if not data:
                break
            last = self.pos
            for off, ts, k, v, h in iter_records(data, min_offset=self.pos):
                corr = O.header(h, O.CORRELATION_ID)
                if corr is not None and corr in self.waiting:
                    self.waiting[corr] = Record(self.topic, 0, off, ts, k, v, h)
                last = off + 1
            if last == self.pos:
                break
            self.pos = last

    def wait(self, corr: bytes, timeout: float) -> Record:
        deadline = time.monotonic() + timeout
        with self.cond:
            try:
                while True:
                    self._read()
                    got = self.waiting.get(corr)
                    if got is not None:
                        return got
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise KafkaTimeoutError(f"no reply within {timeout} s")
                    self.cond.wait(left)
            finally:
                self.waiting.pop(corr, None)


class QueueManager:
    """Queue features of one broker; get it with :func:`queue_manager`."""

    def __init__(self, broker: LogStore, *,
                 producer_factory: Callable[..., Producer] | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.broker = broker
        self.clock = clock
        self._producer_factory = producer_factory
        self.store = ShareStateStore(broker.meta.env)
        self.journal = self.store.journal
        self.dedup = DedupIndex(self.store, time_fn=clock.time)
        self._lock = threading.Lock()
        self._groups: dict[tuple[str, str], ShareGroup] = {}
        self._topic_groups: dict[str, list[str]] = {}
        self._room = threading.Condition()
        self._room_waiters = 0
        self._replies: ReplyRouter | None = None
        self._producer: Producer | None = None
        self._closed = False
        self._commit_wake = threading.Event()
        self._committer = threading.Thread(target=self._commit_loop, name="logmq-queue-commit",
                                           daemon=True)
        self._committer.start()

    # ------------------------------------------------------------------ groups
    def share_group(self, topic: str, group: str, config: GroupConfig | None = None
                    ) -> ShareGroup:
        with self._lock:
            sg = self._groups.get((group, topic))
            if sg is None:
                self.broker.ensure_topic(topic)
                sg = ShareGroup(self, topic, group, config)
                self._groups[(group, topic)] = sg
                self._topic_groups.pop(topic, None)
                return sg
        sg.configure(config)
        return sg

    def loaded_group(self, topic: str, group: str) -> ShareGroup | None:
        """The group if it is open in memory (members can only be in an open one)."""
        with self._lock:
            return self._groups.get((group, topic))

    def open_group(self, topic: str, group: str, default: GroupConfig) -> ShareGroup:
        """The group, created with ``default`` if new; an existing group nobody configured
        adopts it, one a member configured keeps its settings (no error either way)."""
        with self._lock:
            sg = self._groups.get((group, topic))
        if sg is None:
            return self.share_group(topic, group, default)
        if not sg.configured:
            try:
                sg.configure(default)
            except ConfigError:  # a member configured it meanwhile: theirs stand
                pass
        return sg

    def consumer(self, topic: str, group: str = "workers", **config: Any) -> QueueConsumer:
        from logmq.broker.queues.queue import QueueConsumer

        return QueueConsumer(self, topic, group, **config)

    def groups_of(self, topic: str) -> list[str]:
        names = self._topic_groups.get(topic)
        if names is None:
            names = self._topic_groups[topic] = self.store.groups_of(topic)
        return names

    # ------------------------------------------------------------------ backpressure
    def depth(self, topic: str) -> int:
        """Unacknowledged records of the topic's most loaded share group.

        With no share group on the topic yet, every record in the log counts: nobody has
        consumed any of it.
        """
        names = self.groups_of(topic)
        if not names:
            total = 0
            for p in range(self.broker.partitions_for(topic)):
                s, e = self.broker.offsets((topic, p))
                total += e - s
            return total
        return max(self.share_group(topic, g).depth_fast() for g in names)

    def wait_for_room(self, topic: str, limit: int, timeout: float) -> None:
        """Block while ``topic`` holds ``limit`` unacked records; QueueFullError after timeout."""
        if self.depth(topic) < limit:
            return
        deadline = time.monotonic() + timeout
        with self._room:
            self._room_waiters += 1
            try:
                while True:
                    depth = self.depth(topic)
                    if depth < limit:
                        return
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise QueueFullError(
                            f"queue {topic!r} holds {depth} unacknowledged records "
                            f"(max.queue.depth={limit}) for longer than {timeout:.3g} s")
                    self._room.wait(left)
            finally:
                self._room_waiters -= 1

    def room_changed(self) -> None:
        if self._room_waiters:
            with self._room:
                self._room.notify_all()

    # ------------------------------------------------------------------ dedup
    def dedup_send(self, topic: str, msg_id: bytes, window_ms: int,
                   send: Callable[[], RecordFuture]) -> RecordFuture:
        """Send unless ``msg_id`` was sent to ``topic`` within the window; else the first's."""
        from logmq.broker.producer import completed_future

        key = DedupIndex.key(topic, msg_id)
        d = self.dedup
        with d._lock:
            r = d.pending.get(key)
            mine = r is None
            if mine:
                found = d.lookup(key, int(self.clock.time() * 1000))
                if found is not None:
                    p, off, ts = found
                    return completed_future(RecordMetadata(topic, p, off, ts))
                r = d.pending[key] = _Reservation()
        assert isinstance(r, _Reservation)
        if not mine:
            r.ready.wait()
            if r.error is not None:
                return self.dedup_send(topic, msg_id, window_ms, send)  # the first one failed
            assert r.future is not None
            return r.future
        expires = int(self.clock.time() * 1000) + window_ms
        try:
            fut = send()
        except BaseException as e:
            with d._lock:
                d.pending.pop(key, None)
            r.error = e
            r.ready.set()
            raise
        r.future = fut
        r.ready.set()

        def done(f: RecordFuture) -> None:
            if f.exception() is not None:
                with d._lock:
                    d.pending.pop(key, None)
                return
            md = f.result()
            r.seq = d.record(key, expires, md.partition, md.offset, md.timestamp)
            self.lazy_commit()

        fut.add_done_callback(done)
        return fut

    def _drop_committed_reservations(self) -> None:
        d = self.dedup
        committed = self.journal.committed
        with d._lock:
            gone = [k for k, r in d.pending.items()
                    if isinstance(r, _Reservation) and r.seq is not None and r.seq <= committed]
            for k in gone:
                del d.pending[k]

    # ------------------------------------------------------------------ commits
    def lazy_commit(self) -> None:
        """Ask the committer thread to commit what is pending (nobody waits for it)."""
        self._commit_wake.set()

    def _commit_loop(self) -> None:
        while True:
            self._commit_wake.wait()
            self._commit_wake.clear()
            if self._closed:
                return
            try:
                self.journal.flush()
            except Exception:  # the next waiter retries and sees the error itself
                continue
            if self.dedup.pending:
                self._drop_committed_reservations()

    # ------------------------------------------------------------------ request-reply
    def _internal_producer(self) -> Producer:
        with self._lock:
            if self._producer is None:
                if self._producer_factory is None:
                    raise ConfigError("this queue manager was built without a producer factory")
                self._producer = self._producer_factory(linger_ms=0)
            return self._producer

    def request(self, topic: str, value: Any, *, key: Any = None,
                headers: Iterable[Header] | None = None, timeout: float = 30.0,
                partition: int | None = None) -> Record:
        """Send a request with reply-to and correlation-id headers; return the reply record."""
        with self._lock:
            if self._replies is None:
                self._replies = ReplyRouter(self.broker)
            router = self._replies
        corr = uuid.uuid4().hex.encode()
        router.register(corr)
        hdrs = list(headers or []) + [(O.REPLY_TO, router.topic.encode()),
                                      (O.CORRELATION_ID, corr)]
        try:
            self._internal_producer().send(topic, value, key=key, headers=hdrs,
                                           partition=partition).result(timeout)
        except BaseException:
            with router.cond:
                router.waiting.pop(corr, None)
            raise
        return router.wait(corr, timeout)

    def reply(self, request_headers: Iterable[Header] | None, value: Any, *, key: Any = None,
              headers: Iterable[Header] | None = None) -> RecordMetadata:
        """Send ``value`` to a request's reply-to topic with its correlation id."""
        req = list(request_headers or ())
        reply_to = O.header(req, O.REPLY_TO)
        corr = O.header(req, O.CORRELATION_ID)
        if not reply_to or corr is None:
            raise ConfigError("this record is not a request (no reply-to / correlation-id header)")
        hdrs = list(headers or []) + [(O.CORRELATION_ID, corr)]
        return self._internal_producer().send(reply_to.decode(), value, key=key,
                                              headers=hdrs).result()

    # ------------------------------------------------------------------ lifecycle
    def on_topic_deleted(self, topic: str) -> None:
        with self._lock:
            for (g, t), sg in list(self._groups.items()):
                if t == topic:
                    sg.close()
                    del self._groups[(g, t)]
            self._topic_groups.pop(topic, None)
            if self._replies is not None and self._replies.topic == topic:
                self._replies = None
        self.journal.flush()
        self.store.unregister_topic(topic)
        self.dedup.delete_topic(topic)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            groups = list(self._groups.values())
            producer = self._producer
        if producer is not None:
            producer.close()
        for sg in groups:
            sg.close()
        self._commit_wake.set()
        self._committer.join()
        self.journal.flush()
