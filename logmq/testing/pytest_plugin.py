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

Storage: ``--logmq-storage=memory`` (or ``logmq_storage = memory`` in the ini file) puts
``logmq_log`` and the session server on ``logmq.open(":memory:")``: never fsynced, removed on
close. ``logmq_server.restart()`` then starts from an empty log, so tests of data surviving a
restart need the default, ``disk``. ``logmq_memory_log`` is in memory whatever the option.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import logmq
from logmq.testing.server import LogMQServer

STORAGES = ("disk", "memory")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("logmq")
    group.addoption("--logmq-storage", choices=STORAGES, default=None,
                    help="where the logmq_log and logmq_server fixtures keep their data: "
                         "disk (a temporary directory, default) or memory (:memory:)")
    parser.addini("logmq_storage", "disk or memory: the default of --logmq-storage",
                  default="disk")


def _storage(config: pytest.Config) -> str:
    value = config.getoption("--logmq-storage") or config.getini("logmq_storage") or "disk"
    if value not in STORAGES:
        raise pytest.UsageError(f"logmq_storage must be disk or memory, not {value!r}")
    return str(value)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "logmq_topic(partitions=1, config=None): shape of the kafka_topic fixture")


@pytest.fixture
def logmq_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[logmq.Broker]:
    """An open embedded log in a fresh directory (``tmp_path / "logmq"``, or ``:memory:``)."""
    memory = _storage(request.config) == "memory"
    log = logmq.open(":memory:" if memory else os.path.join(tmp_path, "logmq"))
    try:
        yield log
    finally:
        log.close()


@pytest.fixture
def logmq_memory_log() -> Iterator[logmq.Broker]:
    """An open embedded log in memory (``logmq.open(":memory:")``), gone after the test."""
    log = logmq.open(":memory:")
    try:
        yield log
    finally:
        log.close()


@pytest.fixture(scope="session")
def logmq_server_config() -> dict[str, Any]:
    """Broker options of the session server; override to change them."""
    return {}


@pytest.fixture(scope="session")
def logmq_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 logmq_server_config: dict[str, Any]) -> Iterator[LogMQServer]:
    """A logmq Kafka server for the whole session, on a free loopback port."""
    memory = _storage(request.config) == "memory"
    data = ":memory:" if memory else tmp_path_factory.mktemp("logmq-server")
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
        server = request.getfixturevalue("logmq_server")
        # a project's own conftest may define fixtures of these names (logmq's oracle suite
        # does): leave those alone
        if isinstance(server, LogMQServer) and not server.running:
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
