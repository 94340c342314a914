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
import dataclasses
import functools
import inspect
import logging
import re
import resource
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from logmq.errors import ProtocolError
from logmq.kafka_codes import ApiKey, ErrorCode
from logmq.protocol import (
    SUPPORTED_VERSIONS,
    FrameBuffer,
    decode_request,
    encode_refusal,
    encode_response,
    encode_response_chunks,
    peek_header,
)
from logmq.server.authz import Security
from logmq.server.guard import BytePool, RateLimitedLog, ServerStats
from logmq.server.handlers import Handlers, ServerStopping
from logmq.server.limits import ServerLimits
from logmq.server.listeners import (
    ADVERTISED,
    Listener,
    ListenerHandlers,
    principal_from_cert,
)
from logmq.server.sasl import (
    SASL_AUTHENTICATE,
    SASL_HANDSHAKE,
    SaslContext,
    SaslSession,
    raw_sasl_token,
    sasl_request,
)
from logmq.server.scram_admin import ALTER_SCRAM, decode_alter_scram
from logmq.storage.log import LogSlice

if TYPE_CHECKING:
    from logmq.broker.broker import Broker
    from logmq.broker.users import UserStore

__all__ = ["KafkaServer", "ClientInfo"]

log = logging.getLogger("logmq.server")
API_VERSIONS = ApiKey.API_VERSIONS
UNSUPPORTED_VERSION = ErrorCode.UNSUPPORTED_VERSION
_READ_CHUNK = 256 * 1024
#: APIs whose handlers touch the file system or many partitions, or commit to LMDB and wait
#: for its fsync (OffsetCommit 8, CreateAcls 30, DeleteAcls 31, AlterUserScramCredentials 51):
#: always off the event loop.
_SLOW_APIS = frozenset((8, 19, 20, 21, 30, 31, 33, 35, 37, 42, 44, 47, 51))
#: what ApiVersions v3+ accepts as a client software name or version (Kafka's own rule)
_SOFTWARE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?")
REBOOTSTRAP_REQUIRED = 129  # ApiVersions v5 (KIP-1242): "you meant another cluster or node"
#: ApiVersions v3+ feature levels, name -> (min supported, max supported, finalized level).
#: Empty: clients then use each feature's level 0 (the behaviour logmq implements); a
#: feature's owner adds its row when the server implements that level.
FEATURES: dict[str, tuple[int, int, int]] = {}


class ClientInfo:
    """Who is on the other end of a connection: group member descriptions, and the principal
    and listener that authorization and quotas key on (``User:ANONYMOUS`` until a listener's
    TLS or SASL layer says otherwise, as in Kafka)."""

    __slots__ = ("host", "port", "client_id", "principal", "listener",
                 "client_software_name", "client_software_version")

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.client_id: str | None = None
        self.principal = "User:ANONYMOUS"
        self.listener = "PLAINTEXT"
        #: what the client said it is in ApiVersions v3+ (KIP-511), "" until then
        self.client_software_name = ""
        self.client_software_version = ""


class _Conn(ClientInfo):
    """A connection's state as the sweeper sees it (all times from ``time.monotonic``)."""

    __slots__ = ("task", "reader", "transport", "idle_since", "frame_started", "busy",
                 "writing_since", "closed_by", "sasl")

    def __init__(self, host: str, port: int, task: asyncio.Task[Any],
                 reader: asyncio.StreamReader, transport: asyncio.BaseTransport) -> None:
        super().__init__(host, port)
        self.task = task
        self.reader = reader
        self.transport = transport
        self.idle_since: float = time.monotonic()
        self.frame_started: float | None = None
        self.busy = False
        self.writing_since: float | None = None
        self.closed_by: str | None = None
        self.sasl: SaslSession | None = None


