"""The audit log: who did what to the data directory's security and data, from where, when.

One JSON object a line (``time`` in ISO-8601 UTC with milliseconds, ``event``, ``principal``,
``peer``, ``outcome`` and the event's details), appended to a file created 0600 and flushed
per entry, so an entry written is an entry kept even if the process is killed next. Events
(their names are stable, tools grep them): ``authenticate``, ``acl.create``, ``acl.delete``,
``user.alter``, ``topic.create``, ``topic.delete``, ``topic.alter``, ``partitions.create``,
``records.delete``, ``offsets.commit`` (only resets by an admin client: commits of a group
without members), ``offsets.delete``, ``group.delete``, ``quota.alter``.
``outcome`` is ``ok``, ``denied`` (the authorizer refused) or ``error:<KAFKA_CODE>``.

On by default when the authorizer is on (``audit_log`` unset: ``DATA/audit.jsonl``), off
otherwise. With ``audit_topic`` set, the same lines are also records of that topic (key: the
event), so they can be consumed and mirrored like any other data. Surfaces call :meth:`Audit.record`; the SASL layer calls it for authentication
outcomes.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import threading
from collections.abc import Callable
from typing import IO, Any

__all__ = ["Audit", "audit_path"]

log = logging.getLogger("logmq.audit")


def audit_path(setting: str | None, data: str, authorizer: bool) -> str | None:
    """Where ``audit_log`` (a BrokerConfig key) sends entries; None when off."""
    if setting is None:
        if not authorizer or data.startswith(":memory:"):
            return None
        return os.path.join(data, "audit.jsonl")
    if setting.strip().lower() in ("off", "none", "false", ""):
        return None
    return setting


class Audit:
    """Appends audit entries to ``path`` and/or hands them to ``sink(event, line)`` (the
    server's audit topic); with neither, entries are dropped and :attr:`enabled` is False."""

    def __init__(self, path: str | None,
                 sink: Callable[[str, bytes], None] | None = None) -> None:
        self.path = path
        self.sink = sink
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        if path is not None:
            parent = os.path.dirname(os.path.abspath(path))
            os.makedirs(parent, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._file = os.fdopen(fd, "a", encoding="utf-8")

    @property
    def enabled(self) -> bool:
        return self._file is not None or self.sink is not None

    def record(self, event: str, principal: str, peer: str, outcome: str,
               **details: Any) -> None:
        """Append one entry. Never raises: an audit file that cannot be written is logged
        (the request it describes has happened already)."""
        if not self.enabled:
            return
        now = _dt.datetime.now(_dt.UTC)
        entry = {"time": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                 "event": event, "principal": principal, "peer": peer, "outcome": outcome}
        entry.update(details)
        line = json.dumps(entry, default=str, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                if self._file is not None:
                    self._file.write(line)
                    self._file.flush()
            except (OSError, ValueError) as e:
                log.error("audit log %s: cannot append (%s): %s", self.path, e, line.strip())
            if self.sink is not None:
                try:
                    self.sink(event, line.rstrip("\n").encode())
                except Exception as e:  # noqa: BLE001 - the audited request happened anyway
                    log.error("audit topic: cannot append (%s): %s", e, line.strip())

    def close(self) -> None:
        with self._lock:
            self.sink = None
            if self._file is not None:
                self._file.close()
                self._file = None
