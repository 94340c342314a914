"""examples/eventsourced_bank.py runs, twice on the same directory (the second run resumes
its projection from the stored checkpoint instead of replaying)."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(data: str) -> str:
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "eventsourced_bank.py"),
                          data], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_bank_example_twice(tmp_path):
    data = str(tmp_path / "bank")
    first = run(data)
    assert "alice: balance 90 at version 22" in first
    assert "projection applied 53 new events" in first
    second = run(data)
    assert "alice: balance 180" in second
    assert "projection applied 53 new events" in second  # not 106: resumed at the checkpoint
    assert "{'Alice': 180, 'Bob': 200}" in second
