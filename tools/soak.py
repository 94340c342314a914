#!/usr/bin/env python3
"""Soak: everything at once, SIGKILLs of the owning process, a full disk; count what is lost.

An *owner* child process opens the data directory and runs, until killed:

* producers appending to ``ledger`` (fsync=always, kept forever), ``events`` (small segments,
  retention by bytes and time: the cleaner deletes segments under the readers) and ``kv``
  (compacted: 40 keys, the cleaner rewrites segments);
* a consumer group reading ``ledger`` and committing after each poll;
* share-group (queue) members receiving ``jobs``, acking most and nacking some.

It prints one line per acknowledged event (a produce that returned, a consumed record, a
queue ack). The parent SIGKILLs it at a random moment, reopens the directory itself (crash
recovery), checks, and starts the next owner. Once per run (if it can mount a tmpfs, i.e. as
root) the disk fills for a few seconds while the owner keeps running, then space returns.

Reported, for acknowledged records only:
* ``lost``: a produce acknowledged whose record is not at its offset (above the log start
  for retention topics) with its exact value; for ``kv``, the latest acknowledged value of a
  key that the compacted log no longer holds (nor anything newer);
* ``duplicated``: a record id stored twice;
* consumer group: ``gaps`` (ledger offsets never delivered below the committed position,
  the group equivalent of a loss) and ``redelivered`` (at-least-once after a kill: expected);
* queue: ``jobs_unprocessed`` (acknowledged jobs never acked by a member after the final
  drain, nor dead-lettered), ``jobs_dead_lettered`` (acknowledged jobs in ``jobs.dlq``
  that no member processed: with ``max_attempts=1000`` a sign of an engine fault, reported
  apart from losses), ``jobs_redelivered`` (acked twice: a kill between processing and ack)
  and ``jobs_queue_at_end`` (the share group's numbers after the drain: an unprocessed job
  still counted in ``depth`` was late, one that is not was skipped).

Usage: ``python tools/soak.py --duration 1800 [--data DIR] [--seed N] [--no-disk-full]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

TOPICS: dict[str, tuple[int, dict[str, Any]]] = {
    "ledger": (2, {"fsync": "always", "segment.bytes": 256 * 1024}),
    "events": (3, {"segment.bytes": 32 * 1024, "retention.bytes": 128 * 1024,
                   "retention.ms": 60_000, "segment.ms": 5_000}),
    "kv": (2, {"cleanup.policy": "compact", "segment.bytes": 16 * 1024,
               "min.cleanable.dirty.ratio": 0.1, "delete.retention.ms": 1000}),
    "jobs": (2, {}),
}
KEYS = 40


def value_for(rid: str) -> bytes:
    """The value a record id maps to, so checks need only the id."""
    n = zlib.crc32(rid.encode())
    return rid.encode() + b"|" + bytes((n + i * 31) % 251 for i in range(50 + n % 7))


# ---------------------------------------------------------------------- the owner (child)
def owner(data: str, round_no: int, seed: int, drain: bool) -> None:
    import logmq
    from logmq.errors import LogMQError

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # every thread inherits this
    rng = random.Random(seed)
    log = logmq.open(data)
    if log.cleaner is not None:
        log.cleaner.check_interval_ms = 500
    for name, (parts, cfg) in TOPICS.items():
        if name not in log.list_topics():
            log.create_topic(name, partitions=parts, config=cfg)
    out_lock = threading.Lock()
    stop = threading.Event()

    def emit(line: str) -> None:
        with out_lock:
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except BrokenPipeError:  # the parent is gone: so are we
                os._exit(3)

    def produce(topic: str, tid: int, pause: float) -> None:
        p = log.producer(linger_ms=0)
        seq = 0
        while not stop.is_set():
            rid = f"{topic[0]}{round_no}.{tid}.{seq}"
            key = f"k{rng.randrange(KEYS)}" if topic == "kv" else rid
            try:
                m = p.send(topic, value_for(rid), key=key.encode()).result(timeout=30)
                emit(f"P {topic} {m.partition} {m.offset} {rid} {key}")
            except LogMQError as e:
                emit(f"E {type(e).__name__}")
                time.sleep(0.05)
            except Exception as e:  # noqa: BLE001 - a soak reports, it does not stop
                emit(f"X produce {type(e).__name__} {str(e)[:80]!r}")
                time.sleep(0.05)
            seq += 1
            if pause:
                time.sleep(pause * rng.random())

    def group() -> None:
        c = log.consumer("ledger", group="soak", auto_offset_reset="earliest")
        while not stop.is_set():
            try:
                recs = c.poll(timeout=0.2)
                for r in recs:  # "processed" before the commit: a kill between is a redelivery
                    emit(f"G {r.partition} {r.offset} {r.value.split(b'|')[0].decode()}")
                if recs:
                    c.commit()
            except Exception as e:  # noqa: BLE001
                emit(f"X group {type(e).__name__} {str(e)[:80]!r}")
                time.sleep(0.1)

    def queue(mid: int) -> None:
        q = log.queue("jobs", group="soakq", lock_ms=3_000, max_attempts=1000)
        while not stop.is_set():
            try:
                for rec in q.receive(max_records=20, timeout=0.2):
                    rid = rec.value.split(b"|")[0].decode()
                    if rng.random() < 0.05:
                        rec.nack(delay=0.05)
                    else:
                        emit(f"Q {rid}")  # processed, then acked: a kill between redelivers
                        rec.ack()
            except Exception as e:  # noqa: BLE001
                emit(f"X queue {type(e).__name__} {str(e)[:80]!r}")
                time.sleep(0.1)

    threads = [threading.Thread(target=group)] + \
              [threading.Thread(target=queue, args=(i,)) for i in range(2)]
    if not drain:  # the final round only consumes, until the parent sees no more work
        threads += [threading.Thread(target=produce, args=("ledger", 0, 0.002)),
                    threading.Thread(target=produce, args=("events", 1, 0.002)),
                    threading.Thread(target=produce, args=("kv", 2, 0.002)),
                    threading.Thread(target=produce, args=("jobs", 3, 0.002))]
    for t in threads:
        t.daemon = True
        t.start()
    emit("READY")
    signal.sigwait({signal.SIGTERM})  # only SIGKILL (or the drain's SIGTERM) ends us
    stop.set()
    for t in threads:
        t.join(10)
    log.close()
    emit("CLOSED")


# ---------------------------------------------------------------------- the parent
@dataclass
class Report:
    rounds: int = 0
    kills: int = 0
    produced: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    duplicated: int = 0
    kv_latest_lost: int = 0
    group_delivered: int = 0
    group_gaps: int = 0
    group_redelivered: int = 0
    jobs_acked_produce: int = 0
    jobs_processed: int = 0
    jobs_unprocessed: int = 0
    jobs_redelivered: int = 0
    jobs_dead_lettered: int = 0
    jobs_queue_at_end: dict[str, int | None] = field(default_factory=dict)
    refused_disk_full: int = 0
    other_errors: dict[str, int] = field(default_factory=dict)
    disk_full_episodes: int = 0
    acked_after_disk_full: int = 0
    recovery_truncated_bytes: int = 0
    recovery_seconds_max: float = 0.0
    problems: list[str] = field(default_factory=list)


class State:
    """What the parent has seen acknowledged, checked after every kill."""

    def __init__(self) -> None:
        self.pending: dict[tuple[str, int], dict[int, str]] = defaultdict(dict)
        self.kv_latest: dict[str, tuple[int, int, str]] = {}  # key -> (partition, offset, rid)
        self.group_pos: dict[int, int] = defaultdict(lambda: -1)
        self.jobs: set[str] = set()
        self.processed: set[str] = set()
        self.last_line = time.monotonic()

    def line(self, s: str, rep: Report, disk_full: bool) -> None:
        parts = s.split()
        if not parts:
            return
        self.last_line = time.monotonic()
        kind = parts[0]
        if kind == "P" and len(parts) == 6:
            topic, p, off, rid, key = parts[1], int(parts[2]), int(parts[3]), parts[4], parts[5]
            rep.produced[topic] = rep.produced.get(topic, 0) + 1
            if disk_full:
                rep.acked_after_disk_full += 1
            self.pending[(topic, p)][off] = rid
            if topic == "kv":
                old = self.kv_latest.get(key)
                if old is None or (old[0] == p and old[1] < off):
                    self.kv_latest[key] = (p, off, rid)
            if topic == "jobs":
                self.jobs.add(rid)
                rep.jobs_acked_produce += 1
        elif kind == "G" and len(parts) == 4:
            p, off = int(parts[1]), int(parts[2])
            rep.group_delivered += 1
            if off <= self.group_pos[p]:
                rep.group_redelivered += 1
            elif off > self.group_pos[p] + 1:
                rep.group_gaps += off - self.group_pos[p] - 1
                rep.problems.append(f"group skipped ledger-{p} offsets "
                                    f"{self.group_pos[p] + 1}..{off - 1}")
            self.group_pos[p] = max(self.group_pos[p], off)
        elif kind == "Q" and len(parts) == 2:
            rid = parts[1]
            if rid in self.processed:
                rep.jobs_redelivered += 1
            self.processed.add(rid)
            rep.jobs_processed += 1
        elif kind == "E" and len(parts) == 2:
            if parts[1] == "DiskFullError":
                rep.refused_disk_full += 1
            else:
                rep.other_errors[parts[1]] = rep.other_errors.get(parts[1], 0) + 1
        elif kind == "X":
            k = " ".join(parts[1:3])
            rep.other_errors[k] = rep.other_errors.get(k, 0) + 1


def verify(data: str, st: State, rep: Report, final: bool = False) -> None:
    """Reopen (crash recovery) and check every acknowledged record not checked yet."""
    import logmq
    from logmq.codec.records import decode_batch

    t0 = time.monotonic()
    log = logmq.open(data, cleaner=False)
    rep.recovery_seconds_max = max(rep.recovery_seconds_max, time.monotonic() - t0)
    try:
        for (topic, p), acked in st.pending.items():
            if not acked or topic == "kv":
                continue
            plog = log.partition_log(topic, p)
            rep.recovery_truncated_bytes += plog.recovered_bytes_truncated
            start, end = plog.log_start_offset, plog.next_offset
            lo = max(start, min(acked))
            seen: dict[int, bytes | None] = {}
            off = lo
            while off < end:
                raw = plog.read_bytes(off, 1 << 20)
                pos = 0
                while pos < len(raw):
                    h, recs = decode_batch(raw, pos)
                    for r in recs:
                        if r[0] >= lo:
                            seen[r[0]] = r[3]
                    pos += h.size
                off = h.next_offset
            ids: set[bytes] = set()
            for v in seen.values():
                stored = (v or b"").split(b"|")[0]
                if stored in ids:
                    rep.duplicated += 1
                ids.add(stored)
            for off, rid in acked.items():
                if off < start:
                    continue  # removed by retention
                if seen.get(off) != value_for(rid):
                    rep.lost += 1
                    rep.problems.append(f"lost {topic}-{p}@{off} ({rid})")
            acked.clear()
        # compaction may drop anything but the latest value of a key
        latest: dict[str, tuple[int, int]] = {}
        for p in range(log.partitions_for("kv")):
            plog = log.partition_log("kv", p)
            off = plog.log_start_offset
            while off < plog.next_offset:
                sl = plog.read(off, 1 << 20, whole_batches=True)
                if sl is None:
                    break
                raw = sl.read()
                pos = 0
                if not raw:
                    off = sl.end
                    continue
                while pos < len(raw):
                    h, recs = decode_batch(raw, pos)
                    for r in recs:
                        if r[2] is not None:
                            latest[r[2].decode()] = (p, r[0])
                    pos += h.size
                off = h.next_offset
        for key, (p, off, kv_rid) in st.kv_latest.items():
            got = latest.get(key)
            if got is None or got[0] != p or got[1] < off:
                rep.kv_latest_lost += 1
                rep.problems.append(f"kv key {key}: latest acked {kv_rid}@{off} gone")
        st.pending["kv", 0].clear()
        st.pending["kv", 1].clear()
        if final:
            missing = st.jobs - st.processed
            dead = _dead_lettered(log, "jobs") & missing
            rep.jobs_dead_lettered = len(dead)
            rep.jobs_unprocessed = len(missing - dead)
            qs = log.queues.share_group("jobs", "soakq").stats()
            rep.jobs_queue_at_end = {k: getattr(qs, k) for k in (
                "depth", "available", "in_flight", "scheduled", "dlq_size", "members")}
            for rid in sorted(missing)[:10]:
                how = "dead-lettered" if rid in dead else "unprocessed"
                rep.problems.append(f"job {rid} not processed ({how}; queue at end "
                                    f"{rep.jobs_queue_at_end})")
    finally:
        log.close()


def _dead_lettered(log: Any, topic: str) -> set[str]:
    """Record ids in ``topic``'s dead-letter topic (the queue engine's ``<topic>.dlq``)."""
    from logmq.codec.records import decode_batch

    dlq = topic + ".dlq"
    out: set[str] = set()
    if dlq not in log.list_topics():
        return out
    for p in range(log.partitions_for(dlq)):
        plog = log.partition_log(dlq, p)
        off = plog.log_start_offset
        while off < plog.next_offset:
            raw = plog.read_bytes(off, 1 << 20)
            if not raw:
                break
            pos = 0
            while pos < len(raw):
                h, recs = decode_batch(raw, pos)
                out.update((r[3] or b"").split(b"|")[0].decode() for r in recs)
                pos += h.size
            off = h.next_offset
    return out


def mount_tmpfs(size_mb: int) -> str | None:
    if os.geteuid() != 0:
        return None
    mnt = tempfile.mkdtemp(prefix="logmq-soak-fs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", mnt],
                       capture_output=True)
    if r.returncode:
        os.rmdir(mnt)
        return None
    return mnt


def fill(fs: str) -> str:
    """Write a file until the file system refuses another byte; returns its path."""
    path = os.path.join(fs, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in (1 << 20, 4096, 1):
            buf = b"\0" * chunk
            while True:
                try:
                    if os.write(fd, buf) < chunk:
                        break
                except OSError:
                    break
    finally:
        os.close(fd)
    return path


def run(duration: float, data: str | None, seed: int, disk_full: bool,
        kill_every: tuple[float, float] = (3.0, 12.0), verbose: bool = True) -> Report:
    rng = random.Random(seed)
    rep = Report()
    st = State()
    # the log grows ~16 MiB a minute on this workload (no retention: every acked record is
    # checked): size the tmpfs so only the deliberate episode fills it
    fs = mount_tmpfs(max(256, int(duration // 2))) if disk_full and data is None else None
    base = fs or tempfile.mkdtemp(prefix="logmq-soak-")
    path = data or os.path.join(base, "data")
    deadline = time.monotonic() + duration
    full_at = rng.uniform(0.3, 0.6) * duration if fs else None
    started = time.monotonic()
    here = os.path.abspath(__file__)
    proc: subprocess.Popen[str] | None = None
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(here)))
    try:
        while True:
            final = time.monotonic() >= deadline
            rep.rounds += 1
            proc = subprocess.Popen([sys.executable, here, "--owner", path, str(rep.rounds),
                                     str(rng.randrange(1 << 30)), "drain" if final else "run"],
                                    stdout=subprocess.PIPE, text=True, env=env)
            flag = {"full": False}

            def reader(p: subprocess.Popen = proc, flag: dict = flag) -> None:
                assert p.stdout is not None
                for ln in p.stdout:
                    if ln.endswith("\n"):
                        st.line(ln, rep, flag["full"])

            t = threading.Thread(target=reader, daemon=True)
            t.start()
            life = rng.uniform(*kill_every) if not final else 8.0
            end = time.monotonic() + life
            if full_at is not None and time.monotonic() - started >= full_at:
                full_at = None
                time.sleep(life / 3)
                filler = fill(fs)  # type: ignore[arg-type]
                rep.disk_full_episodes += 1
                time.sleep(4)
                os.unlink(filler)
                flag["full"] = True  # acks from here on came after the disk was full
                end = time.monotonic() + 4
            while time.monotonic() < end and proc.poll() is None:
                time.sleep(0.05)
            if final:  # drain: until consumers have been quiet for 3 s and every
                # acknowledged job was processed (at most 120 s): a job whose redelivery
                # waits out a lock or a backoff longer than the quiet window is late, not
                # lost; one still unprocessed after 120 s is reported as lost
                limit = time.monotonic() + 120
                while (time.monotonic() < limit and proc.poll() is None
                       and (time.monotonic() - st.last_line < 3 or st.jobs - st.processed)):
                    time.sleep(0.1)
            if final:
                proc.send_signal(signal.SIGTERM)  # the drain: close cleanly
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            else:
                proc.kill()
                rep.kills += 1
            proc.wait()
            t.join(10)
            verify(path, st, rep, final=final)
            proc = None
            if verbose:
                print(f"round {rep.rounds}: produced {sum(rep.produced.values())} lost "
                      f"{rep.lost} dup {rep.duplicated} gaps {rep.group_gaps} "
                      f"disk-full refusals {rep.refused_disk_full}", file=sys.stderr)
            if final:
                break
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if fs:
            subprocess.run(["umount", "-l", fs], check=False)
            os.rmdir(fs)
        elif data is None:
            shutil.rmtree(base, ignore_errors=True)
    return rep


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--owner":
        owner(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "drain")
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=60, help="seconds of soak (default 60)")
    ap.add_argument("--data", help="data directory (default: a tmpfs as root, else a temp dir)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-disk-full", action="store_true", help="skip the full-disk episode")
    a = ap.parse_args()
    rep = run(a.duration, a.data, a.seed, not a.no_disk_full)
    d = asdict(rep)
    d["problems"] = rep.problems[:20]
    print(json.dumps(d, indent=2))
    bad = rep.lost or rep.duplicated or rep.kv_latest_lost or rep.group_gaps \
        or rep.jobs_unprocessed or rep.jobs_dead_lettered
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
