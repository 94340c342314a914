"""``logmq serve --http HOST:PORT``: metrics, health, a read-only JSON API and a dashboard.

A stdlib ``ThreadingHTTPServer`` in its own daemon threads, not on the Kafka event loop: a
slow scrape or a dashboard left open never delays a produce or a fetch (they only share the
GIL), and there is no extra dependency. It starts *before* the data directory is opened, so
``/readyz`` can say 503 while recovery runs; readiness then follows the server's phases:

    recovering -> starting listeners -> ready -> shutting down

Routes (all GET; anything else is 405, nothing here writes):

- ``/metrics``: Prometheus text format (:mod:`logmq.ops.metrics`) plus process metrics
- ``/healthz``: the process and the Kafka event loop answer (a callback scheduled on the loop
  runs within ``loop_timeout`` seconds)
- ``/readyz``: recovery finished, Kafka listener up, data directory writable
- ``/api/v1/overview``, ``/topics``, ``/topics/<name>``, ``/groups``, ``/groups/<id>``,
  ``/queues``, ``/config``, ``/warnings``, ``/metrics``, ``/history``
- ``/``: the dashboard (``logmq/ops/static``)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from logmq.ops import figures
from logmq.ops.http_auth import OPEN_PATHS, HttpAuth, TokenStore
from logmq.ops.stats import ServerStats, attach_server_stats

if TYPE_CHECKING:
    from logmq.broker.broker import Broker

__all__ = ["OpsHttpServer", "RecentWarnings", "DEFAULT_HISTORY", "DEFAULT_SAMPLE_INTERVAL"]

log = logging.getLogger("logmq.ops")

#: seconds between the history samples the dashboard draws
DEFAULT_SAMPLE_INTERVAL = 2.0
#: samples kept (10 minutes at the default interval)
DEFAULT_HISTORY = 300
#: warnings kept for /api/v1/warnings
DEFAULT_WARNINGS = 200

_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


class RecentWarnings(logging.Handler):
    """The last ``capacity`` WARNING-or-worse records of the ``logmq`` loggers."""

    def __init__(self, capacity: int = DEFAULT_WARNINGS) -> None:
        super().__init__(logging.WARNING)
        self.records: deque[dict[str, Any]] = deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append({"time": record.created, "level": record.levelname,
                                 "logger": record.name, "message": record.getMessage()})
        except Exception:  # noqa: BLE001 - a logging handler must never raise
            self.handleError(record)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        log.debug("http %s " + format, self.client_address[0], *args)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, default=str).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - stdlib's name
        ops = self.server.ops
        path = urlsplit(self.path).path
        try:
            principal = None
            if ops.require_auth and path not in OPEN_PATHS and path not in (
                    "/", "/index.html") and not path.startswith("/static/"):
                # the Kafka port's principals and ACLs (logmq/ops/http_auth.py)
                status, principal, why = ops.gate(self.headers.get("Authorization"),
                                                  self.client_address[0], path)
                if status != 200:
                    self._refused(status, why)
                    return
            if path == "/metrics":
                from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

                self._send(200, generate_latest(ops.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok, reason = ops.health()
                self._json(200 if ok else 503, {"status": "ok" if ok else "fail",
                                                "reason": reason})
            elif path == "/readyz":
                ok, reason = ops.readiness()
                self._json(200 if ok else 503, {"status": "ready" if ok else "not ready",
                                                "reason": reason, "phase": ops.phase})
            elif path.startswith("/api/v1/"):
                route = path[len("/api/v1/"):].strip("/")
                status, obj = ops.api(route)
                if principal is not None and ops.auth is not None and status == 200:
                    obj = ops.auth.filter(principal, self.client_address[0],
                                          [unquote(p) for p in route.split("/")], obj)
                self._json(status, obj)
            elif path in ("/", "/index.html") or path.startswith("/static/"):
                self._static("index.html" if path in ("/", "/index.html")
                             else path[len("/static/"):])
            else:
                self._json(404, {"error": f"no such page: {path}"})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # noqa: BLE001 - one bad page must not end the listener
            log.exception("http %s failed", path)
            self._json(500, {"error": f"{type(e).__name__}: {e}"})

    do_HEAD = do_GET

    def _refused(self, status: int, why: str) -> None:
        body = json.dumps({"error": why}).encode()
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="logmq", charset="UTF-8"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self) -> None:
        self._json(405, {"error": "read-only: only GET is served"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    def _static(self, name: str) -> None:
        if "/" in name or name.startswith(".") or os.path.splitext(name)[1] not in _STATIC_TYPES:
            self._json(404, {"error": f"no such file: {name}"})
            return
        try:
            data = resources.files("logmq.ops").joinpath("static", name).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            self._json(404, {"error": f"no such file: {name}"})
            return
        self._send(200, data, _STATIC_TYPES[os.path.splitext(name)[1]])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    ops: OpsHttpServer


class OpsHttpServer:
    """The HTTP listener and the readiness state it reports; see the module docstring."""

    def __init__(self, listen: tuple[str, int], data: str | None = None, *,
                 sample_interval: float = DEFAULT_SAMPLE_INTERVAL,
                 history: int = DEFAULT_HISTORY, loop_timeout: float = 2.0) -> None:
        from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

        self.data = data
        self.broker: Broker | None = None
        self.kafka: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.phase = "recovering"
        self.stats = ServerStats()
        self.started = time.time()
        self.sample_interval = sample_interval
        self.loop_timeout = loop_timeout
        self.history: deque[dict[str, Any]] = deque(maxlen=history)
        self.warnings = RecentWarnings()
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        try:
            self._httpd = _Server(listen, _Handler)  # binds now: a taken port fails here
        except OSError as e:
            raise OSError(e.errno, f"{e.strerror} ({listen[0]}:{listen[1]}, --http)") from None
        self._httpd.ops = self
        self.address: tuple[str, int] = self._httpd.server_address[:2]  # type: ignore[assignment]
        self._thread: threading.Thread | None = None
        #: with the Kafka port's authorizer on: credentials and ACLs on every data route
        self.require_auth = False
        self.auth: HttpAuth | None = None

    def gate(self, header: str | None, host: str, path: str) -> tuple[int, str | None, str]:
        """(HTTP status, principal, reason) of a request to a guarded route."""
        auth = self.auth
        if auth is None:
            return 503, None, f"not ready: {self.phase}"
        principal = auth.authenticate(header, host)
        if principal is None:
            return 401, None, "authentication required (Bearer token, or Basic)"
        parts = ["metrics"] if path == "/metrics" else [
            unquote(p) for p in path[len("/api/v1/"):].strip("/").split("/")]
        if not auth.check_route(principal, host, parts):
            return 403, principal, f"{principal} may not read {path}"
        return 200, principal, ""

    @property
    def hostport(self) -> str:
        """``HOST:PORT`` actually bound (the port is the OS's pick when asked for 0)."""
        return f"{self.address[0]}:{self.address[1]}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> OpsHttpServer:
        logging.getLogger("logmq").addHandler(self.warnings)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="logmq-http",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        log.info("http (metrics, health, admin API, dashboard) on http://%s:%d/",
                 *self.address)
        return self

    def attach_broker(self, broker: Broker) -> None:
        """Recovery is over: the directory is open."""
        from logmq.ops.metrics import BrokerCollector

        self.broker = broker
        self.require_auth = bool(getattr(broker.config, "authorizer", False))
        attach_server_stats(broker, self.stats)
        self.registry.register(BrokerCollector(broker, self.stats))
        self.phase = "starting listeners"
        self._sampler = threading.Thread(target=self._sample_loop, name="logmq-http-sampler",
                                         daemon=True)
        self._sampler.start()

    def serving(self, kafka: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """The Kafka listener is up (``kafka`` is the KafkaServer)."""
        self.kafka = kafka
        security = getattr(kafka, "security", None)
        if self.broker is not None and security is not None and security.authorizer:
            self.auth = HttpAuth(TokenStore(self.broker.meta.env), security.authorizer,
                                 security.audit)
        self.stats.server = kafka
        self.loop = loop
        self.phase = "ready"

    def stopping(self) -> None:
        self.phase = "shutting down"

    def close(self) -> None:
        self.phase = "shutting down"
        self._stop.set()
        if self._thread is not None:  # shutdown() waits for serve_forever: only if it runs
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()
        if self._sampler is not None:
            self._sampler.join(timeout=5)
        logging.getLogger("logmq").removeHandler(self.warnings)

    # ------------------------------------------------------------------ health
    def health(self) -> tuple[bool, str]:
        loop = self.loop
        if loop is None or loop.is_closed():
            return True, "process alive (no event loop yet)" if loop is None else "stopped"
        answered = threading.Event()
        try:
            loop.call_soon_threadsafe(answered.set)
        except RuntimeError:
            return True, "event loop stopped"
        if not answered.wait(self.loop_timeout):
            return False, f"event loop did not answer within {self.loop_timeout:g} s"
        return True, "process alive, event loop responsive"

    def readiness(self) -> tuple[bool, str]:
        if self.phase == "recovering":
            return False, "opening the data directory (recovery in progress)"
        if self.phase != "ready":
            return False, self.phase
        broker = self.broker
        if broker is None or broker.closed:
            return False, "data directory closed"
        probe = os.path.join(broker.path, ".readyz-probe")
        try:
            with open(probe, "wb") as f:
                f.write(b"ok")
            os.unlink(probe)
        except OSError as e:
            return False, f"data directory not writable: {e}"
        return True, "recovery finished, listeners up, disk writable"

    # ------------------------------------------------------------------ history
    def _sample(self) -> dict[str, Any]:
        b = self.broker
        assert b is not None
        return {"time": time.time(), "topics": figures.topic_totals(b),
                "groups": {g["group_id"]: g["lag"] for g in figures.groups(b, members=False)},
                "queues": figures.queue_depths(b)}

    def _sample_loop(self) -> None:
        while not self._stop.is_set():
            b = self.broker
            if b is None or b.closed:
                break
            try:
                self.history.append(self._sample())
            except Exception:  # noqa: BLE001 - a topic deleted mid-sample: try again later
                log.debug("history sample failed", exc_info=True)
            self._stop.wait(self.sample_interval)

    # ------------------------------------------------------------------ JSON API
    def config(self) -> dict[str, Any]:
        b = self.broker
        out: dict[str, Any] = {"data": self.data, "http": self.hostport,
                               "phase": self.phase}
        if self.kafka is not None:
            adv = getattr(self.kafka, "advertised_host", None) or self.kafka.host
            adv_port = getattr(self.kafka, "advertised_port", None) or self.kafka.port
            out["listen"] = f"{self.kafka.host}:{self.kafka.port}"
            out["advertised"] = f"{adv}:{adv_port}"
            out["max_request_size"] = self.kafka.max_request_size
        if b is not None:
            out.update(path=b.path, num_partitions=b.num_partitions,
                       auto_create_topics=b.auto_create_topics,
                       topic_defaults=dict(b.defaults))
        return out

    def overview(self) -> dict[str, Any]:
        from logmq import __version__

        b = self.broker
        ready, reason = self.readiness()
        out: dict[str, Any] = {"version": __version__, "uptime_seconds": time.time() - self.started,
                               "ready": ready, "reason": reason, "config": self.config(),
                               "warnings": len(self.warnings.records)}
        if b is not None and not b.closed:
            out["storage"] = figures.storage(b)
            out["topics"] = [{k: v for k, v in t.items() if k != "partitions"}
                             | {"partitions": len(t["partitions"])}
                             for t in figures.topics(b, configs=False)]
            out["groups"] = figures.groups(b, members=False)
            out["queues"] = figures.queues(b)
            out["cleaner"] = figures.cleaner(b)
            out["server"] = self.stats.as_dict()
        return out

    def api(self, route: str) -> tuple[int, Any]:
        from logmq.errors import UnknownTopicError

        parts = [unquote(p) for p in route.split("/")] if route else []
        if parts == ["overview"]:
            return 200, self.overview()
        if parts == ["config"]:
            return 200, self.config()
        if parts == ["warnings"]:
            return 200, list(self.warnings.records)
        if parts == ["history"]:
            return 200, {"interval": self.sample_interval, "samples": list(self.history)}
        b = self.broker
        if b is None or b.closed:
            return 503, {"error": f"not ready: {self.phase}"}
        if parts == ["topics"]:
            return 200, figures.topics(b)
        if len(parts) == 2 and parts[0] == "topics":
            try:
                return 200, figures.topic(b, parts[1])
            except UnknownTopicError:
                return 404, {"error": f"unknown topic {parts[1]!r}"}
        if parts == ["groups"]:
            return 200, figures.groups(b)
        if len(parts) == 2 and parts[0] == "groups":
            g = figures.group(b, parts[1])
            return (404, {"error": f"unknown group {parts[1]!r}"}) if g["state"] == "Dead" \
                else (200, g)
        if parts == ["queues"]:
            return 200, figures.queues(b, load=True)
        if parts == ["metrics"]:
            return 200, figures.snapshot(b, server=self.stats)
        return 404, {"error": f"no such API: /api/v1/{route}"}
