"""The fixed script every differential scenario follows, whatever the client.

Why one script: the tests compare what one client observes against Apache Kafka and against
logmq, so both runs must do exactly the same thing; sharing the data (keys, headers and
deliberately non-monotonic timestamps) across clients also makes the compatibility matrix
read as one table. Each program prints ``{"client": ..., "ops": {op: observation}}`` on
stdout; an observation that failed is ``{"error": NAME}`` so one broken call does not hide the
rest.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

PARTITIONS = 2
BASE_TS = 1_700_000_000_000
#: record i goes to partition i % 2 with timestamp BASE_TS + TS_DELTAS[i]: partition 0 holds
#: deltas 0, 9000, 3000 and partition 1 5000, 1000, 2000, so the max timestamp is never at the
#: last offset and "first offset at or after BASE_TS + 2500" differs per partition.
TS_DELTAS = [0, 5000, 9000, 1000, 3000, 2000]
BY_TIME_TARGET = BASE_TS + 2500
FUTURE_TARGET = BASE_TS + 10**9


def record(i: int) -> tuple[int, bytes, bytes, list[tuple[str, bytes]], int]:
    """(partition, key, value, headers, timestamp) of the i-th record."""
    return (i % PARTITIONS, b"k%d" % i, b"v%d" % i, [("h", b"%d" % i), ("n", b"x")],
            BASE_TS + TS_DELTAS[i])


N_RECORDS = len(TS_DELTAS)

#: config names whose described values the scenarios compare (topic scope)
CONFIG_KEYS = ["cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes",
               "max.message.bytes", "message.timestamp.type", "compression.type",
               "min.insync.replicas", "min.compaction.lag.ms", "delete.retention.ms", "flush.messages",
               "flush.ms"]


def args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--prefix", required=True, help="unique per run: topic/group names")
    return ap.parse_args()


def error_name(exc: BaseException) -> str:
    """The most specific name a client gives an error: Kafka's code name where it has one."""
    for attr in ("name", "errno"):
        val = getattr(exc, attr, None)
        if callable(val):
            try:
                val = val()
            except Exception:
                val = None
        if isinstance(val, str) and val:
            return val
    if exc.args and hasattr(exc.args[0], "name") and callable(exc.args[0].name):
        return str(exc.args[0].name())
    return type(exc).__name__


class Recorder:
    """Runs each op, catching its failure as an observation; prints the JSON at the end."""

    def __init__(self, client: str) -> None:
        self.client = client
        self.ops: dict[str, Any] = {}
        self.trace: dict[str, str] = {}

    def op(self, name: str, fn: Callable[[], Any]) -> Any:
        try:
            val = fn()
        except Exception as e:  # an error *is* the observation
            val = {"error": error_name(e)}
            self.trace[name] = traceback.format_exc(limit=3)
        self.ops[name] = val
        return val

    def dump(self) -> None:
        json.dump({"client": self.client, "ops": self.ops}, sys.stdout, sort_keys=True,
                  default=_json_default)
        sys.stdout.write("\n")
        for name, tb in self.trace.items():
            print(f"--- {name}\n{tb}", file=sys.stderr)


def _json_default(o: object) -> object:
    if isinstance(o, bytes):
        return o.decode(errors="replace")
    return str(o)


def poll_until(fn: Callable[[], Any], ok: Callable[[Any], bool], timeout: float = 15.0,
               interval: float = 0.2) -> Any:
    """Call ``fn`` until ``ok(result)`` or the deadline; returns the last result either way."""
    deadline = time.monotonic() + timeout
    while True:
        val = fn()
        if ok(val) or time.monotonic() > deadline:
            return val
        time.sleep(interval)  # bounded polling interval, not synchronization
