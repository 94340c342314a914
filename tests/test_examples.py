"""Every program in examples/ runs to completion, as a user runs it, in bounded time."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

EXAMPLES = os.path.join(ROOT, "examples")

# (file, args, text its output must contain)
CASES = [
    ("ledger.py", [], "withdrawals: 3 succeeded, 5 refused"),
    ("replay_tool.py", ["--demo"], "replayed 10 records of minutes 10-19"),
    ("work_queue.py", [], "dead letter: poison-1 (max-attempts after 3 attempts)"),
    ("kafka_client.py", [], "each key stayed on one partition: True"),
    ("asyncio_service.py", ["--demo"], "enriched 500 orders"),
    # its second run and the projection's checkpoint: tests/test_streams_example.py
    ("eventsourced_bank.py", [], "alice: balance 90 at version 22"),
]


def test_every_example_is_tested() -> None:
    files = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py") and f[0] != "_")
    assert files == sorted(c[0] for c in CASES)


def test_examples_ship_as_logmq_examples(tmp_path) -> None:
    """``pip install logmq`` users run them as modules: logmq/examples links to examples/."""
    assert os.path.realpath(os.path.join(ROOT, "logmq", "examples")) == os.path.realpath(EXAMPLES)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    listing = subprocess.run([sys.executable, "-m", "logmq.examples"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    assert [ln.split()[2] for ln in listing.stdout.splitlines()] == [
        f"logmq.examples.{c[0][:-3]}" for c in sorted(CASES)]
    r = subprocess.run([sys.executable, "-m", "logmq.examples.replay_tool", "--demo"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "replayed 10 records" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("name,args,expect", CASES, ids=[c[0] for c in CASES])
def test_example_runs(name: str, args: list[str], expect: str, tmp_path) -> None:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TMPDIR=str(tmp_path))
    r = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *args], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert expect in r.stdout, r.stdout


def test_ledger_keeps_state_across_runs(tmp_path) -> None:
    """The ledger is replayed from the log: a second run starts from the first one's balance."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    data = str(tmp_path / "ledger")
    outs = [subprocess.run([sys.executable, os.path.join(EXAMPLES, "ledger.py"), "--data", data],
                           env=env, capture_output=True, text=True, timeout=120)
            for _ in range(2)]
    assert all(o.returncode == 0 for o in outs), [o.stderr for o in outs]
    assert "balance 10 after 4 events (started at 0)" in outs[0].stdout
    assert "balance 20 after 8 events (started at 10)" in outs[1].stdout
