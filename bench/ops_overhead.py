#!/usr/bin/env python3
"""What metrics cost: server throughput with ``--http`` (scraped every second) vs without,
in one run, and the memory and time of a /metrics scrape at 10,000 partitions.

Two ``logmq serve`` processes run side by side; rounds alternate between them (off, on, off,
on...) so drift of a shared machine hits both. Each round produces N records of 100 B with
confluent-kafka and consumes them back; the ratio of medians is the overhead.

    python bench/ops_overhead.py [--records 200000] [--rounds 3] [--partitions 10000]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Server:
    def __init__(self, data: str, http: bool) -> None:
        args = ["--http", "127.0.0.1:0"] if http else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logmq.cli", "serve", "--data", data, "--listen",
             "127.0.0.1:0", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, cwd=ROOT)
        self.http: str | None = None
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if m := re.search(r"on http://([\d.]+:\d+)/", line):
                self.http = m.group(1)
            if m := re.search(r"listening on ([\d.]+:\d+)", line):
                self.kafka = m.group(1)
                break
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def cpu(self) -> float:
        """User + system CPU seconds the server process used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def round_trip(kafka: str, topic: str, n: int) -> tuple[float, float]:
    from confluent_kafka import Consumer, Producer

    p = Producer({"bootstrap.servers": kafka, "linger.ms": 5, "batch.size": 1 << 20,
                  "queue.buffering.max.messages": 1_000_000})
    value = b"x" * 100
    t0 = time.perf_counter()
    for _ in range(n):
        while True:
            try:
                p.produce(topic, value=value)
                break
            except BufferError:
                p.poll(0.01)
    p.flush(120)
    produce = n / (time.perf_counter() - t0)
    c = Consumer({"bootstrap.servers": kafka, "group.id": f"bench-{topic}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "fetch.max.bytes": 50 << 20})
    c.subscribe([topic])
    got = 0
    t0 = time.perf_counter()
    deadline = time.monotonic() + 300
    while got < n and time.monotonic() < deadline:
        msgs = c.consume(10_000, 1.0)
        got += sum(1 for m in msgs if m.error() is None)
    consume = got / (time.perf_counter() - t0)
    c.close()
    return produce, consume


def scraper(addr: str, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=30) as r:
            r.read()


def overhead(records: int, rounds: int) -> None:
    tmp = tempfile.mkdtemp(prefix="logmq-ops-bench-")
    off = Server(os.path.join(tmp, "off"), http=False)
    on = Server(os.path.join(tmp, "on"), http=True)
    assert on.http
    stop = threading.Event()
    t = threading.Thread(target=scraper, args=(on.http, stop), daemon=True)
    t.start()
    res: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    try:
        round_trip(off.kafka, "warmup", 20_000)
        round_trip(on.kafka, "warmup", 20_000)
        for i in range(rounds):
            for name, srv in (("off", off), ("on", on)):
                c0 = srv.cpu()
                res[name].append(round_trip(srv.kafka, f"r{i}", records))
                cpu[name].append((srv.cpu() - c0) / records * 1e6)
                print(f"round {i} metrics {name:<3}: produce {res[name][-1][0]:>9,.0f} rec/s"
                      f"  consume {res[name][-1][1]:>9,.0f} rec/s"
                      f"  server CPU {cpu[name][-1]:.2f} us/record", flush=True)
    finally:
        stop.set()
        off.stop()
        on.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for k, label in ((0, "produce"), (1, "consume")):
        a = statistics.median(r[k] for r in res["off"])
        b = statistics.median(r[k] for r in res["on"])
        print(f"{label}: metrics off {a:,.0f} rec/s, on {b:,.0f} rec/s, on/off = {b / a:.3f}")
    a, b = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    print(f"server CPU per record (produce + consume): off {a:.2f} us, on {b:.2f} us, "
          f"on/off = {b / a:.3f}")


def scrape_at(partitions: int) -> None:
    """Registry memory and one scrape's cost with ``partitions`` partitions (embedded)."""
    from prometheus_client import CollectorRegistry, generate_latest

    import logmq
    import logmq.metrics

    tmp = tempfile.mkdtemp(prefix="logmq-ops-bench-")
    try:
        with logmq.open(tmp, cleaner=False) as log:
            t0 = time.perf_counter()
            log.create_topic("wide", partitions=partitions)
            print(f"created {partitions:,} partitions in {time.perf_counter() - t0:.1f} s")
            tracemalloc.start()
            registry = CollectorRegistry()
            logmq.metrics.register(registry, log)
            idle = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            t0 = time.perf_counter()
            text = generate_latest(registry)
            secs = time.perf_counter() - t0
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            t0 = time.perf_counter()
            generate_latest(registry)
            untraced = time.perf_counter() - t0
            print(f"registry memory between scrapes: {idle:,} B; one scrape: "
                  f"{len(text):,} B of text, peak {peak / 1e6:.1f} MB allocated, "
                  f"{untraced * 1000:.0f} ms ({secs * 1000:.0f} ms under tracemalloc)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=10_000)
    ap.add_argument("--skip-throughput", action="store_true")
    a = ap.parse_args()
    if not a.skip_throughput:
        overhead(a.records, a.rounds)
    if a.partitions:
        scrape_at(a.partitions)


if __name__ == "__main__":
    main()
