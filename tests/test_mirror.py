"""``logmq mirror``: dir -> logmq serve (kafka://) -> dir keeps records, configs and group
positions; reruns and interrupted runs copy nothing twice; the final check catches damage.

tests/oracle/test_cluster_kafka.py runs the round trip through Apache Kafka as well.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import logmq
from logmq import mirror as mirror_mod
from logmq.cli import cli
from logmq.mirror import CHECKPOINT_TOPIC, MirrorError, mirror, scan
from logmq.testing import LogMQServer
from logmq.types import TopicPartition


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogMQServer]:
    server = LogMQServer(tmp_path_factory.mktemp("mirror-served"),
                         auto_create_topics=False).start()
    try:
        yield server
    finally:
        server.stop()


def records(target: Any, topic: str, partitions: int) -> list[list[tuple[Any, ...]]]:
    """Per partition: (key, value, headers, timestamp) of every record, in order."""
    log = logmq.connect(target) if isinstance(target, str | Path) else target
    try:
        return [[(r.key, r.value, r.headers, r.timestamp)
                 for r in scan(log, TopicPartition(topic, p), 0, log.end_offset((topic, p)))]
                for p in range(partitions)]
    finally:
        if log is not target:
            log.close()


def make_source(path: Path, topic: str = "orders", n: int = 60) -> None:
    with logmq.open(path) as log:
        log.create_topic(topic, 3, {"retention.ms": 86_400_000, "fsync": "always"})
        with log.producer() as p:
            for i in range(n):
                p.send(topic, b"v%d" % i, key=b"k%d" % (i % 11),
                       headers=[("n", b"%d" % i), ("empty", None)], timestamp=1_000_000 + i)
            p.send(topic, None, key=b"k1")  # a tombstone stays a tombstone
        # the group stopped part-way: 8 records into each partition (or at its end)
        log.groups.commit_offsets("billing", -1, "", {
            (topic, p): (min(8, log.end_offset((topic, p))), None) for p in range(3)})


def test_round_trip_dir_served_dir(tmp_path: Path, served: LogMQServer) -> None:
    make_source(tmp_path / "a", "rt")
    url = f"kafka://{served.bootstrap}"
    first = mirror(str(tmp_path / "a"), url, topics=["rt"])
    assert first.ok and first.verified and first.copied == 61
    assert first.skipped_configs == {"rt": ["fsync"]}  # Kafka has no fsync key
    back = mirror(url, str(tmp_path / "b"), topics=["rt"])
    assert back.ok and back.copied == 61
    assert records(tmp_path / "a", "rt", 3) == records(tmp_path / "b", "rt", 3)
    with logmq.open(tmp_path / "a") as a, logmq.open(tmp_path / "b") as b:
        assert b.describe_topic("rt").overrides == {"retention.ms": 86_400_000}
        assert b.groups.fetch_offsets("billing", None) == a.groups.fetch_offsets("billing", None)
        assert CHECKPOINT_TOPIC in b.list_topics()
    again = mirror(str(tmp_path / "a"), url, topics=["rt"])
    assert again.ok and again.copied == 0  # a rerun copies nothing twice


def test_group_resumes_on_the_cluster_where_it_stopped(tmp_path: Path,
                                                       served: LogMQServer) -> None:
    make_source(tmp_path / "a", "resume")
    with logmq.open(tmp_path / "a") as a:
        left = 61 - sum(off for off, _ in a.groups.fetch_offsets("billing", None).values())
        c = a.consumer("resume", group="billing", auto_offset_reset="earliest")
        rest_embedded = sorted((r.value or b"") for r in _drain(c, left))
        c.close(commit=False)
    report = mirror(str(tmp_path / "a"), f"kafka://{served.bootstrap}", topics=["resume"],
                    groups=["billing"])
    assert set(report.groups) == {"billing"}
    with logmq.connect(f"kafka://{served.bootstrap}") as k:
        c = k.consumer("resume", group="billing", auto_offset_reset="earliest")
        rest_cluster = sorted((r.value or b"") for r in _drain(c, left))
        c.close(commit=False)
    assert rest_cluster == rest_embedded and 0 < left < 61


def _drain(c: Any, n: int) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + 30
    while len(out) < n and time.monotonic() < deadline:
        out.extend(c.poll(0.5))
    assert len(out) == n, f"got {len(out)} of {n}"
    assert c.poll(0.3) == []  # and nothing more: the group started where it stopped
    return out


def test_gaps_translate_group_offsets(tmp_path: Path) -> None:
    src = tmp_path / "a"
    with logmq.open(src) as log:
        log.create_topic("gap", 1)
        with log.producer() as p:
            for i in range(20):
                p.send("gap", b"%d" % i, partition=0).result(10)
        log.delete_records(("gap", 0), 5)
        log.groups.commit_offsets("g", -1, "", {("gap", 0): (12, "meta")})
    report = mirror(str(src), str(tmp_path / "b"))
    assert report.ok and report.copied == 15
    assert report.groups["g"] == {TopicPartition("gap", 0): (12, 7)}  # offset 12 -> 7th copied
    with logmq.open(tmp_path / "b") as b:
        assert b.groups.fetch_offsets("g", None) == {("gap", 0): (7, "meta")}
        c = b.consumer("gap", group="g")
        assert [r.value for r in _drain(c, 8)][:1] == [b"12"]
        c.close(commit=False)


def test_interrupted_run_resumes_without_duplicates(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    make_source(tmp_path / "a", "big", n=300)
    monkeypatch.setattr(mirror_mod, "CHUNK", 40)
    calls = {"n": 0}

    def die(tp: TopicPartition, copied: int, total: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as a Ctrl-C mid-copy, after some checkpoints
    with pytest.raises(KeyboardInterrupt):
        mirror(str(tmp_path / "a"), str(tmp_path / "b"), progress=die)
    with logmq.open(tmp_path / "b") as b:
        partial = sum(b.end_offset(("big", p)) for p in range(3))
    assert 0 < partial < 301
    report = mirror(str(tmp_path / "a"), str(tmp_path / "b"))
    assert report.ok and report.copied == 301 - partial
    assert records(tmp_path / "a", "big", 3) == records(tmp_path / "b", "big", 3)


def test_records_written_after_the_last_checkpoint_are_not_copied_again(
        tmp_path: Path) -> None:
    make_source(tmp_path / "a", "crash", n=30)
    mirror(str(tmp_path / "a"), str(tmp_path / "b"))
    with logmq.open(tmp_path / "a") as a, logmq.open(tmp_path / "b") as b:
        with a.producer() as p:
            for i in range(5):
                p.send("crash", b"late%d" % i, partition=0).result(10)
        # a run that appended two of them and died before its checkpoint
        for r in list(scan(a, TopicPartition("crash", 0), a.end_offset(("crash", 0)) - 5,
                           a.end_offset(("crash", 0)) - 3)):
            with b.producer() as p:
                p.send("crash", r.value, key=r.key, headers=r.headers, partition=0,
                       timestamp=r.timestamp).result(10)
    report = mirror(str(tmp_path / "a"), str(tmp_path / "b"))
    assert report.ok and report.copied == 3
    assert records(tmp_path / "a", "crash", 3) == records(tmp_path / "b", "crash", 3)


def test_foreign_records_on_the_destination_are_refused(tmp_path: Path) -> None:
    make_source(tmp_path / "a", "mine", n=5)
    with logmq.open(tmp_path / "b") as b:
        b.create_topic("mine", 3)
        with b.producer() as p:
            p.send("mine", b"not from the source", partition=1).result(10)
    with pytest.raises(MirrorError, match="no mirror checkpoint"):
        mirror(str(tmp_path / "a"), str(tmp_path / "b"))


def test_verification_reports_a_difference(tmp_path: Path) -> None:
    make_source(tmp_path / "a", "v", n=10)
    mirror(str(tmp_path / "a"), str(tmp_path / "b"))
    with logmq.open(tmp_path / "b") as b:
        b.delete_records(("v", 0), 1)  # the destination lost a record
    report = mirror(str(tmp_path / "a"), str(tmp_path / "b"))
    assert not report.ok and [p.tp.partition for p in report.partitions if not p.ok] == [0]


def test_cli_mirror_patterns_and_exit_code(tmp_path: Path) -> None:
    make_source(tmp_path / "a", "keep", n=10)
    with logmq.open(tmp_path / "a") as a:
        a.create_topic("skip", 1)
    runner = CliRunner()
    res = runner.invoke(cli, ["mirror", str(tmp_path / "a"), f"file://{tmp_path}/b",
                              "--topics", "ke*", "--groups", "nothing-matches"])
    assert res.exit_code == 0, res.output
    assert "copied 11 record(s)" in res.output and "ok" in res.output
    with logmq.open(tmp_path / "b") as b:
        assert sorted(b.list_topics()) == [CHECKPOINT_TOPIC, "keep"]
        assert b.groups.list_groups() == []


def test_follow_keeps_the_destination_in_step(tmp_path: Path) -> None:
    make_source(tmp_path / "a", "live", n=10)
    src = logmq.open(tmp_path / "a")
    passes = {"n": 0}

    def stop() -> bool:  # called after each pass: write more during the first two
        passes["n"] += 1
        if passes["n"] <= 2:
            with src.producer() as p:
                p.send("live", b"new%d" % passes["n"], partition=2).result(10)
            return False
        return True
    try:
        report = mirror(src, str(tmp_path / "b"), follow=True, follow_interval=0.01,
                        follow_for=60, stop=stop)
        assert report.ok and report.verified and report.total_copied == 13
        assert records(src, "live", 3) == records(tmp_path / "b", "live", 3)
    finally:
        src.close()