class KafkaServer:
    """Serves one :class:`~logmq.broker.broker.Broker` over the Kafka protocol.

    ``advertised_host`` is what Metadata tells clients to connect to (default: the listen
    host). ``limits`` bounds what clients may make the server hold (see
    :class:`~logmq.server.limits.ServerLimits`); ``max_request_size`` is a shortcut for its
    field of that name. ``listeners`` (logmq.server.listeners) replaces ``host``/``port`` with
    several ports, TLS and SASL; ``users`` is the SCRAM credential store SASL checks (default:
    the data directory's), ``on_auth`` a hook called with each authentication's outcome.
    """

    def __init__(
        self,
        broker: Broker,
        host: str = "127.0.0.1",
        port: int = 9092,
        *,
        max_request_size: int | None = None,
        advertised_host: str | None = None,
        auto_create_topics: bool = True,
        limits: ServerLimits | None = None,
        observer: Any = None,
        advertised_port: int | None = None,
        listeners: Sequence[Listener] | None = None,
        users: UserStore | None = None,
        on_auth: Any = None,
    ) -> None:
        if listeners:
            host, port = listeners[0].host, listeners[0].port
        else:
            listeners = [Listener("PLAINTEXT", host, port, advertised_host, advertised_port)]
        self.listeners: list[Listener] = list(listeners)
        #: listener name -> (host, port) it is bound to (after start)
        self.addresses: dict[str, tuple[str, int]] = {}
        self._users = users
        self._on_auth = on_auth
        self._sasl: SaslContext | None = None
        #: ``observer.request(api, seconds, body, raised)`` after each request (logmq.ops)
        self.observer = observer
        self.broker = broker
        self.host = host
        self.port = port
        self.advertised_host = advertised_host
        self.advertised_port = advertised_port
        limits = limits or ServerLimits()
        if max_request_size is not None:
            limits = limits.replace(max_request_size=max_request_size)
        self.limits = limits
        self.max_request_size = limits.max_request_size
        self.auto_create_topics = auto_create_topics
        self.stats = ServerStats()
        #: requests served per (api key, version): which versions clients really speak
        self.versions_seen: Counter[tuple[int, int]] = Counter()
        self.pool = BytePool(limits.queued_max_request_bytes)
        self._malformed = RateLimitedLog(log, limits.malformed_log_per_minute)
        self._server: asyncio.base_events.Server | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._conns: dict[asyncio.Task[Any], _Conn] = {}
        self._per_ip: Counter[str] = Counter()
        self._max_conns = limits.max_connections
        self._sweeper: asyncio.Task[None] | None = None
        self.handlers: Handlers | None = None
        self._table: dict[int, Any] = {}
        self.security: Security | None = None

    async def start(self) -> tuple[str, int]:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY and self._max_conns > soft // 2:
            self._max_conns = max(1, soft // 2)  # the rest for segments, LMDB, the listener
        # a TLS handshake holds a socket before max_connections counts it: keep it short
        handshake = min(self.limits.request_arrival_timeout_ms or 10_000, 10_000) / 1000
        try:
            for i, lst in enumerate(self.listeners):
                srv = await asyncio.start_server(
                    functools.partial(self._on_connect, lst), lst.host, lst.port,
                    limit=_READ_CHUNK, backlog=1024, ssl=lst.tls,
                    ssl_handshake_timeout=handshake if lst.tls is not None else None)
                self._servers.append(srv)
                bound = srv.sockets[0].getsockname()[:2]
                self.addresses[lst.name] = (bound[0], bound[1])
                self.listeners[i] = dataclasses.replace(lst, port=bound[1])
        except BaseException:
            for srv in self._servers:
                srv.close()
            raise
        self._server = self._servers[0]
        host, port = self.addresses[self.listeners[0].name]
        self.port = port
        if any(lst.uses_sasl for lst in self.listeners):
            from logmq.broker.users import UserStore

            lim = self.limits
            self._sasl = SaslContext(
                self._users or UserStore(self.broker.meta.env),
                failures_per_minute=lim.auth_failures_per_minute,
                reauth_ms=lim.connections_max_reauth_ms,
                failure_delay_ms=lim.failed_auth_delay_ms,
                log_per_minute=lim.malformed_log_per_minute, on_result=self._auth_result)
        first = self.listeners[0]
        self.handlers = ListenerHandlers(self.broker, first.advertised_host or
                                         self.advertised_host or host,
                                         first.advertised_port or self.advertised_port
                                         or port, auto_create_topics=self.auto_create_topics,
                                         limits=self.limits)
        if self._users is not None:
            self.handlers.scram_users = self._users
        self._table = self.handlers.table()
        # ACLs, quotas and the audit log wrap every handler (logmq/server/authz.py)
        self.security = Security(self.broker, auto_create=self.auto_create_topics)
        self._table = self.security.wrap({**self._table, **self.security.api_table()})
        self._sweeper = asyncio.create_task(self._sweep())
        for lst in self.listeners:  # last: a line tests and scripts wait for
            bhost, bport = self.addresses[lst.name]
            log.info("logmq listening on %s:%d (%s; data %s)", bhost, bport, lst.name,
                     self.broker.path)
        return host, port

    def _auth_result(self, host: str, port: int, who: str | None, mechanism: str | None,
                     ok: bool, message: str) -> None:
        """Each SASL outcome: the audit log (with the authorizer on), then ``on_auth``."""
        if self.security is not None:
            who = who or ""
            principal = who if who.startswith("User:") else f"User:{who}"
            self.security.audit.record("authenticate", principal, f"{host}:{port}",
                                       "ok" if ok else "failed", mechanism=mechanism,
                                       message=message)
        if self._on_auth is not None:
            self._on_auth(host, port, who, mechanism, ok, message)

    def _advertised(self, lst: Listener) -> tuple[str, int]:
        host, port = self.addresses[lst.name]
        return lst.advertised_host or host, lst.advertised_port or port

    @property
    def connection_count(self) -> int:
        return len(self._conns)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, end long polls, finish requests in progress, close connections.

        Bounded by about ``grace`` seconds in all, whatever clients do: long polls (Fetch,
        JoinGroup, SyncGroup) are woken at once, requests still running after half of it are
        cancelled, and connections still open at the end are aborted. A request whose work
        runs in a worker thread cannot be cancelled there: its connection is closed all the
        same, and ``logmq serve`` does not wait for the thread (logmq.server.run).
        """
        deadline = time.monotonic() + grace
        for srv in self._servers:
            srv.close()
        if self.handlers is not None:
            self.handlers.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
        finish_by = time.monotonic() + grace / 2
        while any(c.busy for c in self._conns.values()) and time.monotonic() < finish_by:
            await asyncio.sleep(0.01)  # requests in progress finish (their connections stay)
        busy = sum(c.busy for c in self._conns.values())
        if busy:
            log.warning("shutdown: cancelling %d request(s) still in progress after %.1f s",
                        busy, grace / 2)
        while self._conns and time.monotonic() < deadline:
            # Python 3.11's asyncio.wait_for can swallow a cancel that races its result
            # (see _sweep): cancel again until every connection task has ended
            for task in list(self._conns):
                task.cancel()
            await asyncio.wait(list(self._conns), timeout=min(0.2, max(
                0.0, deadline - time.monotonic())))
        if self._conns:
            log.warning("shutdown: aborting %d connection(s) that did not end in %.1f s",
                        len(self._conns), grace)
            for c in list(self._conns.values()):
                tr = c.transport
                if isinstance(tr, asyncio.WriteTransport):
                    tr.abort()
                else:
                    tr.close()
        for srv in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(),
                                       max(0.01, deadline - time.monotonic()))
        if self.security is not None:
            self.security.close()

    # ------------------------------------------------------------------ timeouts
    async def _sweep(self) -> None:
        """Close connections idle too long or whose request does not arrive whole in time."""
        lim = self.limits
        idle = lim.connections_max_idle_ms / 1000
        slow = lim.request_arrival_timeout_ms / 1000
        periods = [t for t in (idle, slow) if t > 0]
        if not periods:
            return
        period = min(1.0, max(0.02, min(periods) / 4))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for task, c in list(self._conns.items()):
                if c.closed_by:
                    # cancelled already, but Python 3.11's asyncio.wait_for can swallow a
                    # cancel that races its future's result (BytePool.acquire): cancel again
                    # until the connection is gone, or it stays open for good
                    task.cancel()
                    continue
                if c.writing_since is not None:  # a client that does not read its responses
                    if slow and now - c.writing_since > slow:
                        c.closed_by = "slow_closed"
                        task.cancel()
                    continue
                if c.busy:
                    # a long poll whose client went away: end it, or it holds a connection
                    # slot (and its group wait) for as long as the client asked to wait
                    if c.reader.at_eof() or c.transport.is_closing():
                        c.closed_by = "client_gone"
                        task.cancel()
                    continue
                if c.frame_started is not None:
                    if slow and now - c.frame_started > slow:
                        c.closed_by = "slow_closed"
                        task.cancel()
                elif idle and now - c.idle_since > idle:
                    c.closed_by = "idle_closed"
                    task.cancel()

    # ------------------------------------------------------------------ connections
    async def _on_connect(self, listener: Listener, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername") or ("?", 0)
        conn = _Conn(str(peer[0]), int(peer[1]) if len(peer) > 1 else 0, task, reader,
                     writer.transport)
        ADVERTISED.set(self._advertised(listener))  # this connection's task only
        conn.listener = listener.name
        if listener.client_certs:  # mTLS: the certificate's subject (SASL_SSL: SASL's)
            conn.principal = principal_from_cert(writer.get_extra_info("peercert"))
        if listener.uses_sasl and self._sasl is not None:
            conn.sasl = SaslSession(self._sasl, listener.mechanisms, conn.host, conn.port)
        if (len(self._conns) >= self._max_conns
                or self._per_ip[conn.host] >= self.limits.max_connections_per_ip):
            self.stats["refused_connections"] += 1
            self._malformed.log(logging.WARNING, "refused connection",
                                "refusing connection from %s: %d open (%d from that address)",
                                conn.host, len(self._conns), self._per_ip[conn.host])
            writer.transport.abort()
            return
        self._conns[task] = conn
        self._per_ip[conn.host] += 1
        reserved = 0
        frames = FrameBuffer(self.limits.max_request_size)
        try:
            while True:
                data = await reader.read(_READ_CHUNK)
                if not data:
                    break
                frames.feed(data)
                while (frame := frames.next_frame()) is not None:
                    conn.frame_started = None
                    conn.busy = True
                    try:
                        if conn.sasl is not None and conn.sasl.raw:
                            ok = await raw_sasl_token(frame, writer, conn)
                        else:
                            ok = await self._dispatch(frame, writer, conn)
                    finally:
                        conn.busy = False
                        conn.idle_since = time.monotonic()
                        if reserved:
                            self.pool.release(reserved)
                            reserved = 0
                    if not ok:
                        return
                if frames.buffered:
                    if conn.frame_started is None:
                        conn.frame_started = time.monotonic()
                    need = frames.pending_size
                    if need is not None and not reserved and need + 4 > _READ_CHUNK:
                        # a frame bigger than what is already read: reserve before reading on
                        if not await self._reserve(conn, need + 4):
                            return
                        reserved = need + 4
        except ProtocolError as e:
            self.stats["malformed_frames"] += 1
            self._malformed.log(logging.WARNING, "malformed frame",
                                "closing connection from %s: %s", conn.host, e)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError) as e:
            log.debug("connection from %s:%d ended: %r", conn.host, conn.port, e)
        except asyncio.CancelledError:
            if conn.closed_by:
                self.stats[conn.closed_by] += 1
                log.debug("closed connection from %s:%d (%s)", conn.host, conn.port,
                          conn.closed_by)
        finally:
            if reserved:
                self.pool.release(reserved)
            self._conns.pop(task, None)
            self._per_ip[conn.host] -= 1
            if self._per_ip[conn.host] <= 0:
                del self._per_ip[conn.host]
            if conn.closed_by:
                writer.transport.abort()
            else:
                writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _reserve(self, conn: _Conn, need: int) -> bool:
        """Reserve a frame's bytes from the global budget before reading its body."""
        left = None
        if self.limits.request_arrival_timeout_ms:
            started = conn.frame_started or time.monotonic()
            left = max(0.0, started + self.limits.request_arrival_timeout_ms / 1000
                       - time.monotonic())
        if await self.pool.acquire(need, left):
            return True
        self.stats["slow_closed"] += 1
        self._malformed.log(logging.INFO, "budget", "closing connection from %s: its %d-byte "
                            "request did not fit queued_max_request_bytes in time",
                            conn.host, need)
        return False

    async def _dispatch(self, frame: bytes, writer: asyncio.StreamWriter,
                        client: ClientInfo) -> bool:
        """Handle one request; False closes the connection."""
        try:
            header = peek_header(frame)
        except ProtocolError as e:
            self.stats["malformed_frames"] += 1
            self._malformed.log(logging.WARNING, "malformed frame",
                                "undecodable request header from %s: %s", client.host, e)
            return False
        client.client_id = header.client_id
        api, version, corr = header.api_key, header.api_version, header.correlation_id
        sess: SaslSession | None = getattr(client, "sasl", None)
        if sess is not None and (why := sess.refuse(api, time.monotonic())) is not None:
            # Kafka closes too: before authentication only ApiVersions and the SASL
            # requests, after an expired session (KIP-368) only a re-authentication
            self.stats[f"sasl_{why}"] += 1
            self._malformed.log(logging.INFO, "sasl refused", "closing connection from %s: "
                                "api %d (%s)", client.host, api, why)
            return False
        if api == API_VERSIONS and version > SUPPORTED_VERSIONS[API_VERSIONS][1]:
            # KIP-511: answer with a v0 body listing what we support, so the client retries
            writer.write(encode_response(API_VERSIONS, 0, corr, {
                "error_code": UNSUPPORTED_VERSION, "api_keys": self._api_keys()}))
            await writer.drain()
            return True
        lo_hi = SUPPORTED_VERSIONS.get(api)
        if lo_hi is None or not lo_hi[0] <= version <= lo_hi[1]:
            # UNSUPPORTED_VERSION where the response has a top-level error code; with no
            # layout to answer in, close (what Kafka does for every unsupported request)
            refusal = encode_refusal(api, version, corr, UNSUPPORTED_VERSION)
            if refusal is None:
                self._malformed.log(logging.WARNING, "unsupported api",
                                    "api %d v%d from %s is not implemented", api, version,
                                    client.host)
                return False
            writer.write(refusal)
            await writer.drain()
            return True
        self.versions_seen[api, version] += 1
        offload = len(frame) > self.limits.offload_request_bytes or api in _SLOW_APIS
        limit = self.limits.elements_for(api)
        try:
            decode = decode_request if api != ALTER_SCRAM else decode_alter_scram
            if offload:
                request = await asyncio.to_thread(decode, frame, limit)
            else:
                request = decode(frame, limit)
        except ProtocolError as e:
            self.stats["malformed_frames"] += 1
            self._malformed.log(logging.WARNING, "malformed frame",
                                "bad request (api %d v%d) from %s: %s", api, version,
                                client.host, e)
            return False
        t0, raised = time.perf_counter(), False
        body: dict | None = None
        try:
            if api == API_VERSIONS:
                body = self._api_versions(request.body, version, client)
            elif api in (SASL_HANDSHAKE, SASL_AUTHENTICATE):
                body, close = await sasl_request(sess, api, version, request.body, client)
                await self._write_response(writer, api, version, corr, body, client)
                return not close
            else:
                handler = self._table[api]
                if offload and not inspect.iscoroutinefunction(handler):
                    body = await asyncio.to_thread(handler, request.body, version, client)
                else:
                    result = handler(request.body, version, client)
                    body = await result if inspect.isawaitable(result) else result
            if body is None:
                return True  # acks=0 produce: no response at all
            if self.observer is not None:  # counted before the client can see its answer
                self.observer.request(api, time.perf_counter() - t0, body, raised)
                t0 = -1.0
            await self._write_response(writer, api, version, corr, body, client)
            return True
        except (ConnectionError, ServerStopping):
            return False
        except Exception:
            raised = True
            self.stats["handler_errors"] += 1
            self._malformed.log(logging.ERROR, "handler error",
                                "error handling api %d v%d from %s", api, version,
                                client.host, exc_info=True)
            return False
        finally:
            if self.observer is not None and t0 >= 0:
                self.observer.request(api, time.perf_counter() - t0, body, raised)

    def _api_keys(self) -> list[dict]:
        return [{"api_key": k, "min_version": lo, "max_version": hi}
                for k, (lo, hi) in sorted(SUPPORTED_VERSIONS.items())]

    def _api_versions(self, body: dict, version: int, client: ClientInfo) -> dict:
        """ApiVersions: v3+ record the client software (KIP-511) and describe features, v5+
        refuse a client that means another cluster or node (KIP-1242)."""
        if version >= 3:
            name = body.get("client_software_name", "")
            ver = body.get("client_software_version", "")
            if not (_SOFTWARE.fullmatch(name) and _SOFTWARE.fullmatch(ver)):
                return {"error_code": ErrorCode.INVALID_REQUEST, "api_keys": [],
                        "throttle_time_ms": 0, "finalized_features_epoch": -1}
            client.client_software_name, client.client_software_version = name, ver
        if version >= 5 and self.handlers is not None:
            cluster, node = body.get("cluster_id"), body.get("node_id", -1)
            if (cluster is not None and cluster != self.handlers.cluster_id) or \
                    node not in (-1, 0):
                return {"error_code": REBOOTSTRAP_REQUIRED, "api_keys": [],
                        "throttle_time_ms": 0, "finalized_features_epoch": -1}
        return {"error_code": 0, "api_keys": self._api_keys(), "throttle_time_ms": 0,
                "supported_features": [{"name": n, "min_version": lo, "max_version": hi}
                                       for n, (lo, hi, _f) in sorted(FEATURES.items())],
                "finalized_features_epoch": 0 if FEATURES else -1,
                "finalized_features": [{"name": n, "min_version_level": f,
                                        "max_version_level": f}
                                       for n, (_lo, _hi, f) in sorted(FEATURES.items())]}

    def client_software(self) -> Counter[tuple[str, str]]:
        """Open connections by the (name, version) their clients reported (KIP-511)."""
        return Counter((c.client_software_name, c.client_software_version)
                       for c in self._conns.values())

    async def _write_response(self, writer: asyncio.StreamWriter, api: int, version: int,
                              corr: int, body: dict, client: ClientInfo) -> None:
        chunks = encode_response_chunks(api, version, corr, body)
        conn = client if isinstance(client, _Conn) else None
        if conn is not None:
            conn.writing_since = time.monotonic()
        try:
            await self._write_chunks(writer, chunks)
        finally:
            if conn is not None:
                conn.writing_since = None

    async def _write_chunks(self, writer: asyncio.StreamWriter, chunks: list) -> None:
        loop = asyncio.get_running_loop()
        tls = writer.get_extra_info("ssl_object") is not None
        for chunk in chunks:
            if isinstance(chunk, LogSlice) and tls:
                # no zero-copy through TLS: the bytes are encrypted in user space (asyncio's
                # sendfile fallback swaps the SSL transport's protocol and stalls there)
                big = chunk.length > self.limits.offload_request_bytes
                writer.write(await asyncio.to_thread(chunk.read) if big else chunk.read())
            elif isinstance(chunk, LogSlice):
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
