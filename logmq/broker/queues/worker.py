"""Worker runners: call a handler for every record of a queue, with the usual safety nets.

``Worker(log, topic, handler, group="workers", concurrency=4).start()`` runs ``concurrency``
threads, each a member of the share group. A handler that returns acknowledges the record
(acks are batched per receive, one LMDB commit); one that raises nacks it with the group's
exponential backoff; one that settled the record itself (``record.ack()``, ``reject()``,
``reply()``...) is left alone.

* Circuit breaker: after ``failure_threshold`` consecutive failures the worker stops
  acquiring for ``cooldown_s`` (records it holds but has not started go back unharmed), then
  lets one trial record through: success closes the breaker, failure opens it again. That
  keeps a broken dependency from burning every record's attempts.
* Rate limit: ``rate_limit`` records/s per worker (a token bucket, bursts of ``burst``).
* Graceful shutdown: ``stop()`` lets running handlers finish, stops acquiring, and releases
  received records no handler started (not counted as attempts).

:class:`AsyncWorker` is the same for ``async def`` handlers on an asyncio loop: one queue
member, up to ``concurrency`` handlers running as tasks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from logmq.broker.ratelimit import TokenBucket
from logmq.errors import BrokerClosedError, ConfigError, RecordStateError

if TYPE_CHECKING:
    from logmq.broker.queues.queue import QueueConsumer, QueueRecord


class QueueSource(Protocol):
    """Anything that hands out share-group members (``logmq.Broker`` does)."""

    def queue(self, topic: str, group: str = ..., **config: Any) -> QueueConsumer: ...

__all__ = ["Worker", "AsyncWorker", "CircuitBreaker", "TokenBucket"]

_log = logging.getLogger("logmq.worker")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    """Consecutive-failure breaker shared by a worker's threads.

    ``wait_time()`` says how long a thread must wait before acquiring (0: go ahead). In the
    half-open state exactly one caller gets a trial; the others wait for its outcome.
    """

    def __init__(self, threshold: int, cooldown_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if threshold < 1 or cooldown_s < 0:
            raise ConfigError("failure_threshold must be >= 1 and cooldown_s >= 0")
        self.threshold = threshold
        self.cooldown = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self.state = CLOSED
        self.failures = 0
        self.opened_at: float | None = None
        self.times_opened = 0
        self._trial = False

    def wait_time(self) -> tuple[float, bool]:
        """(seconds to wait, whether the caller is the half-open trial)."""
        with self._lock:
            if self.state == CLOSED:
                return 0.0, False
            now = self._clock()
            if self.state == OPEN:
                assert self.opened_at is not None
                left = self.opened_at + self.cooldown - now
                if left > 0:
                    return left, False
                self.state = HALF_OPEN
                self._trial = False
            if not self._trial:
                self._trial = True
                return 0.0, True
            return max(self.cooldown, 0.05), False  # woken early by the trial's outcome

    def cancel_trial(self) -> None:
        """The half-open trial found nothing to try: let the next caller have it."""
        with self._lock:
            self._trial = False

    def success(self) -> bool:
        """Returns True when this closed an open/half-open breaker."""
        with self._lock:
            self.failures = 0
            if self.state != CLOSED:
                self.state = CLOSED
                self._trial = False
                return True
            return False

    def failure(self) -> bool:
        """Returns True when this opened the breaker."""
        with self._lock:
            self.failures += 1
            if self.state == HALF_OPEN or (self.state == CLOSED
                                           and self.failures >= self.threshold):
                self.state = OPEN
                self.opened_at = self._clock()
                self.times_opened += 1
                self._trial = False
                return True
            return False

    @property
    def is_closed(self) -> bool:
        return self.state == CLOSED


Handler = Callable[["QueueRecord"], Any]


class Worker:
    """Runs ``handler`` on records of ``topic`` in ``concurrency`` threads (share group).

    Options: ``group`` (default "workers"), ``concurrency`` (threads, default 1),
    ``prefetch`` (records one thread receives at a time, default 10; acks are batched per
    prefetch), ``rate_limit`` (records/s for the whole worker, None: unlimited) and
    ``burst``, ``failure_threshold`` (consecutive failures that open the circuit breaker,
    default 5) and ``cooldown_s`` (default 30), ``poll_timeout`` (s, how long a receive
    waits before re-checking, default 1), ``on_error(record, exc)`` (called after a failed
    handler). Other keywords go to :meth:`logmq.Broker.queue` (``lock_ms``, ``filter``,
    ``max_attempts``, backoff...).
    """

    def __init__(self, log: QueueSource, topic: str, handler: Handler, *, group: str = "workers",
                 concurrency: int = 1, prefetch: int = 10, rate_limit: float | None = None,
                 burst: float | None = None, failure_threshold: int = 5,
                 cooldown_s: float = 30.0, poll_timeout: float = 1.0,
                 on_error: Callable[[QueueRecord, BaseException], Any] | None = None,
                 name: str | None = None, **queue_config: Any) -> None:
        if concurrency < 1 or prefetch < 1:
            raise ConfigError("concurrency and prefetch must be >= 1")
        self.log = log
        self.topic = topic
        self.handler = handler
        self.group = group
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.poll_timeout = poll_timeout
        self.on_error = on_error
        self.name = name or f"logmq-worker-{topic}"
        self.queue_config = queue_config
        self.breaker = CircuitBreaker(failure_threshold, cooldown_s)
        self.bucket = (TokenBucket(rate_limit, burst if burst is not None else 1, name="rate_limit")
                       if rate_limit is not None else None)
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._consumers: list[QueueConsumer] = []
        self._lock = threading.Lock()
        self.processed = 0
        self.failed = 0
        self.released = 0
        self.errors: list[BaseException] = []  # what stopped a thread (not handler errors)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Worker:
        if self._threads:
            raise ConfigError("worker already started")
        for i in range(self.concurrency):
            q = self.log.queue(self.topic, self.group, **self.queue_config)
            self._consumers.append(q)
            t = threading.Thread(target=self._run, args=(q,), name=f"{self.name}-{i}",
                                 daemon=True)
            self._threads.append(t)
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Graceful: finish running handlers, acquire nothing more, release the rest."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        for q in self._consumers:
            try:
                q.wakeup()
            except BrokerClosedError:
                pass
        self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def run(self) -> None:
        """Start and block until :meth:`stop` is called (from another thread or a signal)."""
        self.start()
        self.join()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the loop
    def _pause(self, seconds: float) -> None:
        """Wait (for the breaker or the rate limit) unless stopped: a timer, not a poll."""
        with self._wake:
            if not self._stop.is_set():
                self._wake.wait(seconds)

    def _run(self, q: QueueConsumer) -> None:
        try:
            while not self._stop.is_set():
                wait, trial = self.breaker.wait_time()
                if wait > 0:
                    self._pause(wait)
                    continue
                want = 1 if trial else self.prefetch
                if self.bucket is not None:
                    want, wait = self.bucket.take(want)
                    if want == 0:
                        self._pause(wait)
                        continue
                recs = q.receive(want, timeout=self.poll_timeout)
                if recs:
                    self._process(q, recs, trial)
                elif trial:
                    self.breaker.cancel_trial()
        except BrokerClosedError:
            pass
        except BaseException as e:  # reported, and the thread ends
            self.errors.append(e)
        finally:
            try:
                q.close()
            except BaseException:
                pass

    def _process(self, q: QueueConsumer, recs: list[QueueRecord], trial: bool) -> None:
        done: list[QueueRecord] = []
        i = 0
        try:
            for i, rec in enumerate(recs):  # noqa: B007 - i is used after the loop
                if self._stop.is_set() or not (trial or self.breaker.is_closed):
                    break
                try:
                    self.handler(rec)
                except Exception as e:
                    self._failed(q, rec, e)
                else:
                    if rec.settled is None:
                        done.append(rec)
                    if self.breaker.success():
                        with self._wake:
                            self._wake.notify_all()
                    with self._lock:
                        self.processed += 1
            else:
                i = len(recs)
        finally:
            if done:
                try:
                    q.ack_many(done)
                except RecordStateError:
                    pass  # locks expired meanwhile: those records will be redelivered
            rest = [r for r in recs[i:] if r.settled is None]
            if rest:
                with self._lock:
                    self.released += len(rest)
                q.release(rest, count_attempt=False)

    def _failed(self, q: QueueConsumer, rec: QueueRecord, e: BaseException) -> None:
        _log_failure(self.group, rec, e)
        with self._lock:
            self.failed += 1
        if rec.settled is None:
            try:
                rec.nack(error=f"{type(e).__name__}: {e}")
            except RecordStateError:
                pass
        self.breaker.failure()
        if self.on_error is not None:
            try:
                self.on_error(rec, e)
            except Exception:
                pass


def _log_failure(group: str, rec: QueueRecord, e: BaseException) -> None:
    _log.error("handler failed on %s-%d@%d (group %s, delivery %d): %s: %s", rec.topic,
               rec.partition, rec.offset, group, rec.delivery_count, type(e).__name__, e,
               exc_info=e, extra={"topic": rec.topic, "partition": rec.partition,
                                  "offset": rec.offset, "group": group})


AsyncHandler = Callable[["QueueRecord"], Awaitable[Any]]


class AsyncWorker:
    """:class:`Worker` for ``async def`` handlers: ``await AsyncWorker(...).run()``.

    One queue member feeds up to ``concurrency`` concurrent handler tasks; receiving and
    settling (blocking LMDB commits) run in threads so the loop never blocks. ``stop()``
    (a coroutine) is graceful like :meth:`Worker.stop`. Same options as :class:`Worker`.
    """

    def __init__(self, log: QueueSource, topic: str, handler: AsyncHandler, *,
                 group: str = "workers", concurrency: int = 10, prefetch: int | None = None,
                 rate_limit: float | None = None, burst: float | None = None,
                 failure_threshold: int = 5, cooldown_s: float = 30.0,
                 poll_timeout: float = 1.0, **queue_config: Any) -> None:
        if concurrency < 1:
            raise ConfigError("concurrency must be >= 1")
        self.log = log
        self.topic = topic
        self.handler = handler
        self.group = group
        self.concurrency = concurrency
        self.prefetch = prefetch or concurrency
        self.poll_timeout = poll_timeout
        self.queue_config = queue_config
        self.breaker = CircuitBreaker(failure_threshold, cooldown_s)
        self.bucket = (TokenBucket(rate_limit, burst if burst is not None else 1, name="rate_limit")
                       if rate_limit is not None else None)
        self.processed = 0
        self.failed = 0
        self.released = 0
        self._q: QueueConsumer | None = None
        self._stopping = False
        self._stop_event: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = 0
        self._slots: asyncio.Condition | None = None
        self._main: asyncio.Task[None] | None = None

    async def _pause(self, seconds: float) -> None:
        assert self._stop_event is not None
        try:
            await asyncio.wait_for(self._stop_event.wait(), seconds)
        except TimeoutError:
            pass

    async def run(self) -> None:
        """Process records until :meth:`stop`."""
        self._stop_event = asyncio.Event()
        self._slots = asyncio.Condition()
        self._q = q = self.log.queue(self.topic, self.group, **self.queue_config)
        try:
            while not self._stopping:
                wait, trial = self.breaker.wait_time()
                if wait > 0:
                    await self._pause(wait)
                    continue
                async with self._slots:
                    await self._slots.wait_for(
                        lambda: self._running < self.concurrency or self._stopping)
                if self._stopping:
                    break
                want = 1 if trial else min(self.prefetch, self.concurrency - self._running)
                if self.bucket is not None:
                    want, wait = self.bucket.take(want)
                    if want == 0:
                        await self._pause(wait)
                        continue
                try:
                    recs = await asyncio.to_thread(q.receive, want, self.poll_timeout)
                except BrokerClosedError:
                    break
                if trial and not recs:
                    self.breaker.cancel_trial()
                for i, rec in enumerate(recs):
                    if self._stopping or not (trial or self.breaker.is_closed):
                        rest = recs[i:]
                        self.released += len(rest)
                        await asyncio.to_thread(q.release, rest, False)
                        break
                    self._running += 1
                    task = asyncio.create_task(self._handle(rec))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
        finally:
            await asyncio.to_thread(q.close)

    async def _handle(self, rec: QueueRecord) -> None:
        try:
            await self.handler(rec)
        except Exception as e:
            _log_failure(self.group, rec, e)
            self.failed += 1
            if rec.settled is None:
                try:
                    await asyncio.to_thread(rec.nack, None, f"{type(e).__name__}: {e}")
                except RecordStateError:
                    pass
            self.breaker.failure()
        else:
            self.processed += 1
            self.breaker.success()
            if rec.settled is None:
                try:
                    await asyncio.to_thread(rec.ack)
                except RecordStateError:
                    pass
        finally:
            self._running -= 1
            slots = self._slots
            assert slots is not None  # set by start() before any record runs
            async with slots:
                slots.notify_all()

    def start(self) -> asyncio.Task[None]:
        """Run in a task on the current loop (``await worker.stop()`` to end it)."""
        self._main = asyncio.get_running_loop().create_task(self.run())
        return self._main

    async def stop(self) -> None:
        """Graceful: running handlers finish, nothing more is acquired, the rest is released."""
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        if self._slots is not None:
            async with self._slots:
                self._slots.notify_all()
        if self._q is not None:
            try:
                self._q.wakeup()
            except BrokerClosedError:
                pass
        if self._main is not None:
            await self._main

    async def __aenter__(self) -> AsyncWorker:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

