"""Many partitions under a low descriptor limit: segments share an LRU of descriptors.

Before, every partition held its active segment's descriptor, so a topic with more
partitions than ``RLIMIT_NOFILE`` failed with EMFILE at creation and at every later open.
Here a child process lowers its soft limit to 128 and creates, fills, reopens (cleanly and
after a crash) ten times as many partitions. Data lives on /dev/shm when it exists, because
what is tested is descriptors, not fsync speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT = 128
PARTITIONS = 1200

_CHILD = textwrap.dedent("""
    import json, os, resource, sys
    resource.setrlimit(resource.RLIMIT_NOFILE,
                       (int(sys.argv[3]), resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    import logmq
    from logmq.codec.records import encode_batch
    from logmq.storage import handles
    d, step, n = sys.argv[1], sys.argv[2], int(sys.argv[4])
    peak = 0
    def sample():
        global peak
        peak = max(peak, len(os.listdir("/proc/self/fd")))
    log = logmq.open(d, cleaner=False)
    sample()
    if step == "create":
        for t in range(3):
            log.create_topic(f"t{t}", partitions=n // 3)
            sample()
    batch = encode_batch([(None, b"x")], timestamp=1)
    if step in ("create", "crash"):
        for t in range(3):
            for p in range(n // 3):
                log.append_batches((f"t{t}", p), batch)
                if p % 100 == 0:
                    sample()
    ends = sum(log.end_offset((f"t{t}", p)) for t in range(3) for p in range(n // 3))
    # read every partition (opens every segment once more, through the LRU)
    read = sum(len(log.read_batches((f"t{t}", p), 0)) > 0 for t in range(3) for p in range(n // 3))
    sample()
    out = {"ends": ends, "read": read, "peak_fds": peak, "cache": handles.open_count(),
           "cap": handles.capacity()}
    print(json.dumps(out), flush=True)
    if step == "crash":
        os._exit(0)  # no close: the next open recovers
    log.close()
""")


def _run(d: str, step: str) -> dict:
    r = subprocess.run([sys.executable, "-c", _CHILD, d, step, str(LIMIT), str(PARTITIONS)],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture
def fast_dir(tmp_path):
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=base or str(tmp_path)) as d:
        yield os.path.join(d, "data")


def test_ten_times_more_partitions_than_descriptors(fast_dir):
    created = _run(fast_dir, "create")
    assert created["ends"] == PARTITIONS and created["read"] == PARTITIONS
    assert created["peak_fds"] < LIMIT
    assert created["cache"] <= created["cap"] < LIMIT
    reopened = _run(fast_dir, "crash")  # clean open, one more record each, then killed
    assert reopened["ends"] == 2 * PARTITIONS and reopened["peak_fds"] < LIMIT
    recovered = _run(fast_dir, "open")  # unclean open: every partition is scanned
    assert recovered["ends"] == 2 * PARTITIONS and recovered["read"] == PARTITIONS
    assert recovered["peak_fds"] < LIMIT


def test_descriptor_headroom_is_checked_before_a_topic_is_committed(tmp_path):
    code = textwrap.dedent("""
        import json, os, resource, sys
        import logmq
        from logmq.errors import PartitionLimitError
        log = logmq.open(sys.argv[1], cleaner=False)
        held = [os.open(os.devnull, os.O_RDONLY) for _ in range(40)]
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (len(os.listdir("/proc/self/fd")) + 20,
                            resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        try:
            log.create_topic("t", partitions=500)
            out = "created"
        except PartitionLimitError as e:
            out = str(e)
        print(json.dumps({"out": out, "topics": log.list_topics()}))
    """)
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "d")], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "file descriptors are free" in out["out"] and out["topics"] == []
