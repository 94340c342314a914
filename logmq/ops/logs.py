"""``--log-level`` and ``--log-format text|json`` for ``logmq serve`` (and embedding apps).

JSON lines carry ``time`` (ISO-8601 UTC), ``level``, ``logger``, ``message``, the exception
text if any, and every structured field passed with ``extra={...}`` (``topic``,
``partition``, ``offset``, ``group``...), so a log shipper can index them without parsing
messages.

Repeated warnings about refused input (a misbehaving client sending garbage in a loop) must
not flood the log: :class:`RateLimit` lets through ``burst`` records per logger and message
template per ``window`` seconds and then one summary line with the number suppressed.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import IO, Any

__all__ = ["JsonFormatter", "RateLimit", "configure_logging", "LOG_FORMATS", "LOG_LEVELS"]

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# attributes every LogRecord has; anything else came from extra={...}
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime",
                                                                          "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line (no newline inside: tracebacks are one escaped string)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STANDARD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str)


class RateLimit(logging.Filter):
    """At most ``burst`` WARNING-or-lower records per (logger, template) per ``window`` s."""

    def __init__(self, burst: int = 10, window: float = 60.0) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], list[float]] = {}  # key -> [window start, count]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            slot = self._seen.get(key)
            if slot is None or now - slot[0] >= self.window:
                suppressed = int(slot[1]) - self.burst if slot is not None else 0
                self._seen[key] = [now, 1.0]
                if len(self._seen) > 10_000:  # bounded: forget the oldest windows
                    self._seen = dict(list(self._seen.items())[-5_000:])
                if suppressed > 0:
                    record.msg = f"{record.msg} ({suppressed} similar messages suppressed)"
                return True
            slot[1] += 1
            return slot[1] <= self.burst


def configure_logging(level: str = "info", fmt: str = "text", *,
                      stream: IO[str] | None = None) -> logging.Handler:
    """Send logmq's (and everything else's) records to ``stream`` (stderr) in ``fmt``."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RateLimit())
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_logmq", False):
            root.removeHandler(h)
    handler._logmq = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(lvl)
    return handler
