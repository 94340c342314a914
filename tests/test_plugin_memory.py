"""The pytest plugin's storage option: ``--logmq-storage=memory`` / ``logmq_storage = memory``."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

PLUGIN = "logmq.testing.pytest_plugin"

SOURCE = """
    import os

    def test_log(logmq_log):
        assert logmq_log.in_memory is {memory}
        logmq_log.create_topic("t")
        logmq_log.producer().send("t", b"v").result()
        assert logmq_log.end_offset(("t", 0)) == 1

    def test_server(logmq_server, kafka_topic):
        assert logmq_server.broker.in_memory is {memory}
        logmq_server.broker.producer().send(kafka_topic, b"v").result()

    def test_memory_log_always(logmq_memory_log):
        assert logmq_memory_log.in_memory
        with open(os.path.join(os.environ["LEFT"], "paths"), "a") as f:
            f.write(logmq_memory_log.path + "\\n")
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("LEFT", str(tmp_path))

    def go(memory: bool, *args: str) -> pytest.RunResult:
        pytester.makepyfile(SOURCE.format(memory=memory))
        return pytester.runpytest("-p", PLUGIN, "-q", *args)

    return go


def _left(tmp_path) -> list[str]:
    with open(tmp_path / "paths") as f:
        return [p for p in f.read().split() if p]


@pytest.mark.parametrize("args", [("--logmq-storage=memory",), ("-o", "logmq_storage=memory")])
def test_memory_storage_by_option_or_ini(run, tmp_path, args) -> None:
    run(True, *args).assert_outcomes(passed=3)
    import os

    assert all(not os.path.exists(p) for p in _left(tmp_path))


def test_disk_is_the_default(run) -> None:
    run(False).assert_outcomes(passed=3)


def test_a_bad_ini_value_is_a_usage_error(run) -> None:
    result = run(True, "-o", "logmq_storage=ram")
    assert "logmq_storage must be disk or memory" in result.stderr.str() + result.stdout.str()
