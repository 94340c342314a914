"""CLI fixes from issue 16: each test fails on the behaviour the issue reported."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

import logmq
from logmq.cli import cli
from logmq.testing import LogMQServer


def invoke(*args: str, stdin: str | None = None, code: int = 0):
    r = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)
    assert r.exit_code == code, (r.exit_code, r.output)
    return r


@pytest.fixture
def server(tmp_path):
    with LogMQServer(tmp_path / "served") as s:
        yield s


def test_create_topic_exist_ok(tmp_path):
    with logmq.open(tmp_path / "d") as log:
        log.create_topic("t", partitions=2, config={"retention.ms": 1000})
        with pytest.raises(logmq.errors.TopicExistsError):
            log.create_topic("t")
        d = log.create_topic("t", partitions=5, exist_ok=True)   # left as it is
        assert len(d.partitions) == 2 and d.overrides == {"retention.ms": 1000}


def test_topics_create_if_not_exists(tmp_path):
    data = str(tmp_path / "d")
    invoke("topics", "create", "t", "-p", "2", "--data", data)
    r = invoke("topics", "create", "t", "--data", data, code=1)
    assert "already exists" in r.output
    r = invoke("topics", "create", "t", "-p", "7", "--if-not-exists", "--data", data)
    assert "already exists" in r.output
    with logmq.open(data) as log:
        assert log.partitions_for("t") == 2


def test_produce_creates_a_missing_topic_unless_no_create(tmp_path):
    data = str(tmp_path / "d")
    r = invoke("produce", "fresh", "--partitions", "3", "--data", data, stdin="a\nb\n")
    assert "produced 2 record(s)" in r.output
    r = invoke("produce", "other", "--no-create", "--data", data, stdin="a\n", code=1)
    assert "unknown topic" in r.output
    invoke("produce", "x", "--no-create", "--partitions", "2", "--data", data, stdin="",
           code=2)
    with logmq.open(data) as log:
        assert log.partitions_for("fresh") == 3
        assert "other" not in log.list_topics()


def test_produce_creates_with_the_configured_default_partitions(tmp_path):
    data = str(tmp_path / "d")
    conf = tmp_path / "logmq.toml"
    conf.write_text('num_partitions = 4\n[topic_defaults]\n"retention.ms" = 5000\n')
    invoke("produce", "t", "--data", data, "--config-file", str(conf), stdin="a\n")
    with logmq.open(data) as log:
        assert log.partitions_for("t") == 4


def test_produce_creates_over_bootstrap(server):
    r = invoke("produce", "remote-new", "-b", server.bootstrap, stdin="x\n")
    assert "produced 1 record(s)" in r.output
    assert server.broker.end_offset(("remote-new", 0)) == 1
    invoke("produce", "remote-missing", "--no-create", "-b", server.bootstrap, stdin="x\n",
           code=1)
    invoke("topics", "create", "remote-new", "--if-not-exists", "-b", server.bootstrap)


def test_replay_over_bootstrap_does_not_crash(server):
    server.broker.create_topic("orders", partitions=2)
    with server.broker.producer() as p:
        p.send_batch("orders", [(f"k{i}".encode(), f"v{i}".encode()) for i in range(20)])
    r = invoke("replay", "orders", "-b", server.bootstrap)
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert sorted(x["value"] for x in lines) == sorted(f"v{i}" for i in range(20))
    r = invoke("replay", "orders", "-p", "0", "--from-offset", "1", "--to-offset", "3",
               "-b", server.bootstrap)
    assert [json.loads(x)["offset"] for x in r.stdout.splitlines() if x.startswith("{")] == [1, 2]
    r = invoke("replay", "orders", "--to", "orders-copy", "-b", server.bootstrap)
    assert "replayed 20 record(s)" in r.output
    b = server.broker
    assert [b.end_offset(("orders-copy", p)) for p in (0, 1)] == [
        b.end_offset(("orders", p)) for p in (0, 1)]      # same partitions, same counts


def test_offline_describe_and_compact_honour_topic_defaults(tmp_path, monkeypatch):
    data = str(tmp_path / "d")
    invoke("topics", "create", "t", "--data", data)
    conf = tmp_path / "logmq.toml"
    conf.write_text('[topic_defaults]\n"retention.ms" = 1234\n"cleanup.policy" = "compact"\n')
    plain = invoke("topics", "describe", "t", "--data", data).output
    assert "retention.ms" in plain and "= 1234" not in plain
    out = invoke("topics", "describe", "t", "--data", data, "--config-file", str(conf)).output
    assert "= 1234" in out
    monkeypatch.setenv("LOGMQ_CONFIG", str(conf))
    assert "= 1234" in invoke("topics", "describe", "t", "--data", data).output
    r = invoke("compact", "t", "--data", data)
    assert "retention only" not in r.output    # compact policy from the defaults
    monkeypatch.delenv("LOGMQ_CONFIG")
    assert "retention only" in invoke("compact", "t", "--data", data).output


def test_demo_prints_inclusive_offsets_like_produce(tmp_path):
    data = str(tmp_path / "d")
    r = invoke("demo", "--records", "10", "--partitions", "1", "--data", data)
    assert "demo-0: offsets 0..9," in r.output
    r = invoke("produce", "demo", "--data", data, stdin="x\n")
    assert "offset 10" in r.output


def test_help_texts():
    serve = invoke("serve", "--help").output
    assert '\n      key = bytes.fromhex(open("logmq-data/queue.authkey").read())\n' in serve
    assert "\n      q = logmq.RemoteQueue(" in serve   # the example keeps its own lines
    consume = invoke("consume", "--help").output
    assert "coming" not in consume and "--bootstrap" in consume


def test_queue_compare_does_not_write_tracked_reports_by_default():
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = open(os.path.join(root, "bench", "queue_compare.py")).read()
    assert 'os.path.join(HERE, "report" if args.report else "results")' in src
    tracked = subprocess.run(["git", "ls-files", "bench/results"], cwd=root,
                             capture_output=True, text=True)
    if tracked.returncode == 0:
        assert tracked.stdout == ""
    help_text = subprocess.run([sys.executable, os.path.join(root, "bench", "queue_compare.py"),
                                "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "--report" in help_text
