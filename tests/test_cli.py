"""The ``logmq`` command line, run as a user runs it: ``python -m logmq.cli`` in a subprocess.

Every command opens the data directory itself, so the test process must not hold it open
while a command runs: fixtures write data through the Python API and close the log first.
The one exception is the refusal of ``groups reset-offsets`` while a group has an active
member; see :func:`test_reset_offsets_refused_while_group_has_active_member` for why that one
runs in-process.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import logmq
from logmq.broker.partitioner import key_partition
from logmq.cli import cli
from logmq.cli import common as cli_common
from logmq.cli.common import TokenBucket, parse_duration, parse_time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z: fixed record timestamps for time-based tests


def run(*args: str, data: str | None = None, stdin: bytes | str | None = None,
        check: int | None = 0) -> subprocess.CompletedProcess:
    """``logmq ARGS --data DATA`` in a fresh interpreter; asserts the exit code when given."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "logmq.cli", *args]
    if data is not None:
        cmd += ["--data", data]
    inp = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run(cmd, input=inp, capture_output=True, env=env, cwd=ROOT, timeout=60)
    proc.out = proc.stdout.decode(errors="replace")  # type: ignore[attr-defined]
    proc.err = proc.stderr.decode(errors="replace")  # type: ignore[attr-defined]
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.out, proc.err)
    return proc


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def one_line_error(proc: subprocess.CompletedProcess, needle: str) -> None:
    """A LogMQError: exit 1, one clear line on stderr, no traceback."""
    assert proc.returncode == 1, (proc.out, proc.err)
    assert "Traceback" not in proc.err
    lines = [x for x in proc.err.splitlines() if x.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.err


@pytest.fixture
def events(tmp_path) -> str:
    """Topic ``events``: 3 partitions, 10 keyed records each at T0 + 1000*i, with headers."""
    data = str(tmp_path / "data")
    with logmq.open(data) as log:
        log.create_topic("events", partitions=3)
        with log.producer() as p:
            for part in range(3):
                for i in range(10):
                    p.send("events", b"v%d-%d" % (part, i), key=b"k%d" % i, partition=part,
                           headers=[("h", b"x%d" % i)], timestamp=T0 + 1000 * i)
    return data


# ---------------------------------------------------------------------- parsing units
def test_time_and_duration_parsing():
    assert parse_time("1700000000000") == T0
    assert parse_time("2023-11-14T22:13:20Z") == T0
    assert parse_time("2023-11-14T22:13:20") == T0  # no zone: UTC
    assert parse_time("2023-11-14T23:13:20+01:00") == T0
    assert parse_time("-1h", now_ms=T0) == T0 - 3_600_000
    assert parse_time("now", now_ms=T0) == T0
    assert parse_duration("PT1H") == parse_duration("1h") == 3_600_000
    assert parse_duration("P1DT2H30M") == parse_duration("1d2h30m") == 95_400_000
    assert parse_duration("500ms") == 500
    for bad in ("", "P", "PT", "1x", "h1"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    with pytest.raises(ValueError):
        parse_time("yesterday-ish")


def test_token_bucket_paces_without_sleeping_for_real():
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    bucket = TokenBucket(100, clock=lambda: now[0], sleep=sleep)
    for _ in range(1000):
        bucket.acquire()
    # 1000 tokens at 100/s, minus the initial burst of 10: about 9.9 s of (fake) waiting
    assert 9.8 <= now[0] <= 10.0


# ---------------------------------------------------------------------- topics
def test_topics_lifecycle_and_errors(tmp_path):
    data = str(tmp_path / "data")
    one_line_error(run("topics", "list", data=data, check=None), "no logmq data directory")
    assert not os.path.exists(data)  # a read-only command never creates a directory

    out = run("topics", "create", "orders", "--partitions", "3", "--config",
              "cleanup.policy=compact", "-c", "retention.ms=1000", data=data).out
    assert "created topic 'orders' with 3 partition(s)" in out
    run("topics", "create", "logs", data=data)
    one_line_error(run("topics", "create", "orders", data=data, check=None), "already exists")
    one_line_error(run("topics", "create", "x", "-c", "no.such=1", data=data, check=None),
                   "unknown topic config")
    bad = run("topics", "create", "x", "-c", "novalue", data=data, check=2)
    assert "KEY=VALUE" in bad.err

    assert run("topics", "list", data=data).out.split() == ["logs", "orders"]
    desc = run("topics", "describe", "orders", data=data).out
    assert "partitions: 3" in desc
    assert len([x for x in desc.splitlines() if x.split()[:1] in (["0"], ["1"], ["2"])]) == 3
    assert "* cleanup.policy" in desc and "* retention.ms" in desc
    assert "  segment.bytes" in desc and "* segment.bytes" not in desc

    out = run("topics", "alter", "orders", "--config", "segment.bytes=2048",
              "--delete-config", "retention.ms", data=data).out
    assert "cleanup.policy=compact" in out and "segment.bytes=2048" in out
    desc = run("topics", "describe", "orders", data=data).out
    assert "* segment.bytes" in desc and "* retention.ms" not in desc
    assert run("topics", "alter", "orders", data=data, check=2).returncode == 2

    assert "deleted topic 'orders'" in run("topics", "delete", "orders", data=data).out
    one_line_error(run("topics", "describe", "orders", data=data, check=None),
                   "unknown topic 'orders'")
    assert run("topics", "list", "--long", data=data).out.split()[5:7] == ["logs", "1"]


def test_locked_directory_is_one_clear_error(events):
    with logmq.open(events):
        one_line_error(run("stats", data=events, check=None), "already open")
        one_line_error(run("verify", data=events, check=None), "open in another process")


# ---------------------------------------------------------------------- produce / consume
def test_produce_lines_keys_headers_partition(tmp_path):
    data = str(tmp_path / "data")
    run("topics", "create", "t", "-p", "4", data=data)
    out = run("produce", "t", "--key-separator", ":", "--header", "src=cli", "-H", "n=1",
              data=data, stdin="a:1\nb:2\r\na:3\nc:\n").out
    assert out.startswith("produced 4 record(s) to 't'")
    out = run("produce", "t", "--partition", "2", "--null-marker", "NULL", data=data,
              stdin="x\n\nNULL\n").out
    assert "produced 3 record(s) to 't' (partition 2: offsets" in out

    recs = json_lines(run("consume", "t", "--format", "json", data=data).out)
    assert len(recs) == 7
    keyed = [r for r in recs if r["key"] is not None]
    assert sorted((r["key"], r["value"]) for r in keyed) == [
        ("a", "1"), ("a", "3"), ("b", "2"), ("c", "")]
    for r in keyed:
        assert r["partition"] == key_partition(r["key"].encode(), 4)
        assert r["headers"] == [{"key": "src", "value": "cli"}, {"key": "n", "value": "1"}]
    a = [r for r in keyed if r["key"] == "a"]
    assert a[0]["offset"] < a[1]["offset"] and a[0]["value"] == "1"  # order within a key
    p2 = [r for r in recs if r["key"] is None]
    assert [r["value"] for r in p2] == ["x", "", None] and {r["partition"] for r in p2} == {2}

    bad = run("produce", "t", "-K", ":", data=data, stdin="ok:1\nno separator\n", check=1)
    assert "line 2: no key separator" in bad.err and "Traceback" not in bad.err
    one_line_error(run("produce", "nope", "--no-create", data=data, stdin="x\n",
                         check=None), "unknown topic")
    one_line_error(run("produce", "t", "-p", "9", data=data, stdin="x\n", check=None),
                   "partition 9 does not exist")


def test_json_round_trip_keeps_binary_and_timestamps(tmp_path):
    data = str(tmp_path / "data")
    run("topics", "create", "bin", data=data)
    blob = bytes(range(256))
    line = json.dumps({"key": base64.b64encode(b"\xff\x00").decode(), "key_encoding": "base64",
                       "value": base64.b64encode(blob).decode(), "value_encoding": "base64",
                       "timestamp": T0, "headers": [{"key": "h", "value": None}]})
    run("produce", "bin", "--format", "json", data=data, stdin=line + "\n")
    (rec,) = json_lines(run("consume", "bin", "--format", "json", data=data).out)
    assert rec["value_encoding"] == "base64" and base64.b64decode(rec["value"]) == blob
    assert base64.b64decode(rec["key"]) == b"\xff\x00" and rec["timestamp"] == T0
    assert rec["headers"] == [{"key": "h", "value": None}]
    raw = run("consume", "bin", data=data).stdout
    assert raw == blob + b"\n"  # raw format: the value's bytes as stored


def test_consume_start_and_stop_options(events):
    def values(*args: str) -> list[str]:
        return run("consume", "events", *args, data=events).out.split()

    everything = values()
    assert len(everything) == 30  # default without a group: from the beginning, exit at end
    assert values("-p", "1") == [f"v1-{i}" for i in range(10)]
    assert values("-p", "1", "--offset", "7") == ["v1-7", "v1-8", "v1-9"]
    assert values("-p", "1", "--offset", "-2") == ["v1-8", "v1-9"]
    assert values("-p", "0", "--until", "3") == ["v0-0", "v0-1", "v0-2"]
    assert len(values("--max", "4")) == 4
    assert values("--from-end") == []
    # times: records of each partition are at T0 + 1000*i
    assert values("-p", "2", "--from-time", str(T0 + 8000)) == ["v2-8", "v2-9"]
    assert values("-p", "2", "--from-time", "2023-11-14T22:13:28Z") == ["v2-8", "v2-9"]
    assert values("-p", "2", "--from-time", "2023-11-14T22:13:25Z",
                  "--until", "2023-11-14T22:13:27Z") == ["v2-5", "v2-6"]
    assert values("-p", "2", "--until", f"@{T0 + 1000}") == ["v2-0"]
    assert len(values("--from-time", "-1h")) == 0  # the records are from 2023
    lines = run("consume", "events", "-p", "0", "--max", "2", "--key-separator", "\t",
                data=events).out.splitlines()
    assert lines == ["k0\tv0-0", "k1\tv0-1"]

    assert "needs --partition" in run("consume", "events", "--offset", "1", data=events,
                                      check=2).err
    assert "choose one of" in run("consume", "events", "--from-end", "--from-beginning",
                                  data=events, check=2).err
    assert "not a time" in run("consume", "events", "--from-time", "soon", data=events,
                               check=2).err
    one_line_error(run("consume", "events", "-p", "0", "--offset", "99", data=events,
                       check=None), "out of range")


def test_consume_with_group_commits_and_resumes(events):
    first = run("consume", "events", "--group", "g", "--max", "12", data=events).out.split()
    assert len(first) == 12
    desc = run("groups", "describe", "g", data=events).out
    committed = {int(x.split()[1]): int(x.split()[2]) for x in desc.splitlines()
                 if x.startswith("events ")}
    assert sum(committed.values()) == 12  # exactly what was printed, not what was fetched
    rest = run("consume", "events", "--group", "g", data=events).out.split()
    assert sorted(first + rest) == sorted(run("consume", "events", data=events).out.split())
    desc = run("groups", "describe", "g", data=events).out
    lags = [x.split()[4] for x in desc.splitlines() if x.startswith("events ")]
    assert lags == ["0", "0", "0"]
    assert run("consume", "events", "--group", "g", data=events).out == ""
    again = run("consume", "events", "--group", "g", "--from-beginning", "-p", "1",
                data=events).out.split()
    assert again == [f"v1-{i}" for i in range(10)]  # explicit start beats the commit


# ---------------------------------------------------------------------- replay
def test_replay_to_stdout_and_into_topics(events):
    proc = run("replay", "events", "-p", "1", "--from-offset", "2", "--to-offset", "5",
               data=events)
    recs = json_lines(proc.out)
    assert [(r["partition"], r["offset"], r["value"]) for r in recs] == [
        (1, 2, "v1-2"), (1, 3, "v1-3"), (1, 4, "v1-4")]
    assert "replayed 3 record(s)" in proc.err
    assert recs[0]["timestamp"] == T0 + 2000 and recs[0]["headers"][0]["value"] == "x2"

    window = json_lines(run("replay", "events", "--from-time", str(T0 + 3000), "--to-time",
                            "2023-11-14T22:13:25Z", data=events).out)
    assert sorted((r["partition"], r["offset"]) for r in window) == [
        (p, o) for p in range(3) for o in (3, 4)]

    # same partition count: every record keeps partition, key, value, headers, timestamp
    out = run("replay", "events", "--to", "copy", data=events)
    assert "replayed 30 record(s) from 'events' to topic 'copy'" in out.out
    assert "created topic 'copy' with 3 partition(s)" in out.err
    src = json_lines(run("consume", "events", "--format", "json", data=events).out)
    dst = json_lines(run("consume", "copy", "--format", "json", data=events).out)

    def strip(rs: list[dict]) -> list[tuple]:
        return sorted((r["partition"], r["offset"], r["timestamp"], r["key"], r["value"],
                       json.dumps(r["headers"])) for r in rs)

    assert strip(src) == strip(dst)

    # fewer partitions in DEST: placed by key, order per key kept
    run("topics", "create", "two", "-p", "2", data=events)
    run("replay", "events", "--to", "two", data=events)
    two = json_lines(run("consume", "two", "--format", "json", data=events).out)
    assert len(two) == 30
    for r in two:
        assert r["partition"] == key_partition(r["key"].encode(), 2)
    per_key_src = [r["value"] for r in src if r["key"] == "k4" and r["partition"] == 0]
    assert [r["value"] for r in two if r["key"] == "k4" and r["value"].startswith("v0")] == \
        per_key_src
    assert {r["timestamp"] for r in two} == {T0 + 1000 * i for i in range(10)}

    assert "either offsets" in run("replay", "events", "--from-offset", "1", "--from-time",
                                   "now", data=events, check=2).err
    one_line_error(run("replay", "nope", data=events, check=None), "unknown topic")


def test_replay_rate_limit_and_progress(events):
    t = time.monotonic()
    proc = run("replay", "events", "--to", "slow", "--rate", "50", "--progress", data=events)
    elapsed = time.monotonic() - t
    # 30 records at 50/s with a 5-record burst: at least 0.5 s of pacing on top of startup
    assert elapsed >= 0.5, elapsed
    assert "replaying" in proc.err and "30/30" in proc.err
    quiet = run("replay", "events", "-p", "0", data=events)  # stderr is a pipe: no bar
    assert "replaying" not in quiet.err


# ---------------------------------------------------------------------- groups
def _commit(data: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    from logmq.broker.membership import coordinator_for

    with logmq.open(data) as log:
        coordinator_for(log).commit_offsets(group, -1, "",
                                            {tp: (o, None) for tp, o in offsets.items()})


def _committed(data: str, group: str) -> dict[tuple[str, int], int]:
    from logmq.broker.membership import coordinator_for

    with logmq.open(data) as log:
        return {tp: o for tp, (o, _) in coordinator_for(log).fetch_offsets(group, None).items()}


def test_groups_list_describe_reset_delete(events):
    _commit(events, "g", {("events", 0): 5, ("events", 1): 8})
    assert run("groups", "list", data=events).out.split()[3:6] == ["g", "Empty", "consumer"]
    desc = run("groups", "describe", "g", data=events).out
    assert "state: Empty" in desc
    rows = [x.split() for x in desc.splitlines() if x.startswith("events ")]
    assert rows == [["events", "0", "5", "10", "5", "-"], ["events", "1", "8", "10", "2", "-"]]

    plan = run("groups", "reset-offsets", "g", "--topic", "events", "--to-earliest",
               data=events).out
    assert "dry run" in plan
    rows = [x.split() for x in plan.splitlines() if x.startswith("events ")]
    assert rows == [["events", "0", "5", "0", "10"], ["events", "1", "8", "0", "10"],
                    ["events", "2", "-", "0", "10"]]
    assert _committed(events, "g") == {("events", 0): 5, ("events", 1): 8}  # unchanged

    run("groups", "reset-offsets", "g", "--topic", "events", "-p", "1", "--shift-by", "-3",
        "--execute", data=events)
    assert _committed(events, "g") == {("events", 0): 5, ("events", 1): 5}
    run("groups", "reset-offsets", "g", "--topic", "events", "-p", "0", "--shift-by", "99",
        "--execute", data=events)  # clamped to the log end
    assert _committed(events, "g")[("events", 0)] == 10
    run("groups", "reset-offsets", "g", "--topic", "events", "--to-datetime",
        "2023-11-14T22:13:26Z", "--execute", data=events)
    assert _committed(events, "g") == {("events", p): 6 for p in range(3)}
    run("groups", "reset-offsets", "g", "--topic", "events", "-p", "2", "--to-offset", "3",
        "--execute", data=events)
    run("groups", "reset-offsets", "g", "--topic", "events", "-p", "0", "--by-duration", "PT1H",
        "--execute", data=events)  # an hour ago is after every record: the log end
    run("groups", "reset-offsets", "g", "--topic", "events", "-p", "1", "--to-latest",
        "--execute", data=events)
    assert _committed(events, "g") == {("events", 0): 10, ("events", 1): 10, ("events", 2): 3}

    assert run("groups", "reset-offsets", "g", "--topic", "events", data=events,
               check=2).returncode == 2
    one_line_error(run("groups", "reset-offsets", "g", "--topic", "nope", "--to-latest",
                       data=events, check=None), "unknown topic")
    assert "deleted group 'g'" in run("groups", "delete", "g", data=events).out
    one_line_error(run("groups", "delete", "g", data=events, check=None), "does not exist")
    one_line_error(run("groups", "describe", "g", data=events, check=None), "does not exist")
    assert run("groups", "list", data=events).out == ""


def test_reset_offsets_refused_while_group_has_active_member(events, monkeypatch):
    """A group with a live member must not have its offsets reset, dry run or not.

    Why in-process: membership lives in the group coordinator of the process that owns the
    data directory, and one process owns a directory (flock), so a CLI subprocess can never
    see another process's members: it could not even open the directory. The honest way to
    have a real active member when the CLI runs is to run the CLI in the owning process: the
    test opens the log, joins an embedded consumer to the group, and hands that open log to
    the CLI through ``logmq.cli.common.BROKER_OVERRIDE`` (the seam ``open_broker`` provides
    for exactly this), then invokes the real click command with CliRunner. Everything after
    ``open_broker`` (coordinator lookup, membership check, exit code) is the production path.
    """
    with logmq.open(events) as log:
        monkeypatch.setattr(cli_common, "BROKER_OVERRIDE", lambda data: log)
        consumer = log.consumer("events", group="g", auto_offset_reset="earliest",
                                enable_auto_commit=False)
        assert consumer.poll(timeout=5)  # joined, assigned, read
        consumer.commit({("events", 0): 4})
        runner = CliRunner()
        args = ["groups", "reset-offsets", "g", "--topic", "events", "--to-earliest",
                "--data", events]
        for extra in ([], ["--execute"]):
            res = runner.invoke(cli, args + extra)
            assert res.exit_code == 1, res.output
            assert "active member" in res.output and "Stable" in res.output
            assert "Traceback" not in res.output
        desc = runner.invoke(cli, ["groups", "describe", "g", "--data", events])
        assert desc.exit_code == 0, desc.output
        assert "members: 1" in desc.output and "events:0,1,2" in desc.output
        consumer.close(commit=False)  # leaves the group: now it is Empty
        res = runner.invoke(cli, args + ["--execute"])
        assert res.exit_code == 0, res.output
        assert "committed 3 offset(s)" in res.output
    assert _committed(events, "g") == {("events", p): 0 for p in range(3)}


# ---------------------------------------------------------------------- dump / verify
def _segment(data: str, tp: str) -> str:
    return os.path.join(data, tp, "00000000000000000000.log")


def test_dump_batches_records_and_indexes(events):
    out = run("dump", os.path.join(events, "events-1"), "--records", "--index").out
    batch_lines = [x for x in out.splitlines() if x.startswith("baseOffset:")]
    assert batch_lines and all(" crc: " in x and " ok " in x for x in batch_lines)
    assert "position: 0 " in batch_lines[0]
    assert sum(int(x.split("count: ")[1].split()[0]) for x in batch_lines) == 10
    assert '| offset: 3 timestamp: 1700000003000 key: "k3" value: "v1-3" headers: [h="x3"]' \
        in out
    assert "offset: 0 position: 0" in out  # .index entry
    assert ".timeindex" in out and "timestamp: 1700000009000" in out
    only_log = run("dump", _segment(events, "events-0")).out
    assert "baseOffset: 0" in only_log and "| offset" not in only_log
    idx = run("dump", _segment(events, "events-0")[:-4] + ".index").out
    assert "offset: 0 position: 0" in idx


def test_verify_detects_flipped_byte_and_bad_index(events):
    ok = run("verify", data=events)
    assert ok.out.strip().endswith("ok: 3 segment(s) of 3 partition(s) verified")
    assert "ok events-1: 1 segment(s)" in ok.out

    seg = _segment(events, "events-1")
    size = os.path.getsize(seg)
    with open(seg, "r+b") as f:  # flip one byte in the last record's value
        f.seek(size - 3)
        b = f.read(1)
        f.seek(size - 3)
        f.write(bytes([b[0] ^ 0x01]))
    bad = run("verify", data=events, check=1)
    assert "00000000000000000000.log" in bad.out and "events-1" in bad.out
    assert "CRC mismatch" in bad.out and " at byte " in bad.out
    assert "ok events-0" in bad.out and "1 problem(s)" in bad.err
    dumped = run("dump", seg, check=1)
    assert "INVALID (CRC mismatch" in dumped.out

    with open(seg, "r+b") as f:  # undo, then point an index entry into the middle of a batch
        f.seek(size - 3)
        f.write(b)
    idx = seg[:-4] + ".index"
    with open(idx, "ab") as f:
        f.write((5).to_bytes(4, "big") + (size - 10).to_bytes(4, "big"))
    bad = run("verify", "-q", data=events, check=1)
    assert "00000000000000000000.index at byte 8" in bad.out
    assert "not the start of a batch" in bad.out


# ---------------------------------------------------------------------- compact / stats
def test_compact_and_stats(tmp_path):
    data = str(tmp_path / "data")
    run("topics", "create", "kv", "-c", "cleanup.policy=compact", data=data)
    lines = "".join(f"k{i % 3}={i}\n" for i in range(9)) + "k1=NULL\n"
    run("produce", "kv", "-K", "=", "--null-marker", "NULL", data=data, stdin=lines)
    run("topics", "create", "plain", "-p", "2", data=data)
    run("produce", "plain", data=data, stdin="a\nb\n")

    before = run("stats", "--json", data=data).out
    stats = json.loads(before)
    assert stats["topics"] == 2 and stats["partitions"] == 3 and stats["records"] == 12
    assert stats["segments"] == 3 and stats["groups"] == 0 and stats["bytes"] > 0

    nothing = run("compact", "kv", data=data).out  # everything is in the active segment
    assert "records_removed: 0" in nothing
    out = run("compact", "kv", "--roll", data=data).out
    assert "partitions_compacted: 1" in out and "records_removed: 7" in out
    kept = run("consume", "kv", "--key-separator", "=", data=data).out.split()
    # the tombstone of k1 stays for delete.retention.ms; the latest k0 and k2 survive
    assert kept == ["k0=6", "k2=8", "k1=null"]
    note = run("compact", "plain", data=data)
    assert "retention only" in note.err
    run("verify", data=data)  # the cleaned segments are consistent

    run("consume", "plain", "--group", "readers", data=data)
    text = run("stats", data=data).out
    assert "topics      2" in text and "groups      1" in text
    assert any(x.split()[:2] == ["plain", "2"] for x in text.splitlines())


def test_help_lists_every_command():
    out = run("--help").out
    for name in ("topics", "produce", "consume", "replay", "groups", "queues", "dump",
                 "verify", "compact", "stats"):
        assert f"  {name} " in out, name


def test_queues_list_shows_depth_in_flight_and_dead_letters(tmp_path):
    data = str(tmp_path / "d")
    with logmq.open(data) as log:
        log.create_topic("jobs", partitions=2)
        with log.producer() as p:
            p.send_batch("jobs", [(b"k%d" % i, b"v%d" % i) for i in range(10)])
        q = log.queue("jobs", group="workers", max_attempts=1, backoff_base_ms=0)
        got = q.receive(4, timeout=5)
        assert len(got) == 4
        q.ack(got[0], got[1])
        got[2].reject("bad input")
        # got[3] stays held when the log closes: after a restart it is available again
    rows = [json.loads(line) for line in run("queues", "list", "--json", data=data).out.splitlines()]
    assert len(rows) == 1
    st = rows[0]
    assert (st["topic"], st["group"]) == ("jobs", "workers")
    assert st["depth"] == 7  # 10 - 2 acked - 1 dead-lettered
    assert st["in_flight"] == 0 and st["dlq_size"] == 1
    table = run("queues", "list", data=data).out
    assert "OLDEST-UNACKED" in table and "workers" in table
    assert run("queues", "list", "--topic", "nope", data=data).out == ""
