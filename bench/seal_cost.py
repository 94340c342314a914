#!/usr/bin/env python3
"""What encryption at rest costs: sealed vs plain topic, produce and consume, in one run.

Embedded (``logmq.open``: producer ``send_batch`` and ``Consumer.poll``) and over the wire
(``logmq serve`` with confluent-kafka; Fetch of a sealed topic decrypts and so cannot use
sendfile, and that is the cost measured here). Plain and sealed runs alternate, best of
``--rounds``; ratios are sealed / plain throughput of the same run.

    PYTHONPATH=. python bench/seal_cost.py [--records N] [--value-bytes B] [--rounds R]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import logmq
from logmq.codec.seal import new_key

SEALED = {"encryption": "aes-256-gcm"}


def best(fn: Callable[[], float], rounds: int) -> float:
    return min(fn() for _ in range(rounds))


def embedded(tmp: str, kf: str, n: int, size: int, rounds: int) -> dict[str, float]:
    value = os.urandom(size)
    chunk = [(b"key-%d" % i, value) for i in range(500)]
    out: dict[str, float] = {}
    with logmq.open(os.path.join(tmp, "emb"), encryption_key_file=kf, fsync="never",
                    cleaner=False) as log:
        topics = {"plain": None, "sealed": SEALED}
        seq = {k: 0 for k in topics}

        def produce(kind: str) -> float:
            seq[kind] += 1
            t = f"{kind}-{seq[kind]}"
            log.create_topic(t, 1, topics[kind])
            p = log.producer()
            t0 = time.perf_counter()
            for _ in range(n // len(chunk)):
                p.send_batch(t, chunk, partition=0)
            p.flush()
            return time.perf_counter() - t0

        def consume(kind: str) -> float:
            t = f"{kind}-{seq[kind]}"
            c = log.consumer(auto_offset_reset="earliest", max_poll_records=5000)
            c.assign([(t, 0)])
            got = 0
            t0 = time.perf_counter()
            while got < n:
                got += len(c.poll(timeout=1))
            dt = time.perf_counter() - t0
            c.close()
            return dt

        for kind in ("plain", "sealed"):
            out[f"embedded produce {kind}"] = 0.0
            out[f"embedded consume {kind}"] = 0.0
        for _ in range(rounds):
            for kind in ("plain", "sealed"):
                dp = produce(kind)
                dc = consume(kind)
                for k, d in ((f"embedded produce {kind}", dp), (f"embedded consume {kind}", dc)):
                    out[k] = max(out[k], n / d)
    return out


def sealer_alone(size: int, rounds: int) -> list[tuple[int, float, float]]:
    """(batch bytes, seal MB/s, open MB/s) of the per-batch work alone (AEAD + framing)."""
    from logmq.codec.records import encode_batch
    from logmq.codec.seal import KeyRing, Sealer

    s = Sealer(KeyRing({"b1": os.urandom(32)}), None, "bench")
    out: list[tuple[int, float, float]] = []
    for per_batch in (10, 500):
        batch = encode_batch([(b"key-%d" % i, os.urandom(size)) for i in range(per_batch)])
        sealed = s.seal(batch)
        reps = max(1, (20 << 20) // len(batch))

        def run(fn: Callable[[], object], reps: int = reps) -> float:
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            return time.perf_counter() - t0

        seal_once = functools.partial(s.seal, batch)
        open_once = functools.partial(s.open, sealed)
        ts = best(functools.partial(run, seal_once), rounds)
        to = best(functools.partial(run, open_once), rounds)
        mb = reps * len(batch) / 1e6
        out.append((len(batch), mb / ts, mb / to))
    return out


def _serve(data: str, kf: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "logmq.cli", "serve", "--data", data, "--listen",
         "127.0.0.1:0", "--encryption-key-file", kf, "--topic-default", "fsync=never"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        m = re.search(r"listening on ([\d.]+):(\d+)", line)
        if m:
            return proc, f"{m.group(1)}:{m.group(2)}"
    raise RuntimeError("server did not start")


def wire(tmp: str, kf: str, n: int, size: int, rounds: int) -> dict[str, float]:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    proc, bootstrap = _serve(os.path.join(tmp, "wire"), kf)
    out: dict[str, float] = {}
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        value = os.urandom(size)
        for r in range(rounds):
            for kind, cfg in (("plain", {}), ("sealed", SEALED)):
                t = f"w{kind}-{r}"
                admin.create_topics([NewTopic(t, 1, 1, config=cfg)])[t].result(10)
                p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                              "batch.size": 1 << 20, "queue.buffering.max.messages": 1 << 20})
                t0 = time.perf_counter()
                for i in range(n):
                    while True:
                        try:
                            p.produce(t, value, key=b"key-%d" % i, partition=0)
                            break
                        except BufferError:
                            p.poll(0.01)
                assert p.flush(60) == 0
                dp = time.perf_counter() - t0
                c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{t}",
                              "fetch.max.bytes": 50 << 20,
                              "max.partition.fetch.bytes": 10 << 20})
                c.assign([TopicPartition(t, 0, 0)])
                got = 0
                t0 = time.perf_counter()
                deadline = t0 + 120
                while got < n and time.perf_counter() < deadline:
                    got += len([m for m in c.consume(10000, 1.0) if not m.error()])
                dc = time.perf_counter() - t0
                c.close()
                del p, c  # librdkafka handles closed before the server stops
                for k, d in ((f"wire produce {kind}", dp), (f"wire consume {kind}", dc)):
                    out[k] = max(out.get(k, 0.0), n / d)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--value-bytes", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-wire", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="seal-cost-") as tmp:
        kf = os.path.join(tmp, "keys.json")
        with open(kf, "w") as f:
            json.dump({"active": "b1", "keys": {"b1": new_key()}}, f)
        os.chmod(kf, 0o600)
        res = embedded(tmp, kf, args.records, args.value_bytes, args.rounds)
        if not args.no_wire:
            res.update(wire(tmp, kf, args.records, args.value_bytes, args.rounds))
    alone = sealer_alone(args.value_bytes, args.rounds)
    mb = args.value_bytes / 1e6
    print(f"{args.records} records of {args.value_bytes} B values, best of {args.rounds}")
    print(f"{'path':24} {'plain rec/s':>12} {'sealed rec/s':>13} {'plain MB/s':>11} "
          f"{'sealed MB/s':>12} {'sealed/plain':>12}")
    for path in ("embedded produce", "embedded consume", "wire produce", "wire consume"):
        if f"{path} plain" not in res:
            continue
        p, s = res[f"{path} plain"], res[f"{path} sealed"]
        print(f"{path:24} {p:12,.0f} {s:13,.0f} {p * mb:11.1f} {s * mb:12.1f} {s / p:12.2f}")
    for size, seal_mb, open_mb in alone:
        print(f"sealer alone, {size:>7,} B batches: seal {seal_mb:,.0f} MB/s, "
              f"open {open_mb:,.0f} MB/s")


if __name__ == "__main__":
    main()
