"""Helpers of the ops tests: a server with --http, scraping and parsing /metrics."""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_util import ServerProcess  # noqa: E402

__all__ = ["ServerProcess", "http_address", "get", "get_json", "scrape", "sample", "wait_for"]


def http_address(srv: ServerProcess) -> str:
    for line in srv.lines:
        m = re.search(r"http \(metrics.*?\) on http://([\d.]+):(\d+)/", line)
        if m:
            return f"{m.group(1)}:{m.group(2)}"
    raise AssertionError("no http listener in the server's log:\n" + "".join(srv.lines))


def get(addr: str, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def get_json(addr: str, path: str) -> tuple[int, Any]:
    status, body = get(addr, path)
    return status, json.loads(body)


def scrape(addr: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of one /metrics scrape."""
    status, body = get(addr, "/metrics")
    assert status == 200
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(metrics: dict, name: str, **labels: str) -> float | None:
    return metrics.get((name, tuple(sorted(labels.items()))))


def wait_for(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``cond`` until truthy (bounded): the tests' only way to wait."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
