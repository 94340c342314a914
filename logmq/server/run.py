"""``logmq serve``'s process: open the data directory, serve the Kafka protocol (and the
queue and HTTP listeners when asked) until SIGTERM/SIGINT, then close everything cleanly.

Apart from :mod:`logmq.server.app` so that module is about connections and requests only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from logmq.server.app import KafkaServer
from logmq.server.limits import ServerLimits

if TYPE_CHECKING:
    from logmq.config import BrokerConfig
    from logmq.server.listeners import Listener

__all__ = ["run_server"]
log = logging.getLogger("logmq.server")


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
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
        if ops is not None:
            ops.stopping()
        await server.stop()

    try:
        asyncio.run(main())
    finally:
        if queue_server is not None:
            queue_server.close()  # members leave first: what they held is released, durably
        broker.close()
        if ops is not None:
            ops.close()
        log.info("data directory closed cleanly")
