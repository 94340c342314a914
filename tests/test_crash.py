"""Crash safety with real processes: SIGKILL a writer, reopen, check every acknowledged record."""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import crash_harness  # noqa: E402


def test_sigkill_mid_write_loses_no_acknowledged_record(tmp_path):
    stats = crash_harness.run(str(tmp_path / "data"), rounds=20, seed=1234)
    assert stats.errors == []
    assert stats.rounds == 20
    assert stats.acked_records > 20


def test_harness_detects_a_lost_record(tmp_path):
    """The checker itself must fail when an acknowledged record is missing."""
    data = str(tmp_path / "data")
    stats = crash_harness.run(data, rounds=1, seed=7)
    assert stats.errors == []
    import logmq

    with logmq.open(data) as log:
        end = log.end_offset(("crash", 0))
        log.partition_log("crash", 0).truncate_to(max(0, end - 2))
    acked = {(0, end - 2): b"whatever"}
    bad = crash_harness.Stats()
    crash_harness.verify(data, acked, bad)
    assert bad.errors
