"""pytest fixtures for "Kafka in tests" without Docker or a JVM (loaded automatically).

- ``logmq_log``: an open embedded log (:class:`logmq.Broker`) in a fresh temporary
  directory, closed after the test.
- ``logmq_server``: one :class:`~logmq.testing.LogMQServer` per test session (started on
  first use, stopped at the end), with ``bootstrap``, ``data_dir``, ``broker``,
  ``restart()`` and ``unique_topic()``.
- ``kafka_bootstrap``: its ``"127.0.0.1:PORT"``.
- ``kafka_topic``: a topic created for this test only, so tests sharing the server never
  see each other's records; ``@pytest.mark.logmq_topic(partitions=3, config={...})`` shapes it.

The session server's broker options come from the ``logmq_server_config`` fixture, which a
project overrides in its conftest.py (``return {"num_partitions": 3}``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import logmq
from logmq.testing.server import LogMQServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "logmq_topic(partitions=1, config=None): shape of the kafka_topic fixture")


@pytest.fixture
def logmq_log(tmp_path: Path) -> Iterator[logmq.Broker]:
    """An open embedded log in a fresh directory (``tmp_path / "logmq"``)."""
    log = logmq.open(os.path.join(tmp_path, "logmq"))
    try:
        yield log
    finally:
        log.close()


@pytest.fixture(scope="session")
def logmq_server_config() -> dict[str, Any]:
    """Broker options of the session server; override to change them."""
    return {}


@pytest.fixture(scope="session")
def logmq_server(tmp_path_factory: pytest.TempPathFactory,
                 logmq_server_config: dict[str, Any]) -> Iterator[LogMQServer]:
    """A logmq Kafka server for the whole session, on a free loopback port."""
    data = tmp_path_factory.mktemp("logmq-server")
    server = LogMQServer(data, **logmq_server_config).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _logmq_server_running(request: pytest.FixtureRequest) -> None:
    """A test that stopped the shared server (and failed before starting it) must not fail
    every later test: the server is started again before each test that uses it."""
    if "logmq_server" in request.fixturenames or "kafka_bootstrap" in request.fixturenames:
        server: LogMQServer = request.getfixturevalue("logmq_server")
        if not server.running:
            server.start()


@pytest.fixture(scope="session")
def kafka_bootstrap(logmq_server: LogMQServer) -> str:
    """``"127.0.0.1:PORT"`` of the session's logmq Kafka server."""
    return logmq_server.bootstrap


@pytest.fixture
def kafka_topic(request: pytest.FixtureRequest, logmq_server: LogMQServer) -> str:
    """A topic on the session server that exists for this test only."""
    marker = request.node.get_closest_marker("logmq_topic")
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    name = logmq_server.unique_topic(request.node.name)
    return logmq_server.create_topic(name, partitions=int(kwargs.get("partitions", 1)),
                                     config=kwargs.get("config"))
