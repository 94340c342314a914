"""The CLI on any cluster: ``--bootstrap`` / ``kafka://`` targets through ``logmq.connect``.

Here the cluster is ``logmq serve`` (in-process, fast); tests/oracle/test_cluster_cli.py
collects these same functions against Apache Kafka 4.4. The commands run in-process through
click's runner, so a failure shows the command's own output.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from logmq.cli import cli
from logmq.testing import LogMQServer


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A bootstrap string (HOST:PORT) of the cluster the commands run against."""
    server = LogMQServer(tmp_path_factory.mktemp("cli-served"), auto_create_topics=False).start()
    try:
        yield server.bootstrap
    finally:
        server.stop()


def run(target: str, *args: str, stdin: str | None = None, ok: bool = True) -> Result:
    r = CliRunner().invoke(cli, [*args, "--bootstrap", target], input=stdin)
    if ok:
        assert r.exit_code == 0, (args, r.output, r.exception)
    return r


def name(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def consume_json(target: str, *args: str) -> list[dict[str, Any]]:
    out = run(target, "consume", *args, "--format", "json").stdout
    return [json.loads(x) for x in out.splitlines() if x.startswith("{")]


def test_topics_create_list_describe_alter_delete(cluster: str) -> None:
    t = name()
    r = run(cluster, "topics", "create", t, "--partitions", "3", "--config", "retention.ms=123456")
    assert f"created topic {t!r} with 3 partition(s)" in r.stdout
    assert "already exists" in run(cluster, "topics", "create", t, "--if-not-exists").stdout
    assert run(cluster, "topics", "create", t, ok=False).exit_code == 1
    assert t in run(cluster, "topics", "list").stdout.split()
    long_ = [ln.split() for ln in run(cluster, "topics", "list", "-l").stdout.splitlines()]
    assert [t, "3", "0", "?", "delete"] in long_
    desc = run(cluster, "topics", "describe", t).stdout
    assert f"Topic: {t}  partitions: 3" in desc
    assert any(ln.split()[:4] == ["*", "retention.ms", "=", "123456"]
               for ln in desc.splitlines())
    r = run(cluster, "topics", "alter", t, "--config", "retention.ms=654321")
    assert "retention.ms=654321" in r.stdout
    assert "654321" in run(cluster, "topics", "describe", t).stdout
    run(cluster, "topics", "delete", t)
    assert t not in run(cluster, "topics", "list").stdout.split()
    r = run(cluster, "topics", "describe", t, ok=False)
    assert r.exit_code == 1 and t in r.output


def test_produce_consume_and_inspect(cluster: str) -> None:
    t = name()
    run(cluster, "topics", "create", t, "--partitions", "2")
    lines = "".join(f"k{i}:v{i}\n" for i in range(10))
    r = run(cluster, "produce", t, "-K", ":", "-H", "src=cli", stdin=lines)
    assert "produced 10 record(s)" in r.stdout
    got = consume_json(cluster, t, "--from-beginning")
    assert sorted((x["key"], x["value"]) for x in got) == sorted(
        (f"k{i}", f"v{i}") for i in range(10))
    assert all(x["headers"] == [{"key": "src", "value": "cli"}] for x in got)
    # keys land where an embedded log puts them: same key, same partition
    by_key = {x["key"]: x["partition"] for x in got}
    assert len(set(by_key.values())) == 2
    p0 = sorted(x["offset"] for x in got if x["partition"] == 0)
    assert [x["offset"] for x in consume_json(cluster, t, "-p", "0", "--offset", "1")] \
        == p0[1:]
    assert len(consume_json(cluster, t, "--from-beginning", "--max", "3")) == 3
    assert consume_json(cluster, t, "--from-time", "now") == []
    stats = json.loads(run(cluster, "stats", "--json").stdout)
    assert stats["per_topic"][t]["records"] == 10 and stats["per_topic"][t]["partitions"] == 2
    r = run(cluster, "consume", t, "-p", "7", ok=False)
    assert r.exit_code == 1 and "7" in r.output
    r = run(cluster, "produce", name("nope"), "--no-create", stdin="x\n", ok=False)
    assert r.exit_code == 1


def test_groups_list_describe_reset_and_delete(cluster: str) -> None:
    t, g = name(), name("g")
    run(cluster, "topics", "create", t, "--partitions", "2")
    run(cluster, "produce", t, "-K", ":", stdin="".join(f"k{i}:v{i}\n" for i in range(6)))
    assert len(consume_json(cluster, t, "--group", g)) == 6  # joins, reads, commits
    assert consume_json(cluster, t, "--group", g) == []  # resumes at the commits
    rows = [ln.split() for ln in run(cluster, "groups", "list").stdout.splitlines()]
    assert [g, "Empty", "consumer"] in rows
    desc = run(cluster, "groups", "describe", g).stdout
    lags = {int(ln.split()[1]): ln.split() for ln in desc.splitlines() if ln.startswith(t)}
    assert sorted(lags) == [0, 1] and all(row[4] == "0" for row in lags.values())
    plan = run(cluster, "groups", "reset-offsets", g, "-t", t, "--to-earliest").stdout
    assert "dry run" in plan
    run(cluster, "groups", "reset-offsets", g, "-t", t, "--to-earliest", "--execute")
    assert len(consume_json(cluster, t, "--group", g, "--max", "6")) == 6
    run(cluster, "groups", "reset-offsets", g, "-t", t, "-p", "0", "--shift-by", "-1",
        "--execute")
    assert len(consume_json(cluster, t, "--group", g)) == 1
    run(cluster, "groups", "delete", g)
    assert g not in run(cluster, "groups", "list").stdout


def test_replay_a_time_window_into_another_topic(cluster: str) -> None:
    src, dst = name("src"), name("dst")
    run(cluster, "topics", "create", src, "--partitions", "2")
    recs = "".join(json.dumps({"key": f"k{i}", "value": f"v{i}",
                               "timestamp": 1_700_000_000_000 + i * 1000}) + "\n"
                   for i in range(10))
    run(cluster, "produce", src, "--format", "json", stdin=recs)
    r = run(cluster, "replay", src, "--to", dst, "--from-time", "1700000002000",
            "--to-time", "1700000008000")
    assert "replayed 6 record(s)" in r.output
    got = consume_json(cluster, dst, "--from-beginning")
    assert sorted((x["key"], x["timestamp"]) for x in got) == [
        (f"k{i}", 1_700_000_000_000 + i * 1000) for i in range(2, 8)]
    orig = {x["key"]: x["partition"] for x in consume_json(cluster, src, "--from-beginning")}
    assert all(orig[x["key"]] == x["partition"] for x in got)  # partitions kept


def test_kafka_url_target_and_local_only_commands(cluster: str) -> None:
    t = name()
    r = CliRunner().invoke(cli, ["topics", "create", t, "--data", f"kafka://{cluster}"])
    assert r.exit_code == 0, r.output
    assert t in run(f"kafka://{cluster}", "topics", "list").stdout.split()
    r = run(cluster, "compact", t, ok=False)
    assert r.exit_code == 1 and "cluster" in r.output


def test_status_and_queues_list(cluster: str) -> None:
    t, g = name(), name("g")
    run(cluster, "topics", "create", t, "--partitions", "2")
    run(cluster, "produce", t, stdin="a\nb\nc\n")
    assert len(consume_json(cluster, t, "--group", g)) == 3
    run(cluster, "produce", t, "-p", "1", stdin="d\n")  # one record the group has not read
    o = json.loads(run(cluster, "status", "--json").stdout)
    assert len(o["brokers"]) >= 1 and o["cluster_id"]
    (row,) = [x for x in o["topics"] if x["name"] == t]
    assert (row["partitions"], row["records"]) == (2, 4)
    (grp,) = [x for x in o["groups"] if x["group_id"] == g]
    assert (grp["state"], grp["members"], grp["lag"]) == ("Empty", 0, 1)
    text = run(cluster, "status").stdout
    assert any(ln.split() == [g, "Empty", "0", "1"] for ln in text.splitlines())
    r = run(cluster, "queues", "list", "--topic", t, "--json")
    assert r.stdout == ""  # no share group reads t


def test_replay_from_a_data_directory_onto_the_cluster(cluster: str, tmp_path: Any) -> None:
    src = name("local")
    data = str(tmp_path / "data")
    recs = "".join(json.dumps({"key": f"k{i}", "value": f"v{i}", "headers": {"n": str(i)},
                               "timestamp": 1_700_000_000_000 + i}) + "\n" for i in range(20))
    local = CliRunner().invoke(cli, ["topics", "create", src, "-p", "3", "--data", data])
    assert local.exit_code == 0, local.output
    local = CliRunner().invoke(cli, ["produce", src, "--format", "json", "--data", data],
                               input=recs)
    assert local.exit_code == 0, local.output
    r = CliRunner().invoke(cli, ["replay", src, "--data", data, "--to-cluster", cluster,
                                 "--rate", "2000", "--from-time", "1700000000005"])
    assert r.exit_code == 0, r.output
    assert f"replayed 15 record(s) from {src!r} to topic {src!r} on {cluster}" in r.output
    got = consume_json(cluster, src, "--from-beginning")
    assert sorted((x["key"], x["timestamp"], x["headers"][0]["value"]) for x in got) == sorted(
        (f"k{i}", 1_700_000_000_000 + i, str(i)) for i in range(5, 20))
    local_json = CliRunner().invoke(cli, ["consume", src, "--from-beginning", "--format",
                                          "json", "--data", data]).stdout
    where = {json.loads(x)["key"]: json.loads(x)["partition"] for x in local_json.splitlines()}
    assert all(where[x["key"]] == x["partition"] for x in got)


def test_an_active_group_is_described_and_not_reset(cluster: str) -> None:
    import time

    import logmq

    t, g = name(), name("g")
    run(cluster, "topics", "create", t, "--partitions", "2")
    with logmq.connect(f"kafka://{cluster}") as log:
        c = log.consumer(t, group=g, auto_offset_reset="earliest", client_id="cli-test")
        try:
            deadline = time.monotonic() + 30
            while len(c.assignment()) < 2 and time.monotonic() < deadline:
                c.poll(0.2)
            assert len(c.assignment()) == 2
            desc = run(cluster, "groups", "describe", g).stdout
            assert "state: Stable" in desc and "members: 1" in desc
            (member,) = [ln.split() for ln in desc.splitlines()
                         if "cli-test" in ln and not ln.startswith(t)]
            assert member[-1] == f"{t}:0,1"
            r = run(cluster, "groups", "reset-offsets", g, "-t", t, "--to-latest",
                    "--execute", ok=False)
            assert r.exit_code == 1 and "active member" in r.output
        finally:
            c.close()


def test_kafka_config_file_supplies_client_settings(cluster: str, tmp_path: Any) -> None:
    from logmq.cli.target import open_cluster

    props = tmp_path / "client.properties"
    props.write_text("# client settings\nclient.id = from-file\n! also a comment\n"
                     "socket.timeout.ms: 20000\nrequest_timeout=7\n")
    with open_cluster(f"kafka://{cluster}?client.id=from-url", str(props)) as log:
        assert log.settings["socket.timeout.ms"] == "20000"
        assert log.settings["client.id"] == "from-url"  # the URL wins
        assert log.request_timeout == 7.0
    r = CliRunner().invoke(cli, ["topics", "list", "--bootstrap", cluster,
                                 "--kafka-config", str(props)])
    assert r.exit_code == 0, r.output
    props.write_text("not a setting\n")
    r = CliRunner().invoke(cli, ["topics", "list", "--bootstrap", cluster,
                                 "--kafka-config", str(props)])
    assert r.exit_code == 2 and "expected key=value" in r.output


def test_without_confluent_kafka_the_wire_client_fallback_serves(
        cluster: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No confluent-kafka: --bootstrap still reaches `logmq serve` through RemoteLog."""
    import logmq.cli.target as target

    monkeypatch.setattr(target, "_have_confluent", lambda: False)
    t = name()
    run(cluster, "topics", "create", t, "--partitions", "2")
    run(cluster, "produce", t, "-K", ":", stdin="a:1\nb:2\n")
    got = consume_json(cluster, t, "--from-beginning")
    assert sorted((x["key"], x["value"]) for x in got) == [("a", "1"), ("b", "2")]
    r = run(cluster, "groups", "reset-offsets", "g", "-t", t, "--to-earliest", "--execute",
            ok=False)
    assert r.exit_code == 1 and "not available with --bootstrap" in r.output
