"""The cleaner under crashes and concurrency, with real processes and threads.

A child process runs a forced compaction with ``LOGMQ_CRASH_POINT`` set, so it SIGKILLs itself
at that step of the swap; the parent reopens the directory and checks that readers see the
same latest-per-key state, with no duplicated or lost record.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading

import pytest

import logmq
from logmq.broker.cleaner import Cleaner
from logmq.storage import compactor

T0 = 1_000_000_000_000
NOW = T0 + 10_000_000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import sys
import logmq
from logmq.broker.cleaner import Cleaner
with logmq.open(sys.argv[1], cleaner=False) as log:
    stats = Cleaner(log, max_bytes_per_sec=None).run_once(now_ms=int(sys.argv[2]), force=True)
    assert not stats["errors"], stats
print("completed")
"""


def _read_all(log, topic: str = "c") -> list:
    c = log.consumer(topic, auto_offset_reset="earliest")
    out = []
    while True:
        got = c.poll(timeout=0)
        if not got:
            break
        out.extend(got)
    c.close(commit=False)
    offsets = [r.offset for r in out]
    assert offsets == sorted(set(offsets)), "offsets must strictly increase, no duplicates"
    return out


def _fold(pairs) -> dict:
    state: dict = {}
    for key, value in pairs:
        if key is None:
            continue
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


def _make_dataset(path: str) -> dict[int, tuple]:
    """offset -> (key, value, timestamp) of what was produced."""
    # A compacted topic of ~25 small segments with duplicates, tombstones and null keys.
    rng = random.Random(42)
    produced: dict[int, tuple] = {}
    with logmq.open(path, cleaner=False) as log:
        log.create_topic("c", partitions=1, config={
            "cleanup.policy": "compact", "segment.bytes": 1024, "delete.retention.ms": 2_000_000})
        p = log.producer(linger_ms=0)
        for b in range(60):
            recs = []
            for _ in range(rng.randint(1, 6)):
                k = None if rng.random() < 0.05 else b"key-%d" % rng.randint(0, 80)
                v = None if rng.random() < 0.15 else b"val-%d-" % b + bytes(rng.randint(0, 40))
                recs.append((k, v))
            ts = T0 + b * 200_000  # the first tombstones are older than delete.retention.ms
            first = p.send_batch("c", recs, timestamp=ts)[0].offset
            for i, (k, v) in enumerate(recs):
                produced[first + i] = (k, v, ts)
        p.close()
        log.partition_log("c", 0).roll()
        # cleaned groups of several input segments, so a swap replaces more than one file
        log.alter_topic_config("c", {"segment.bytes": 4096})
    return produced


def _storage_records(plog) -> list[tuple]:
    """Every record in the segment files, checked at the storage level.

    A consumer skips offsets it has passed, so it would hide a cleaned segment lying next to
    the originals it replaced; here every batch must have a valid CRC and lie inside its
    segment's range (below the next segment's base), offsets must strictly increase across
    the whole log, and the offset index must find every record.
    """
    from logmq.codec.records import decode_batch

    segs = plog.segments
    out: list[tuple] = []
    last = -1
    for i, seg in enumerate(segs):
        upper = segs[i + 1].base_offset if i + 1 < len(segs) else plog.next_offset
        data = seg.read(0, seg.size)
        pos = 0
        while pos < len(data):
            h, recs = decode_batch(data, pos, validate=True)
            assert seg.base_offset <= h.base_offset and h.last_offset < upper, (seg, h)
            for off, ts, k, v, _hdrs in recs:
                assert off > last
                last = off
                out.append((off, k, v, ts))
            pos += h.size
    for off, *_ in out:
        sl = plog.read(off, 1)
        h, recs = decode_batch(sl.read(), 0)
        assert any(r[0] == off for r in recs)
    return out


def _check_state(path: str, produced: dict[int, tuple]) -> list:
    expect = _fold(produced[o][:2] for o in sorted(produced))
    with logmq.open(path, cleaner=False) as log:
        plog = log.partition_log("c", 0)
        names = os.listdir(plog.directory)
        assert not [n for n in names if n.endswith((".cleaned", ".tmp"))], names
        assert compactor.SWAP_FILE not in names
        stored = _storage_records(plog)
        for off, k, v, ts in stored:
            assert (k, v, ts) == produced[off]
        got = _read_all(log)
        assert [r.offset for r in got] == [s[0] for s in stored if s[0] >= plog.log_start_offset]
        assert _fold((r.key, r.value) for r in got) == expect
        return got


