"""Connections of the Kafka server: framing, dispatch in order, zero-copy fetch, shutdown.

Each connection reads frames through the sans-I/O :class:`~logmq.protocol.FrameBuffer`
(which refuses an oversized size prefix before reading the body), answers requests strictly in
order as Kafka clients expect, and writes fetch responses as header bytes plus ``sendfile`` of
the segment ranges. Anything undecodable closes that one connection; the server keeps serving
the others.

Shutdown (SIGTERM/SIGINT in ``logmq serve``): stop accepting, let requests in progress finish,
close connections, then close the broker, which fsyncs and checkpoints every partition so the
next start needs no recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
from typing import TYPE_CHECKING, Any

from logmq.errors import ProtocolError
from logmq.kafka_codes import ApiKey, ErrorCode
from logmq.protocol import (
    SUPPORTED_VERSIONS,
    FrameBuffer,
    decode_request,
    encode_response,
    encode_response_chunks,
    peek_header,
)
from logmq.server.handlers import Handlers
from logmq.storage.log import LogSlice

if TYPE_CHECKING:
    from logmq.broker.broker import Broker
    from logmq.config import BrokerConfig

__all__ = ["KafkaServer", "run_server", "ClientInfo"]

log = logging.getLogger("logmq.server")
API_VERSIONS = ApiKey.API_VERSIONS
UNSUPPORTED_VERSION = ErrorCode.UNSUPPORTED_VERSION
_READ_CHUNK = 256 * 1024


class ClientInfo:
    """Who is on the other end of a connection (for group member descriptions)."""

    __slots__ = ("host", "port", "client_id")

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.client_id: str | None = None


class KafkaServer:
    """Serves one :class:`~logmq.broker.broker.Broker` over the Kafka protocol.

    ``advertised_host`` is what Metadata tells clients to connect to (default: the listen
    host). ``max_request_size`` bounds a request frame (default 100 MiB).
    """

    def __init__(
        self,
        broker: Broker,
        host: str = "127.0.0.1",
        port: int = 9092,
        *,
        max_request_size: int = 100 * 1024 * 1024,
        advertised_host: str | None = None,
        auto_create_topics: bool = True,
    ) -> None:
        self.broker = broker
        self.host = host
        self.port = port
        self.advertised_host = advertised_host
        self.max_request_size = max_request_size
        self.auto_create_topics = auto_create_topics
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._busy: set[asyncio.Task[Any]] = set()
        self.handlers: Handlers | None = None
        self._table: dict[int, Any] = {}

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port,
                                                  limit=_READ_CHUNK, backlog=1024)
        sock = self._server.sockets[0]
        host, port = sock.getsockname()[:2]
        self.port = port
        self.handlers = Handlers(self.broker, self.advertised_host or host, port,
                                 auto_create_topics=self.auto_create_topics)
        self._table = self.handlers.table()
        log.info("logmq listening on %s:%d (data %s)", host, port, self.broker.path)
        return host, port

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, finish requests in progress, close connections."""
        if self._server is not None:
            self._server.close()
        busy = list(self._busy)
        if busy:
            await asyncio.wait(busy, timeout=grace)
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=grace)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    # ------------------------------------------------------------------ connections
    async def _on_connect(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername") or ("?", 0)
        client = ClientInfo(str(peer[0]), int(peer[1]) if len(peer) > 1 else 0)
        frames = FrameBuffer(self.max_request_size)
        try:
            while True:
                data = await reader.read(_READ_CHUNK)
                if not data:
                    break
                frames.feed(data)
                while (frame := frames.next_frame()) is not None:
                    if not await self._dispatch(bytes(frame), writer, client):
                        return
        except ProtocolError as e:
            log.warning("closing connection from %s: %s", client.host, e)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _dispatch(self, frame: bytes, writer: asyncio.StreamWriter,
                        client: ClientInfo) -> bool:
        """Handle one request; False closes the connection."""
        try:
            header = peek_header(frame)
        except ProtocolError as e:
            log.warning("undecodable request header from %s: %s", client.host, e)
            return False
        client.client_id = header.client_id
        api, version, corr = header.api_key, header.api_version, header.correlation_id
        if api == API_VERSIONS and version > SUPPORTED_VERSIONS[API_VERSIONS][1]:
            # KIP-511: answer with a v0 body listing what we support, so the client retries
            writer.write(encode_response(API_VERSIONS, 0, corr, {
                "error_code": UNSUPPORTED_VERSION, "api_keys": self._api_keys()}))
            await writer.drain()
            return True
        try:
            request = decode_request(frame)
        except ProtocolError as e:
            log.warning("bad request (api %d v%d) from %s: %s", api, version, client.host, e)
            return False
        task = asyncio.current_task()
        assert task is not None
        self._busy.add(task)
        try:
            if api == API_VERSIONS:
                body: dict | None = {"error_code": 0, "api_keys": self._api_keys(),
                                     "throttle_time_ms": 0}
            else:
                result = self._table[api](request.body, version, client)
                body = await result if inspect.isawaitable(result) else result
            if body is None:
                return True  # acks=0 produce: no response at all
            await self._write_response(writer, api, version, corr, body)
            return True
        except Exception:
            log.exception("error handling api %d v%d from %s", api, version, client.host)
            return False
        finally:
            self._busy.discard(task)

    def _api_keys(self) -> list[dict]:
        return [{"api_key": k, "min_version": lo, "max_version": hi}
                for k, (lo, hi) in sorted(SUPPORTED_VERSIONS.items())]

    async def _write_response(self, writer: asyncio.StreamWriter, api: int, version: int,
                              corr: int, body: dict) -> None:
        chunks = encode_response_chunks(api, version, corr, body)
        loop = asyncio.get_running_loop()
        for chunk in chunks:
            if isinstance(chunk, LogSlice):
                await writer.drain()
                with open(chunk.fileno, "rb", buffering=0, closefd=False) as f:
                    try:
                        await loop.sendfile(writer.transport, f, chunk.position, chunk.length,
                                            fallback=True)
                    except (NotImplementedError, RuntimeError):
                        writer.write(chunk.read())
            else:
                writer.write(chunk)
        await writer.drain()


def run_server(
    data: str,
    host: str = "127.0.0.1",
    port: int = 9092,
    *,
    max_request_size: int = 100 * 1024 * 1024,
    auto_create_topics: bool = True,
    ready_file: str | None = None,
    queue_listen: tuple[str, int] | None = None,
    queue_authkey: bytes | None = None,
    config: BrokerConfig | None = None,
    **broker_config: Any,
) -> None:
    """Open ``data``, serve until SIGTERM/SIGINT, then shut down cleanly (blocking).

    With ``queue_listen``, worker processes can also join share groups of this data directory
    through :class:`~logmq.broker.queues.remote.QueueServer` (the Kafka protocol has no
    classic-version share-group APIs): the process that serves Kafka clients owns the
    directory, so it is the one place queue members can reach.
    """
    import logmq

    advertised_host = None
    if config is not None:  # the CLI resolved file/env/options already (logmq.config)
        advertised_host = config.advertised_host
        max_request_size = config.max_request_size
        auto_create_topics = config.auto_create_topics
        broker = logmq.open(data, config=config)
    else:
        broker = logmq.open(data, auto_create_topics=auto_create_topics, **broker_config)
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
                             auto_create_topics=auto_create_topics,
                             advertised_host=advertised_host)
        h, p = await server.start()
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
        await server.stop()

    try:
        asyncio.run(main())
    finally:
        if queue_server is not None:
            queue_server.close()  # members leave first: what they held is released, durably
        broker.close()
        log.info("data directory closed cleanly")
