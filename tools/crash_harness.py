#!/usr/bin/env python3
"""Kill a writing process with SIGKILL at random moments and check nothing acknowledged is lost.

A child process appends batches with ``fsync="always"`` and prints one line per acknowledged
append (partition, first offset, count, round, first sequence number). The parent SIGKILLs it
after a random number of acknowledgements (so the kill usually lands in the middle of a write),
reopens the data directory (which runs crash recovery), and checks that

* every acknowledged record is present, at its acknowledged offset, with its exact value;
* offsets are contiguous from the log start and every stored batch passes its CRC check
  (nothing after a torn tail is served);
* the log accepts appends again after recovery.

Usage: ``python tools/crash_harness.py --rounds 200 [--data DIR] [--seed N]``.
The test suite runs the same code with 20 rounds.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

TOPIC = "crash"
PARTITIONS = 2


def value_for(round_no: int, seq: int) -> bytes:
    head = b"%d:%d:" % (round_no, seq)
    return head + bytes((seq * 7 + i) % 251 for i in range(40 + seq % 60))


def child(data: str, round_no: int, seed: int, fsync: str, encrypt: bool = False) -> None:
    import logmq

    rng = random.Random(seed)
    log = logmq.open(data, fsync=fsync)
    if TOPIC not in log.list_topics():
        config: dict[str, object] = {"segment.bytes": 64 * 1024}
        if encrypt:  # sealed batches (keys from LOGMQ_ENCRYPTION_KEYS, inherited)
            config["encryption"] = "aes-256-gcm"
        log.create_topic(TOPIC, partitions=PARTITIONS, config=config)
    producer = log.producer()
    seq = 0
    out = sys.stdout
    while True:
        n = rng.randint(1, 40)
        p = rng.randrange(PARTITIONS)
        recs = [(b"k%d" % (seq + i), value_for(round_no, seq + i)) for i in range(n)]
        meta = producer.send_batch(TOPIC, recs, partition=p)
        out.write(f"{p} {meta[0].offset} {n} {round_no} {seq}\n")
        out.flush()
        seq += n


@dataclass
class Stats:
    rounds: int = 0
    acked_records: int = 0
    truncated_bytes: int = 0
    records_after_last_ack: int = 0
    errors: list[str] = field(default_factory=list)


def verify(data: str, acked: dict[tuple[int, int], bytes], stats: Stats) -> None:
    import logmq
    from logmq.codec.records import iter_records

    with logmq.open(data) as log:
        for p in range(PARTITIONS):
            plog = log.partition_log(TOPIC, p)
            stats.truncated_bytes += plog.recovered_bytes_truncated
            start, end = log.offsets((TOPIC, p))
            off = start
            seen: dict[int, bytes] = {}
            while off < end:
                raw = log.read_batches((TOPIC, p), off, 1 << 20)
                for rec in iter_records(raw, min_offset=off, validate=True):
                    if rec[0] != off:
                        stats.errors.append(f"partition {p}: expected offset {off}, got {rec[0]}")
                        return
                    seen[off] = rec[3]
                    off += 1
            for (ap, ao), val in acked.items():
                if ap == p and seen.get(ao) != val:
                    stats.errors.append(f"acked record {p}/{ao} lost or changed")
                    return
            last_acked = max((o for (ap, o) in acked if ap == p), default=-1)
            stats.records_after_last_ack += max(0, end - 1 - last_acked)
        # the log must take appends again after recovery
        log.producer().send_batch(TOPIC, [(b"probe", b"probe")], partition=0)
        acked[(0, log.end_offset((TOPIC, 0)) - 1)] = b"probe"


def run(data: str, rounds: int, seed: int = 0, fsync: str = "always",
        max_acks: int = 150, encrypt: bool = False) -> Stats:
    rng = random.Random(seed)
    stats = Stats()
    acked: dict[tuple[int, int], bytes] = {}
    for r in range(rounds):
        kill_after = rng.randint(1, max_acks)
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", "--data", data,
             "--round", str(r), "--seed", str(rng.randrange(1 << 30)), "--fsync", fsync,
             *(["--encrypt"] if encrypt else [])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line.decode())
            if len(lines) >= kill_after:
                proc.send_signal(signal.SIGKILL)
                break
        else:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"child exited early (round {r}): {err[-2000:]}")
        rest = proc.stdout.read()  # acks written before the kill landed
        proc.wait()
        lines.extend(x for x in rest.decode().splitlines() if x.endswith(("\n",)) or x)
        for line in lines:
            parts = line.split()
            if len(parts) != 5:
                continue  # a line torn by the kill was never a complete acknowledgement
            p, first, n, rnd, seq = map(int, parts)
            for i in range(n):
                acked[(p, first + i)] = value_for(rnd, seq + i)
            stats.acked_records += n
        verify(data, acked, stats)
        stats.rounds += 1
        if stats.errors:
            break
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data")
    ap.add_argument("--round", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--fsync", default="always", choices=["always", "interval", "never"])
    ap.add_argument("--encrypt", action="store_true",
                    help="an encrypted topic (set LOGMQ_ENCRYPTION_KEYS=id:BASE64)")
    args = ap.parse_args()
    if args.child:
        child(args.data, args.round, args.seed, args.fsync, args.encrypt)
        return
    data = args.data or tempfile.mkdtemp(prefix="logmq-crash-")
    stats = run(data, args.rounds, args.seed, args.fsync, encrypt=args.encrypt)
    print(f"rounds={stats.rounds} acked_records={stats.acked_records} "
          f"truncated_bytes={stats.truncated_bytes} "
          f"unacked_but_kept={stats.records_after_last_ack} errors={len(stats.errors)}")
    for e in stats.errors:
        print("ERROR:", e)
    sys.exit(1 if stats.errors else 0)


if __name__ == "__main__":
    main()
