"""``logmq serve``'s process: open the data directory, serve the Kafka protocol (and the
queue and HTTP listeners when asked) until SIGTERM/SIGINT, then close everything cleanly.

Apart from :mod:`logmq.server.app` so that module is about connections and requests only.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from logmq.server import share_state
from logmq.server.app import KafkaServer
from logmq.server.limits import ServerLimits

if TYPE_CHECKING:
    from logmq.config import BrokerConfig
    from logmq.server.listeners import Listener

__all__ = ["run_server"]
log = logging.getLogger("logmq.server")
#: every thread's stack goes to the log if the process is still alive this long after the
#: shutdown deadline (a close that hangs is a bug: this says where)
_STACKS_AFTER_S = 30.0


def run_server(
    data: str,
    host: str = "127.0.0.1",
    port: int = 9092,
    *,
    max_request_size: int | None = None,
    auto_create_topics: bool = True,
    limits: ServerLimits | Mapping[str, int] | None = None,
    ready_file: str | None = None,
    queue_listen: tuple[str, int] | None = None,
    queue_authkey: bytes | None = None,
    advertised_host: str | None = None,
    advertised_port: int | None = None,
    http_listen: tuple[str, int] | None = None,
    config: BrokerConfig | None = None,
    listeners: Sequence[Listener] | None = None,
    **broker_config: Any,
) -> None:
    """Open ``data``, serve until SIGTERM/SIGINT, then shut down cleanly (blocking).

    With ``queue_listen``, worker processes can also join share groups of this data directory
    through :class:`~logmq.broker.queues.remote.QueueServer` (the Kafka protocol has no
    classic-version share-group APIs): the process that serves Kafka clients owns the
    directory, so it is the one place queue members can reach. ``limits`` is a
    :class:`~logmq.server.limits.ServerLimits` or a mapping of its field names to values.
    With ``config``, the listeners are its ``listen``/``advertise``/``ssl_*`` settings, refused
    before anything is opened when they would expose data (logmq.server.listeners).
    """
    import logmq

    if not isinstance(limits, ServerLimits):
        limits = ServerLimits().replace(**dict(limits or {}))
    if config is not None:  # the CLI resolved file/env/options already (logmq.config)
        advertised_host = advertised_host or config.advertised_host
        max_request_size = config.max_request_size
        auto_create_topics = config.auto_create_topics
        if listeners is None:
            from logmq.server.listeners import listeners_from_config

            listeners = listeners_from_config(config, advertised_host=advertised_host,
                                              advertised_port=advertised_port)

    ops = None
    if http_listen is not None:  # up first, so /readyz says 503 while recovery runs
        from logmq.ops.http import OpsHttpServer

        ops = OpsHttpServer(http_listen, data).start()
    try:
        if config is not None:
            broker = logmq.open(data, config=config)
        else:
            broker = logmq.open(data, auto_create_topics=auto_create_topics, **broker_config)
    except BaseException:
        if ops is not None:
            ops.close()
        raise
    if ops is not None:
        ops.attach_broker(broker)
    queue_server = None
    if queue_listen is not None:
        from logmq.broker.queues.remote import QueueServer

        try:
            queue_server = QueueServer(broker, queue_listen, authkey=queue_authkey).start()
        except BaseException:
            broker.close()
            raise
        qh, qp = queue_server.address
        log.info("queue members (RemoteQueue) at %s:%d", qh, qp)

    timeout = limits.shutdown_timeout_ms / 1000
    stopping = _Shutdown(timeout)
    if threading.current_thread() is threading.main_thread():
        # SIGUSR1: every thread's stack to the log (a frozen server can say where it hangs)
        faulthandler.register(signal.SIGUSR1, all_threads=True)

    async def main() -> None:
        server = KafkaServer(broker, host, port, max_request_size=max_request_size,
                             auto_create_topics=auto_create_topics, limits=limits,
                             advertised_host=advertised_host, advertised_port=advertised_port,
                             observer=ops.stats if ops is not None else None,
                             listeners=listeners)
        h, p = await server.start()
        if ops is not None:
            ops.serving(server, asyncio.get_running_loop())
        if ready_file:
            tmp = ready_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(f"{h}:{p}\n")
            os.replace(tmp, ready_file)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.signalled, sig, stop)
        await stop.wait()
        log.info("shutting down (clients get at most %.1f s)", timeout)
        if ops is not None:
            ops.stopping()
        await server.stop(grace=max(0.0, stopping.left()))

    try:
        _run_bounded(main, stopping)
    finally:
        stopping.hold_signals()  # a second signal while the data closes: exit at once
        if queue_server is not None:
            queue_server.close()  # members leave first: what they held is released, durably
        broker.close()
        if ops is not None:
            ops.close()
        log.info("data directory closed cleanly (%.2f s after the signal)", stopping.elapsed())
        stopping.cancel_watchdog()
    _abandon_busy_threads(stopping)


class _Shutdown:
    """The one deadline of a shutdown, from the first SIGTERM/SIGINT.

    A second signal exits at once (the data directory is crash-safe: the next open recovers).
    If the process is still alive long after the deadline, every thread's stack goes to the
    log, so a stuck close can be diagnosed.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.at: float | None = None

    def signalled(self, sig: int, stop: asyncio.Event) -> None:
        if self.at is None:
            self.at = time.monotonic()
            faulthandler.dump_traceback_later(self.timeout + _STACKS_AFTER_S)
            stop.set()
        else:
            self.force(sig)

    def force(self, sig: int, _frame: Any = None) -> None:
        log.warning("second %s during shutdown: exiting now, the data directory is not "
                    "closed (the next open recovers it)", signal.Signals(sig).name)
        logging.shutdown()
        os._exit(1)

    def hold_signals(self) -> None:
        if self.at is None:  # the loop ended for another reason (an error): no deadline
            self.at = time.monotonic()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self.force)

    def left(self) -> float:
        return self.timeout - self.elapsed()

    def elapsed(self) -> float:
        return 0.0 if self.at is None else time.monotonic() - self.at

    @staticmethod
    def cancel_watchdog() -> None:
        faulthandler.cancel_dump_traceback_later()


