"""The CLI with --bootstrap against a running `logmq serve` (both real subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_util import ServerProcess  # noqa: E402


def test_cli_commands_work_against_a_running_server(tmp_path):
    with ServerProcess(str(tmp_path / "data")) as srv:

        def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "logmq.cli", *args,
                                   "--bootstrap", srv.bootstrap],
                                  input=stdin, capture_output=True, text=True, timeout=60)

        r = run("topics", "create", "t", "--partitions", "2", "--config", "retention.ms=5000")
        assert r.returncode == 0, r.stderr
        assert run("topics", "list").stdout.split() == ["t"]
        desc = run("topics", "describe", "t").stdout
        assert "* retention.ms" in desc and "= 5000" in desc
        r = run("produce", "t", "-K", ":", stdin="a:1\nb:2\nc:3\n")
        assert r.returncode == 0 and "produced 3 record" in r.stdout
        out = run("consume", "t", "--from-beginning", "--format", "json").stdout.splitlines()
        got = sorted((json.loads(x)["key"], json.loads(x)["value"]) for x in out)
        assert got == [("a", "1"), ("b", "2"), ("c", "3")]
        r = run("topics", "alter", "t", "--config", "retention.ms=1")
        assert r.returncode == 0 and "retention.ms=1" in r.stdout, r.stderr
        r = run("compact", "t")  # the cluster's own cleaner's job: a clear refusal
        assert r.returncode == 1 and "embedded log" in r.stderr
        assert run("topics", "delete", "t").returncode == 0
        assert run("topics", "list").stdout.split() == []
        r = run("consume", "nope")
        assert r.returncode == 1 and "nope" in r.stderr
