"""SIGKILL a process in the middle of expected-version appends: every acknowledged event is
there after reopening, with its version; versions stay contiguous; appends continue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import logmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WRITER = r"""
import sys, logmq
log = logmq.open(sys.argv[1])
v = {k: log.streams.version("bank", k) for k in ("a", "b", "c")}
i = 0
while True:
    k = "abc"[i % 3]
    r = log.append_to_stream("bank", k, [b"%s-%d" % (k.encode(), v[k] + 1)] * 3,
                             expected_version=v[k])
    v[k] = r.version
    print(k, r.version, flush=True)
    i += 1
"""


def run_and_kill(data: str, acks_wanted: int) -> dict[str, int]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, data], stdout=subprocess.PIPE,
                            env=env, text=True)
    acked: dict[str, int] = {}
    n = 0
    deadline = time.monotonic() + 60
    try:
        assert proc.stdout is not None
        while n < acks_wanted and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            k, v = line.split()
            acked[k] = int(v)
            n += 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert n >= acks_wanted, "the writer did not get going"
    return acked


def test_sigkill_mid_append_keeps_every_acknowledged_event(data_dir):
    for _round in range(3):
        acked = run_and_kill(data_dir, 40)
        with logmq.open(data_dir) as log:
            for k, v in acked.items():
                evs = log.read_stream("bank", k)
                versions = [e.version for e in evs]
                assert versions == list(range(len(versions)))  # contiguous, nothing torn
                assert versions[-1] >= v  # every acknowledged one survived
                assert len(versions) % 3 == 0  # batches are all-or-nothing
                # each batch of 3 carries the version of its first event
                assert all(e.value == b"%s-%d" % (k.encode(), e.version - e.version % 3)
                           for e in evs)
            cur = log.streams.version("bank", "a")
            r = log.append_to_stream("bank", "a", [b"a-%d" % (cur + 1)] * 3,
                                     expected_version=cur)
            assert r.version == cur + 3