def _run_bounded(main: Callable[[], Coroutine[Any, Any, None]], stopping: _Shutdown) -> None:
    """``asyncio.run(main())`` without its two unbounded waits.

    asyncio.run waits for every task it cancels and for every job of the default executor
    (``to_thread``). A job cannot be cancelled: one Metadata request auto-creating 10,000
    topics kept a worker thread, and so SIGTERM, busy 54 s. Here leftover tasks get what is
    left of the shutdown deadline, and running jobs are abandoned: the broker's close makes
    them fail at their next step (BrokerClosedError) without waiting for them.
    """
    loop = asyncio.new_event_loop()
    workers = ThreadPoolExecutor(thread_name_prefix="logmq-worker")
    loop.set_default_executor(workers)
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())
    finally:
        try:
            _cancel_leftovers(loop, stopping)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            workers.shutdown(wait=False, cancel_futures=True)
            share = share_state._pool
            if share is not None:
                share.shutdown(wait=False, cancel_futures=True)
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop, stopping: _Shutdown) -> None:
    tasks = asyncio.all_tasks(loop)
    everyone = set(tasks)
    deadline = time.monotonic() + max(0.5, stopping.left())
    while tasks and time.monotonic() < deadline:
        for t in tasks:
            t.cancel()  # again each round: 3.11's wait_for can swallow one cancel
        loop.run_until_complete(asyncio.wait(tasks, timeout=min(
            0.2, max(0.01, deadline - time.monotonic()))))
        tasks = {t for t in tasks if not t.done()}
    if tasks:
        log.warning("shutdown: %d task(s) did not end when cancelled; abandoned", len(tasks))
    for t in everyone:  # their errors are nobody's now (else: logged at ERROR when freed)
        if t.done() and not t.cancelled() and t.exception() is not None:
            log.debug("task %r ended with %r at shutdown", t, t.exception())


def _abandon_busy_threads(stopping: _Shutdown) -> None:
    """Exit now if worker threads still run abandoned jobs (the data is closed already).

    Python's exit would join them: as long as the longest job, whatever the deadline.
    """
    deadline = time.monotonic() + max(0.5, stopping.left())
    busy = _busy_threads()
    for t in busy:
        t.join(max(0.0, deadline - time.monotonic()))
    busy = _busy_threads()
    if busy:
        log.warning("exiting with %d worker thread(s) still running abandoned requests (%s); "
                    "the data directory is closed", len(busy),
                    ", ".join(sorted(t.name for t in busy))[:200])
        logging.shutdown()
        os._exit(0)


def _busy_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate()
            if t is not threading.current_thread() and not t.daemon and t.is_alive()]