POINTS = list(compactor.CRASH_POINTS) + [
    "cleaning-partial@3", "cleaned-written@2", "committed@2", "installed-log@2", "deleted-old@3",
]


@pytest.mark.parametrize("point", POINTS)
def test_kill_at_every_swap_step_keeps_latest_per_key_state(tmp_path, point):
    path = str(tmp_path / "data")
    produced = _make_dataset(path)
    env = dict(os.environ, **{compactor.CRASH_POINT_ENV: point})
    proc = subprocess.run([sys.executable, "-c", CHILD, path, str(NOW)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)
    _check_state(path, produced)
    # A later pass (no fault) finishes the job: exactly the expected latest records remain.
    proc = subprocess.run([sys.executable, "-c", CHILD, path, str(NOW)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items()
                               if k != compactor.CRASH_POINT_ENV})
    assert proc.returncode == 0, proc.stderr
    got = _check_state(path, produced)
    latest = {}
    for off in sorted(produced):
        if produced[off][0] is not None:
            latest[produced[off][0]] = off
    horizon = NOW - 2_000_000
    assert [r.offset for r in got] == sorted(
        o for o in latest.values() if produced[o][1] is not None or produced[o][2] >= horizon)


def test_compaction_while_producing_and_consuming_loses_nothing(tmp_path):
    log = logmq.open(str(tmp_path / "data"), cleaner=False)
    log.create_topic("c", partitions=1, config={
        "cleanup.policy": "compact", "segment.bytes": 2048, "delete.retention.ms": 10**12})
    cleaner = Cleaner(log, max_bytes_per_sec=None)
    produced: dict[int, tuple[bytes, bytes]] = {}
    last_per_key: dict[bytes, int] = {}
    done = threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            p = log.producer(linger_ms=0)
            for b in range(400):
                recs = [(b"k%02d" % ((b * 7 + i) % 40), b"v-%d-%d" % (b, i)) for i in range(5)]
                first = p.send_batch("c", recs)[0].offset
                for i, (k, v) in enumerate(recs):
                    produced[first + i] = (k, v)
                    last_per_key[k] = first + i
            p.close()
        except BaseException as e:  # surfaced by the main thread
            errors.append(e)
        finally:
            done.set()

    def clean() -> None:
        try:
            while not done.is_set():
                stats = cleaner.run_once(force=True)
                assert not stats["errors"], stats["errors"]
            cleaner.run_once(force=True)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=produce), threading.Thread(target=clean)]
    for t in threads:
        t.start()
    consumer = log.consumer("c", auto_offset_reset="earliest")
    seen: dict[int, tuple] = {}
    last = -1
    while True:
        finished = done.is_set()
        got = consumer.poll(timeout=0.05)
        for r in got:
            assert r.offset > last
            last = r.offset
            seen[r.offset] = (r.key, r.value)
        if finished and not got and consumer.position(("c", 0)) >= log.end_offset(("c", 0)):
            break
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert cleaner.totals["records_removed"] > 0
    for off, kv in seen.items():
        assert produced[off] == kv
    # the latest record of every key is never compacted away, so the live reader saw it
    assert all(off in seen for off in last_per_key.values())
    final = _read_all(log)
    assert _fold((r.key, r.value) for r in final) == _fold(produced[o] for o in sorted(produced))
    log.close()


def test_stop_interrupts_a_long_throttled_pass(tmp_path):
    log = logmq.open(str(tmp_path / "data"), cleaner=False)
    log.create_topic("c", partitions=1, config={
        "cleanup.policy": "compact", "segment.bytes": 64 * 1024})
    p = log.producer(linger_ms=0)
    for _ in range(40):  # ~2 MB: about 20 s of work at the throttle below
        p.send_batch("c", [(b"k%d" % (i % 100), bytes(100)) for i in range(500)], timestamp=T0)
    p.close()
    plog = log.partition_log("c", 0)
    plog.roll()
    cleaner = Cleaner(log, check_interval_ms=3_600_000, max_bytes_per_sec=100_000)
    cleaner.start()
    cleaner.wake()
    assert cleaner.in_pass.wait(30)
    cleaner.stop(timeout=30)
    assert not cleaner.running
    assert cleaner.last_stats is not None and cleaner.last_stats["aborted"]
    names = os.listdir(plog.directory)
    assert not [n for n in names if n.endswith(".cleaned")] and compactor.SWAP_FILE not in names
    state = _fold((r.key, r.value) for r in _read_all(log))
    assert state == {b"k%d" % i: bytes(100) for i in range(100)}
    log.close()
