"""An in-process ``logmq serve`` for tests: a Kafka endpoint on a loopback port in milliseconds.

Tests of Kafka client code usually start a broker in Docker (seconds to tens of seconds, a
daemon, a JVM) or use an in-memory mock whose semantics drift from Kafka's. This runs the real
server (same request handlers, same storage) on an asyncio loop in a background thread of the
test process, on a data directory the caller owns, so it starts in well under a second and the
data can be inspected with the embedded API while clients are connected.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import threading
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from logmq.errors import LogMQError

if TYPE_CHECKING:
    from logmq.broker.broker import Broker
    from logmq.server.app import KafkaServer

__all__ = ["LogMQServer", "unique_topic_name"]

_counter = itertools.count(1)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def unique_topic_name(prefix: str = "topic") -> str:
    """A topic name no other call in this process returns (valid for Kafka and logmq).

    Tests sharing one server stay isolated by never sharing a topic: the prefix (a test's
    name, say) keeps the data directory readable when a test fails.
    """
    clean = _UNSAFE.sub("-", prefix).strip("-.")[:120] or "topic"
    return f"{clean}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


class LogMQServer:
    """A logmq Kafka server on ``host:port`` serving ``data_dir``, run on a daemon thread.

    ``port=0`` picks a free port at the first :meth:`start`; :meth:`restart` keeps it, so
    clients configured with :attr:`bootstrap` reconnect to the same address. Broker options
    (``num_partitions=3``, ``fsync="never"``, topic defaults) go to :func:`logmq.open`.
    ``data_dir=":memory:"`` serves an in-memory log (a restart starts from an empty one).
    """

    def __init__(self, data_dir: str | os.PathLike[str], host: str = "127.0.0.1",
                 port: int = 0, *, start_timeout: float = 30.0, **broker_config: Any) -> None:
        self.data_dir = os.fspath(data_dir)
        self.host = host
        self.port = port
        self.broker_config = broker_config
        self.start_timeout = start_timeout
        self._broker: Broker | None = None
        self._server: KafkaServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.starts = 0

    # ------------------------------------------------------------------ properties
    @property
    def bootstrap(self) -> str:
        """``"HOST:PORT"`` for ``bootstrap.servers`` / ``bootstrap_servers``."""
        if self.port == 0:
            raise LogMQError("the server has not been started yet")
        return f"{self.host}:{self.port}"

    @property
    def broker(self) -> Broker:
        """The open :class:`~logmq.Broker` the server serves (embedded access, same data)."""
        if self._broker is None:
            raise LogMQError("the server is not running")
        return self._broker

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LogMQServer:
        """Open the data directory and listen; returns once clients can connect."""
        if self.running:
            return self
        import logmq
        from logmq.server.app import KafkaServer

        self._broker = logmq.open(self.data_dir, **self.broker_config)
        auto = bool(self.broker_config.get("auto_create_topics", True))
        self._server = KafkaServer(self._broker, self.host, self.port, auto_create_topics=auto)
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            assert self._server is not None
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                _, self.port = await self._server.start()
            except BaseException as e:
                failure.append(e)
                ready.set()
                return
            ready.set()
            await self._stop.wait()
            await self._server.stop(grace=5.0)

        self._thread = threading.Thread(target=asyncio.run, args=(main(),),
                                        name=f"logmq-test-server:{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(self.start_timeout) or failure:
            self._shutdown_thread()
            self._broker.close()
            self._broker = None
            if failure:
                raise LogMQError(f"test server could not listen on "
                                 f"{self.host}:{self.port}: {failure[0]}") from failure[0]
            raise LogMQError(f"test server not listening after {self.start_timeout} s")
        self.starts += 1
        return self

    def _shutdown_thread(self) -> None:
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop finished between the check and the call
                pass
        if thread is not None:
            thread.join(self.start_timeout)
        self._thread = self._loop = self._stop = None

    def stop(self) -> None:
        """Close connections, then close the data directory cleanly (idempotent)."""
        self._shutdown_thread()
        if self._broker is not None:
            self._broker.close()
            self._broker = None

    def restart(self) -> LogMQServer:
        """Stop and start again on the same port and data: clients see a broker restart."""
        self.stop()
        return self.start()

    # ------------------------------------------------------------------ topics
    def unique_topic(self, prefix: str = "topic") -> str:
        """A fresh topic name (not created; see :meth:`create_topic`)."""
        return unique_topic_name(prefix)

    def create_topic(self, name: str | None = None, partitions: int = 1,
                     config: Mapping[str, Any] | None = None) -> str:
        """Create a topic (a unique name when ``name`` is None) and return its name.

        An existing ``name`` is left as it is, so a module-level helper can call this freely.
        """
        topic = self.unique_topic() if name is None else name
        self.broker.create_topic(topic, partitions=partitions, config=config, exist_ok=True)
        return topic

    def __enter__(self) -> LogMQServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LogMQServer {self.host}:{self.port} {state} data={self.data_dir!r}>"
