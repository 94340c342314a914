"""A short run of tools/soak.py: the crash and full-disk parts, bounded to about 30 s.

The owner process is SIGKILLed every 2-4 s while producers, a consumer group, queue members,
retention and compaction run; as root a tmpfs fills up once mid-run. Nothing acknowledged may
be lost or stored twice, the group may not skip offsets, and every acknowledged job is
processed after the final drain.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import soak  # noqa: E402


def _run(seed: int) -> soak.Report:
    return soak.run(15, None, seed=seed, disk_full=True, kill_every=(2.0, 4.0), verbose=False)


def test_short_soak_loses_and_duplicates_nothing_acknowledged():
    rep = _run(3)
    if os.geteuid() == 0 and rep.refused_disk_full == 0:
        # the 4 s full-disk window fell where no append was tried (a restart in progress):
        # the fault was not exercised, so run once more; losses count in every run
        assert (rep.lost, rep.duplicated, rep.jobs_unprocessed) == (0, 0, 0), rep.problems
        rep = _run(4)
    assert rep.kills >= 2
    assert sum(rep.produced.values()) > 1000
    assert (rep.lost, rep.duplicated, rep.kv_latest_lost) == (0, 0, 0), rep.problems
    assert rep.group_gaps == 0 and rep.group_delivered > 0, rep.problems
    assert rep.jobs_processed > 0 and rep.jobs_unprocessed == 0, rep.problems
    assert rep.jobs_dead_lettered == 0, rep.problems  # max_attempts=1000: none due
    # produces fail only with typed errors (counted as refusals); LMDB commits of groups and
    # queues may fail while the disk is full, and are retried by the soak's members
    assert not [k for k in rep.other_errors if k.startswith("produce")], rep.other_errors
    if os.geteuid() == 0:  # CI: the disk filled once, was refused, then took appends again
        assert rep.disk_full_episodes == 1
        assert rep.refused_disk_full > 0 and rep.acked_after_disk_full > 0
