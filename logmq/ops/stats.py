"""The few figures that must be counted as things happen: requests, refusals, fsyncs.

They sit on the Kafka path, so they are plain Python counters updated by the one thread that
does the work (the server's event loop; the fsync callers), with no lock and no
prometheus-client call per request: a request costs one ``perf_counter`` pair, a ``bisect``
and a few integer additions. The Prometheus side (:mod:`logmq.ops.metrics`) turns them into
metric families when scraped. Labels are bounded by construction: an API name (one of the
~20 the server speaks), a Kafka error name, a topic that exists.
"""

from __future__ import annotations

import threading
import time
import weakref
from bisect import bisect_left
from typing import Any

from logmq.protocol import API_NAMES
from logmq.protocol.errors import ERROR_NAMES

__all__ = ["Histogram", "ServerStats", "FSYNC", "install_fsync_observer", "server_stats_of",
           "attach_server_stats",
           "REQUEST_BUCKETS", "FSYNC_BUCKETS"]

#: seconds; a Kafka request is ~100 us when nothing waits, up to max_wait_ms for a long poll
REQUEST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: seconds; fdatasync of a segment is tens of microseconds on tmpfs, milliseconds on disks
FSYNC_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                 0.1, 0.25, 0.5, 1.0)


class Histogram:
    """Cumulative-at-read histogram: per-bucket counts, their sum and count."""

    __slots__ = ("bounds", "buckets", "count", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, count) pairs as Prometheus wants them, ending with +Inf."""
        out = []
        acc = 0
        for bound, n in zip((*self.bounds, float("inf")), self.buckets, strict=True):
            acc += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), acc))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "sum": self.total,
                "buckets": dict(self.cumulative())}


class _FsyncHistogram(Histogram):
    """Fsyncs come from several threads (appenders, the flusher): one lock around observe."""

    __slots__ = ("_lock",)

    def __init__(self, bounds: tuple[float, ...]) -> None:
        super().__init__(bounds)
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            Histogram.observe(self, value)


#: every segment data fsync of this process, once :func:`install_fsync_observer` ran
FSYNC = _FsyncHistogram(FSYNC_BUCKETS)


def install_fsync_observer() -> None:
    """Time segment fsyncs from now on (process-wide; idempotent)."""
    from logmq.storage import fsutil

    if getattr(fsutil, "fsync_observer", None) is None:
        fsutil.fsync_observer = FSYNC.observe


def api_name(api: int) -> str:
    return API_NAMES.get(api, f"api_{api}")


class ServerStats:
    """What the Kafka server reports per request (``KafkaServer(observer=...)``).

    ``request`` is called once per answered request from the event loop thread, so plain
    dict updates are safe. ``error`` is the response's top-level Kafka error name, ``"none"``,
    or ``"exception"`` when the handler raised (the connection is then closed).
    """

    def __init__(self) -> None:
        self.durations: dict[str, Histogram] = {}
        self.requests: dict[tuple[str, str], int] = {}
        self.refused: dict[str, int] = {}
        self.server: Any = None  # the KafkaServer, for the connection count at read time
        self.started = time.time()

    def request(self, api: int, seconds: float, body: dict | None, raised: bool) -> None:
        name = api_name(api)
        h = self.durations.get(name)
        if h is None:
            h = self.durations[name] = Histogram(REQUEST_BUCKETS)
        h.observe(seconds)
        if raised:
            error = "exception"
        elif body is None:
            error = "none"
        else:
            code = body.get("error_code", 0)
            error = ERROR_NAMES.get(code, str(code)).lower() if code else "none"
            if api == 0:
                self._produce_errors(body)
        key = (name, error)
        self.requests[key] = self.requests.get(key, 0) + 1

    def _produce_errors(self, body: dict) -> None:
        for t in body.get("responses", ()):
            for p in t.get("partition_responses", ()):
                code = p.get("error_code", 0)
                if code:
                    reason = ERROR_NAMES.get(code, str(code)).lower()
                    self.refused[reason] = self.refused.get(reason, 0) + 1

    def refuse(self, reason: str) -> None:
        """A batch or request refused before any handler ran (bounded ``reason`` strings)."""
        self.refused[reason] = self.refused.get(reason, 0) + 1

    @property
    def connections(self) -> int:
        srv = self.server
        return srv.connection_count if srv is not None else 0

    def as_dict(self) -> dict[str, Any]:
        requests: dict[str, dict[str, int]] = {}
        for (api, err), n in sorted(self.requests.copy().items()):  # copy: atomic under the GIL
            requests.setdefault(api, {})[err] = n
        return {"connections": self.connections, "requests": requests,
                "refused_batches": dict(sorted(self.refused.copy().items())),
                "request_duration_seconds": {k: v.as_dict()
                                             for k, v in sorted(self.durations.copy().items())}}


_SERVED: weakref.WeakKeyDictionary[Any, ServerStats] = weakref.WeakKeyDictionary()


def attach_server_stats(broker: Any, stats: ServerStats) -> None:
    """Say that ``broker`` is served by a Kafka server counting into ``stats``."""
    _SERVED[broker] = stats


def server_stats_of(broker: Any) -> ServerStats | None:
    return _SERVED.get(broker)
