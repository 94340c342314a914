"""Fixtures shared by tests/test_flexible_*.py: an embedded server and raw wire clients."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

import logmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wire_util import RawClient, ThreadServer  # noqa: E402

__all__ = ["broker", "server", "c", "RawClient", "ThreadServer", "Z", "fetch_body"]

Z = b"\x00" * 16


@pytest.fixture
def broker(tmp_path) -> Iterator[logmq.Broker]:
    b = logmq.open(str(tmp_path / "data"))
    yield b
    b.close()


@pytest.fixture
def server(broker) -> Iterator[ThreadServer]:
    s = ThreadServer(broker)
    yield s
    s.close()


@pytest.fixture
def c(server) -> Iterator[RawClient]:
    cl = RawClient(server.host, server.port)
    yield cl
    cl.close()


def fetch_body(topics: list[dict], max_wait_ms: int = 0) -> dict:
    """A Fetch request body (any version: fields the version lacks are ignored)."""
    return {"replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": 1,
            "max_bytes": 1 << 20, "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": topics, "forgotten_topics_data": [], "rack_id": ""}


def fetch_partition(p: int, offset: int, last_fetched_epoch: int = -1) -> dict:
    return {"partition": p, "current_leader_epoch": -1, "fetch_offset": offset,
            "last_fetched_epoch": last_fetched_epoch, "log_start_offset": -1,
            "partition_max_bytes": 1 << 20}
