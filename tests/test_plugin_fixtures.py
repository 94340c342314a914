"""The pytest plugin, exercised the way a user's test suite would use it (via pytester)."""

from __future__ import annotations

import importlib.metadata
import os
import tomllib

import pytest

from tests.conftest import ROOT

pytest_plugins = ["pytester"]

PLUGIN = "logmq.testing.pytest_plugin"


def _installed_entry_point() -> bool:
    return any(ep.value == PLUGIN for ep in importlib.metadata.entry_points(group="pytest11"))


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Run pytest in-process on the given test file with the plugin loaded explicitly."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # no double registration

    def go(source: str, *args: str) -> pytest.RunResult:
        pytester.makepyfile(source)
        return pytester.runpytest("-p", PLUGIN, "-q", *args)

    return go


def test_pyproject_registers_the_plugin() -> None:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        eps = tomllib.load(f)["project"]["entry-points"]["pytest11"]
    assert PLUGIN in eps.values()


def test_entry_point_loads_without_p_option(pytester: pytest.Pytester) -> None:
    if not _installed_entry_point():
        if os.environ.get("CI"):
            pytest.fail("logmq is installed without its pytest11 entry point")
        pytest.skip("logmq's entry points are not installed here (pip install -e . does it)")
    pytester.makepyfile("""
        def test_it(logmq_log):
            logmq_log.create_topic("t")
            assert logmq_log.list_topics() == ["t"]
    """)
    pytester.runpytest("-q").assert_outcomes(passed=1)


def test_logmq_log_is_fresh_per_test(run) -> None:
    result = run("""
        import pytest

        @pytest.mark.parametrize("i", range(3))
        def test_fresh(logmq_log, i):
            assert logmq_log.list_topics() == []   # nothing left over from the last test
            logmq_log.create_topic("orders", partitions=2)
            with logmq_log.producer() as p:
                md = p.send("orders", b"v", key=b"k").result()
            assert md.offset == 0
    """)
    result.assert_outcomes(passed=3)


def test_server_is_shared_and_topics_isolate(run) -> None:
    result = run("""
        from confluent_kafka import Consumer, Producer

        SEEN = set()

        def roundtrip(bootstrap, topic, n):
            p = Producer({"bootstrap.servers": bootstrap})
            for i in range(n):
                p.produce(topic, str(i).encode())
            assert p.flush(10) == 0
            c = Consumer({"bootstrap.servers": bootstrap, "group.id": topic,
                          "auto.offset.reset": "earliest"})
            c.subscribe([topic])
            got = []
            import time
            deadline = time.monotonic() + 20
            while len(got) < n and time.monotonic() < deadline:
                m = c.poll(0.2)
                if m is not None and not m.error():
                    got.append(m.value())
            c.close()
            return got

        def test_a(kafka_bootstrap, kafka_topic, logmq_server):
            SEEN.add((kafka_bootstrap, logmq_server.data_dir))
            assert roundtrip(kafka_bootstrap, kafka_topic, 3) == [b"0", b"1", b"2"]

        def test_b(kafka_bootstrap, kafka_topic, logmq_server):
            SEEN.add((kafka_bootstrap, logmq_server.data_dir))
            assert roundtrip(kafka_bootstrap, kafka_topic, 2) == [b"0", b"1"]  # not test_a's
            assert len(SEEN) == 1                                             # one server

        def test_kafka_topic_exists(logmq_server, kafka_topic):
            assert kafka_topic in logmq_server.broker.list_topics()
            assert kafka_topic.startswith("test_kafka_topic_exists-")
    """)
    result.assert_outcomes(passed=3)


def test_marker_shapes_the_topic(run) -> None:
    result = run("""
        import pytest

        @pytest.mark.logmq_topic(partitions=3, config={"cleanup.policy": "compact"})
        def test_it(logmq_server, kafka_topic):
            d = logmq_server.broker.describe_topic(kafka_topic)
            assert len(d.partitions) == 3
            assert d.config["cleanup.policy"] == "compact"
    """)
    result.assert_outcomes(passed=1)


def test_restart_keeps_data_and_address(run) -> None:
    result = run("""
        import time
        from kafka import KafkaConsumer, KafkaProducer

        def test_restart(logmq_server, kafka_topic):
            before = logmq_server.bootstrap
            p = KafkaProducer(bootstrap_servers=before)
            p.send(kafka_topic, b"before").get(10)
            logmq_server.restart()
            assert logmq_server.bootstrap == before
            # the same producer reconnects to the restarted broker
            p.send(kafka_topic, b"after").get(30)
            p.close()
            assert logmq_server.broker.end_offset((kafka_topic, 0)) == 2
            c = KafkaConsumer(kafka_topic, bootstrap_servers=before,
                              auto_offset_reset="earliest", consumer_timeout_ms=20000)
            got = []
            for m in c:
                got.append(m.value)
                if len(got) == 2:
                    break
            assert got == [b"before", b"after"]
            c.close()
    """)
    result.assert_outcomes(passed=1)


def test_a_stopped_server_is_running_again_for_the_next_test(run) -> None:
    result = run("""
        def test_stops_and_fails(logmq_server):
            logmq_server.stop()
            assert False, "failed before starting it again"

        def test_next(logmq_server, kafka_topic):
            assert logmq_server.running
            with logmq_server.broker.producer() as p:
                assert p.send(kafka_topic, b"x").result().offset == 0
    """)
    result.assert_outcomes(passed=1, failed=1)


def test_a_projects_own_fixture_of_that_name_is_left_alone(run, pytester) -> None:
    """A conftest may define ``logmq_server`` itself (logmq's own oracle suite does): the
    plugin's restart-before-each-test hook must not treat that object as its server."""
    pytester.makeconftest("""
        import pytest

        class Other:
            bootstrap = "127.0.0.1:1"

        @pytest.fixture(scope="session")
        def logmq_server():
            return Other()
    """)
    result = run("""
        def test_it(logmq_server, kafka_bootstrap):
            assert kafka_bootstrap == "127.0.0.1:1"
    """)
    result.assert_outcomes(passed=1)


def test_server_config_fixture_override(run, pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import pytest

        @pytest.fixture(scope="session")
        def logmq_server_config():
            return {"num_partitions": 4}
    """)
    result = run("""
        from logmq.client import WireClient

        def test_auto_created(kafka_bootstrap, logmq_server):
            name = logmq_server.unique_topic("auto")
            with WireClient(kafka_bootstrap) as c:
                c.metadata([name], create=True)
            assert logmq_server.broker.partitions_for(name) == 4
    """)
    result.assert_outcomes(passed=1)


def test_server_is_stopped_at_session_end(run, tmp_path) -> None:
    marker = tmp_path / "addr"
    result = run(f"""
        def test_it(kafka_bootstrap):
            open({str(marker)!r}, "w").write(kafka_bootstrap)
    """)
    result.assert_outcomes(passed=1)
    import socket

    host, port = marker.read_text().rsplit(":", 1)
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=2).close()


def test_unique_topic_names_are_valid_and_distinct() -> None:
    from logmq.broker.broker import validate_topic_name
    from logmq.testing import unique_topic_name

    names = {unique_topic_name("test_x[param 1/2]") for _ in range(100)}
    assert len(names) == 100
    for n in names:
        validate_topic_name(n)
