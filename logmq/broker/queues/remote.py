"""Queue members in other processes: a small server in the process that owns the data.

One process owns a data directory, so workers in other processes reach the share group
through it. Kafka share consumers can do so over the Kafka wire (KIP-932,
:mod:`logmq.server.share`); this is the small Python-only channel, with logmq's own verbs
(nack with a delay, renew, reject with a reason):
``multiprocessing.connection`` (length-prefixed pickles over loopback TCP or a Unix socket,
with an HMAC challenge on ``authkey`` before anything is unpickled).

Owner process::

    server = QueueServer(log, ("127.0.0.1", 0))   # .address, .authkey for the workers
    server.start()

Worker process::

    q = RemoteQueue(address, "jobs", group="workers", authkey=key, lock_ms=10_000)
    for rec in q.receive(10, timeout=5):
        handle(rec.value)
        rec.ack()                                   # durable in the owner when it returns

A connection is one member. If a worker process dies, its connection drops and the owner
makes what it held available again at once (the attempt counts). If the owner dies, workers
get ``ConnectionError``; whatever they had not acked comes back after the owner restarts.
Filters must be declarative (mappings) here: a lambda cannot cross processes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import threading
from collections.abc import Iterable
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

from logmq import errors as _errors
from logmq.broker.queues.group import QueueStats
from logmq.broker.queues.queue import QueueRecord, SettleVerbs
from logmq.errors import AuthenticationError, ConfigError, LogMQError
from logmq.types import Record, RecordMetadata

__all__ = ["QueueServer", "RemoteQueue"]


def _encode_error(e: BaseException) -> tuple[str, str]:
    return type(e).__name__, str(e)


def _decode_error(name: str, message: str) -> BaseException:
    cls = getattr(_errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        return LogMQError(f"{name}: {message}")
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)  # custom __init__ signatures are bypassed on purpose
    return exc


class QueueServer:
    """Serves share-group operations of ``log`` to :class:`RemoteQueue` clients."""

    def __init__(self, log: Any, address: Any = ("127.0.0.1", 0),
                 authkey: bytes | None = None) -> None:
        self.log = log
        self.authkey = authkey or os.urandom(16)
        self._listener = Listener(address, authkey=self.authkey)
        self.address = self._listener.address
        self._closed = False
        self._lock = threading.Lock()
        self._conns: set[Connection] = set()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept_loop, name="logmq-queue-server",
                                          daemon=True)

    def start(self) -> QueueServer:
        self._accepter.start()
        return self

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn = self._listener.accept()
            except Exception:  # noqa: BLE001 - wrong key, garbage, a client gone mid-handshake
                if self._closed:
                    return
                continue  # that client is refused; the others keep being served
            if self._closed:
                conn.close()
                return
            with self._lock:
                self._conns.add(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                 name="logmq-queue-conn")
            self._threads.append(t)
            t.start()

    def _serve(self, conn: Connection) -> None:
        from logmq.broker.queues.manager import queue_manager

        mgr = queue_manager(self.log)
        share = member = None
        flt = None
        producer = None
        try:
            while True:
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    return
                op = msg[0]
                try:
                    if op == "open":
                        _, topic, group, config = msg
                        from logmq.broker.queues.filters import make_filter
                        from logmq.broker.queues.group import GroupConfig
                        from logmq.broker.queues.model import validate_lock_ms

                        config = dict(config)
                        lock_ms = validate_lock_ms(config.pop("lock_ms", 30_000))
                        flt = make_filter(config.pop("filter", None))
                        cfg, rest = GroupConfig.split(config)
                        if rest:
                            raise ConfigError(f"unknown queue config: {', '.join(sorted(rest))}")
                        share = mgr.share_group(topic, group, cfg)
                        member = share.add_member(lock_ms, prefix="remote")
                        result: Any = member.id
                    elif op == "receive":
                        if share is None or member is None:
                            raise ConfigError("open first")
                        got = share.receive(member, int(msg[1]), float(msg[2]), flt)
                        result = [(tuple(rec.record), count, deadline)
                                  for rec, count, deadline in got]
                    elif op == "settle":
                        if share is None or member is None:
                            raise ConfigError("open first")
                        _, action, tokens, kw = msg
                        result = share.settle(member, [tuple(t) for t in tokens], action, **kw)
                    elif op == "stats":
                        if share is None:
                            raise ConfigError("open first")
                        result = share.stats().__dict__
                    elif op == "send":
                        _, topic, value, key, headers, partition, options = msg
                        if producer is None:
                            producer = self.log.producer(linger_ms=0)
                        result = tuple(producer.send(topic, value, key, headers, partition,
                                                     **options).result())
                    elif op == "reply":
                        _, req_headers, value, key, headers = msg
                        result = tuple(mgr.reply(req_headers, value, key=key, headers=headers))
                    elif op == "close":
                        if share is not None and member is not None:
                            share.remove_member(member)  # left the group when close returns
                            member = None
                        conn.send(("ok", None))
                        return
                    else:
                        raise ConfigError(f"unknown operation {op!r}")
                except Exception as e:
                    conn.send(("err", *_encode_error(e)))
                else:
                    conn.send(("ok", result))
        except (OSError, EOFError):
            return  # the client went away mid-answer
        finally:
            if share is not None and member is not None:
                with contextlib.suppress(Exception):
                    share.remove_member(member)  # what it held is available again at once
            if producer is not None:
                with contextlib.suppress(Exception):
                    producer.close()
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def close(self) -> None:
        """Stop accepting, drop every connection (their members leave), wait for them."""
        if self._closed:
            return
        self._closed = True
        # Wake the blocked accept() by connecting to it, from a thread so that close() cannot
        # hang if the accept loop is gone: the handshake would wait for it forever.
        waker = threading.Thread(target=self._wake_accept, daemon=True)
        waker.start()
        waker.join(2)
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                s = socket.socket(fileno=os.dup(conn.fileno()))
                s.shutdown(socket.SHUT_RDWR)
                s.close()
        for t in self._threads:
            t.join(5)

    def _wake_accept(self) -> None:
        with contextlib.suppress(Exception):
            Client(self.address, authkey=self.authkey).close()

    def __enter__(self) -> QueueServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class RemoteQueue(SettleVerbs):
    """A share-group member in another process: the API of :class:`QueueConsumer`.

    ``wakeup()`` is not available (a receive in progress occupies the connection); use
    modest receive timeouts instead.
    """

    def __init__(self, address: Any, topic: str, group: str = "workers", *,
                 authkey: bytes, **config: Any) -> None:
        self.topic = topic
        self.group = group
        try:
            self._conn = Client(address, authkey=authkey)
        except multiprocessing.AuthenticationError as e:
            raise AuthenticationError(f"queue server at {address} refused the key: {e}") from None
        self._lock = threading.Lock()
        self._closed = False
        self.member_id = self._call("open", topic, group, config)

    def _call(self, *msg: Any) -> Any:
        with self._lock:
            if self._closed:
                raise _errors.BrokerClosedError("remote queue is closed")
            try:
                self._conn.send(msg)
                reply = self._conn.recv()
            except (EOFError, OSError) as e:
                raise ConnectionError(f"queue server connection lost: {e}") from None
        if reply[0] == "err":
            raise _decode_error(reply[1], reply[2])
        return reply[1]

    def receive(self, max_records: int = 1, timeout: float = 0.0) -> list[QueueRecord]:
        got = self._call("receive", max_records, timeout)
        return [QueueRecord(self, Record(*r), count, deadline) for r, count, deadline in got]

    def _settle(self, records: Iterable[QueueRecord], action: str, **kw: Any) -> list[int]:
        recs = list(records)
        if not recs:
            return []
        try:
            return self._call("settle", action, [r.token for r in recs], kw)
        finally:
            if action != "renew":
                for r in recs:
                    r.settled = action

    def reply(self, record: QueueRecord, value: Any, *, key: Any = None,
              headers: Any = None) -> RecordMetadata:
        return RecordMetadata(*self._call("reply", record.headers, value, key, headers))

    def send(self, topic: str, value: Any = None, key: Any = None, headers: Any = None,
             partition: int | None = None, **options: Any) -> RecordMetadata:
        """Produce through the owner (message options as for ``Producer.send``)."""
        return RecordMetadata(*self._call("send", topic, value, key, headers, partition,
                                          options))

    def stats(self) -> QueueStats:
        return QueueStats(**self._call("stats"))

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._call("close")
        except (ConnectionError, LogMQError):
            pass
        self._closed = True
        self._conn.close()

    def __enter__(self) -> RemoteQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
