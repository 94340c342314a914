#!/usr/bin/env python3
"""Scaling curves: does logmq stay fast as the log grows and as partitions multiply?

    python bench/curves.py            # log grows to 5M records; 200,000 records per partition count
    python bench/curves.py --full     # 20M records (the issue's 1M -> 20M); 1M per partition count
    python bench/curves.py --quick    # 2M; 50,000 (a smoke run, ~20 s)

Three curves, each answering a question a user sizing a deployment asks:

1. **Growth** (embedded, 8 partitions, 100 B values, 1,000 keys): the produce rate of each
   successive million records (``send_batch``), and the latency of a random read at that size
   (``seek`` to a random offset of a random partition + ``poll`` 100 records; 300 samples):
   lookups are binary searches over sparse indexes, so neither should depend on the size.
   The whole log stays in the page cache here (20M x ~116 B = 2.3 GB of 24 GiB), so this
   measures logmq's own work, not the disk.
2. **Partitions** 1, 8, 64, 512: produce and consume rates embedded (``send_batch`` and
   per-record ``send``, then ``poll``) and through the server with confluent-kafka. More
   partitions mean smaller batches per partition and more files.
3. **Memory while serving**: the server's RSS (from /proc) idle after creating the topic and
   at its peak while producing and consuming, for each partition count.

Writes ``curves.json``, ``curves.md`` and ``curves.png`` to ``bench/results/`` (``--out``);
``--report`` copies the markdown and PNG to ``bench/report/``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from typing import Any

from peers.base import RssSampler, keyed, proc_rss_mb, pyplot
from peers.logmq_server import ConfluentKafka, LogmqServer

import logmq

HERE = os.path.dirname(os.path.abspath(__file__))
STEP = 1_000_000


def growth(total: int, samples: int = 300) -> list[dict[str, Any]]:
    """Produce ``total`` records in 1M steps; after each, the step's rate and read latency."""
    tmp = tempfile.mkdtemp(prefix="logmq-curves-")
    rows = []
    try:
        with logmq.open(os.path.join(tmp, "g"), cleaner=False) as log:
            log.create_topic("g", partitions=8)
            recs = keyed(STEP, 100)
            p = log.producer()
            readers = []
            for part in range(8):
                c = log.consumer(auto_offset_reset="earliest")
                c.assign([("g", part)])
                readers.append(c)
            rng = random.Random(42)
            done = 0
            while done < total:
                t = time.perf_counter()
                for i in range(0, STEP, 100_000):
                    p.send_batch("g", recs[i : i + 100_000])
                rate = STEP / (time.perf_counter() - t)
                done += STEP
                ends = [log.end_offset(("g", part)) for part in range(8)]
                lat = []
                for _ in range(samples):
                    part = rng.randrange(8)
                    off = rng.randrange(max(1, ends[part] - 100))
                    c = readers[part]
                    t = time.perf_counter()
                    c.seek(("g", part), off)
                    got = c.poll(timeout=1, max_records=100)
                    lat.append(time.perf_counter() - t)
                    assert got and got[0].offset == off, (part, off)
                lat.sort()
                size = sum(log.partition_log("g", q).size_bytes for q in range(8))
                row = {"records": done, "bytes": size, "produce_rps": rate,
                       "read_p50_ms": lat[len(lat) // 2] * 1e3,
                       "read_p99_ms": lat[int(len(lat) * 0.99)] * 1e3}
                rows.append(row)
                print(f"  {done / 1e6:4.0f}M records ({size / 1e9:5.2f} GB): produce "
                      f"{rate:>11,.0f} rec/s; random read+poll(100) p50 "
                      f"{row['read_p50_ms']:.3f} ms, p99 {row['read_p99_ms']:.3f} ms", flush=True)
            for c in readers:
                c.close(commit=False)
            p.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def embedded_partitions(parts: int, n: int) -> dict[str, float]:
    """Embedded produce (send_batch, per-record send) and consume (poll) at ``parts``."""
    tmp = tempfile.mkdtemp(prefix="logmq-curves-")
    out: dict[str, float] = {}
    try:
        recs = keyed(n, 100)
        with logmq.open(os.path.join(tmp, "p"), cleaner=False) as log:
            for topic, how in (("b", "send_batch"), ("s", "send")):
                log.create_topic(topic, partitions=parts)
                p = log.producer()
                t = time.perf_counter()
                if how == "send_batch":
                    for i in range(0, n, 100_000):
                        p.send_batch(topic, recs[i : i + 100_000])
                else:
                    send = p.send
                    for k, v in recs:
                        send(topic, v, key=k)
                    p.flush()
                out[f"{how}_rps"] = n / (time.perf_counter() - t)
                p.close()
            c = log.consumer("b", auto_offset_reset="earliest", max_poll_records=50_000)
            got = 0
            t = time.perf_counter()
            while got < n:
                got += len(c.poll(timeout=5))
            out["poll_rps"] = n / (time.perf_counter() - t)
            c.close(commit=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def server_partitions(parts: int, n: int) -> dict[str, float]:
    """Through ``logmq serve`` with confluent-kafka: rates, and the server's RSS."""
    tmp = tempfile.mkdtemp(prefix="logmq-curves-")
    out: dict[str, float] = {}
    peer = ConfluentKafka()
    peer.partitions = parts
    try:
        peer.srv = LogmqServer(os.path.join(tmp, "srv"))
        try:
            pid = peer.srv.proc.pid
            out["rss_start_mb"] = proc_rss_mb(pid)
            peer._create_topics(["t"])
            time.sleep(0.5)
            out["rss_idle_mb"] = proc_rss_mb(pid)
            rss = RssSampler(pid)
            out["server_produce_rps"] = n / peer.produce(n, 100)["seconds"]
            out["server_consume_rps"] = n / peer.consume(n, 100)["seconds"]
            out["rss_peak_mb"] = rss.stop()
        finally:
            peer.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def render(res: dict) -> str:
    m = res["machine"]
    lines = [f"Machine: {m}", "",
             "**Growth** (embedded, 8 partitions, 100 B values): rate of each successive "
             "million records, and a random seek + poll(100) at that size.", "",
             "| records | log GB | produce rec/s | read p50 ms | read p99 ms |",
             "|---:|---:|---:|---:|---:|"]
    for r in res["growth"]:
        lines.append(f"| {r['records']:,} | {r['bytes'] / 1e9:.2f} | {r['produce_rps']:,.0f} | "
                     f"{r['read_p50_ms']:.3f} | {r['read_p99_ms']:.3f} |")
    g = res["growth"]
    if len(g) > 1:
        lines += ["", f"Produce rate at {g[-1]['records'] / 1e6:.0f}M vs the median of all "
                  f"steps: {g[-1]['produce_rps'] / statistics.median(r['produce_rps'] for r in g):.0%}."]
    lines += ["", f"**Partitions** ({res['partition_records']:,} records x 100 B, 1,000 keys; "
              "server = `logmq serve` + confluent-kafka; RSS of the server process).", "",
              "| partitions | send_batch rec/s | send rec/s | poll rec/s | server produce rec/s "
              "| server consume rec/s | server RSS idle MB | server RSS peak MB |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["partitions"]:
        lines.append(
            f"| {r['partitions']} | {r['send_batch_rps']:,.0f} | {r['send_rps']:,.0f} | "
            f"{r['poll_rps']:,.0f} | {r.get('server_produce_rps', 0):,.0f} | "
            f"{r.get('server_consume_rps', 0):,.0f} | {r.get('rss_idle_mb', 0):,.0f} | "
            f"{r.get('rss_peak_mb', 0):,.0f} |")
    return "\n".join(lines) + "\n"


def chart(res: dict, path: str) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(2, 2, figsize=(12, 8.5))
    g = res["growth"]
    xs = [r["records"] / 1e6 for r in g]
    a = ax[0][0]
    a.plot(xs, [r["produce_rps"] for r in g], marker="o")
    a.set_xlabel("records in the log (millions)")
    a.set_ylabel("records/s")
    a.set_ylim(bottom=0)
    a.set_title("produce rate (send_batch) as the log grows")
    a = ax[0][1]
    a.plot(xs, [r["read_p50_ms"] for r in g], marker="o", label="p50")
    a.plot(xs, [r["read_p99_ms"] for r in g], marker="o", label="p99")
    a.set_xlabel("records in the log (millions)")
    a.set_ylabel("ms")
    a.set_ylim(bottom=0)
    a.set_title("random seek + poll(100) latency as the log grows")
    a.legend()
    pr = res["partitions"]
    ps = [r["partitions"] for r in pr]
    a = ax[1][0]
    for key, label in (("send_batch_rps", "embedded send_batch"), ("send_rps", "embedded send"),
                       ("poll_rps", "embedded poll"),
                       ("server_produce_rps", "server produce (confluent-kafka)"),
                       ("server_consume_rps", "server consume (confluent-kafka)")):
        a.plot(ps, [r.get(key, float("nan")) for r in pr], marker="o", label=label)
    a.set_xscale("log", base=2)
    a.set_yscale("log")
    a.set_xlabel("partitions")
    a.set_ylabel("records/s (log)")
    a.set_title(f"throughput vs partitions ({res['partition_records']:,} x 100 B)")
    a.legend(fontsize=7)
    a = ax[1][1]
    a.plot(ps, [r.get("rss_idle_mb", float("nan")) for r in pr], marker="o", label="idle")
    a.plot(ps, [r.get("rss_peak_mb", float("nan")) for r in pr], marker="o",
           label="peak while serving")
    a.set_xscale("log", base=2)
    a.set_xlabel("partitions")
    a.set_ylabel("MB")
    a.set_ylim(bottom=0)
    a.set_title("server RSS")
    a.legend()
    for row in ax:
        for a in row:
            a.grid(alpha=0.3)
    fig.suptitle(f"logmq scaling, {res['machine']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="20M records; 1M per partition count")
    ap.add_argument("--quick", action="store_true", help="2M records; 50,000 per partition count")
    ap.add_argument("--records", type=int, help="grow the log to this many (multiple of 1M)")
    ap.add_argument("--partition-records", type=int)
    ap.add_argument("--partitions", default="1,8,64,512")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--report", action="store_true", help="copy curves.md/png to bench/report/")
    args = ap.parse_args()
    total = args.records or (20_000_000 if args.full else 2_000_000 if args.quick else 5_000_000)
    per = args.partition_records or (1_000_000 if args.full else 50_000 if args.quick
                                     else 200_000)
    os.makedirs(args.out, exist_ok=True)
    from compare import machine

    mi = machine()
    res: dict[str, Any] = {
        "machine": f"{mi['cpu']}, {mi['nproc']} cores, {mi['mem_gib']} GiB, Python "
                   f"{mi['python']}", "partition_records": per}
    print(f"growth to {total:,} records", flush=True)
    res["growth"] = growth(total)
    res["partitions"] = []
    for parts in [int(x) for x in args.partitions.split(",")]:
        row: dict[str, Any] = {"partitions": parts, **embedded_partitions(parts, per)}
        try:
            row.update(server_partitions(parts, per))
        except ImportError:
            print("  confluent-kafka not installed: no server curve")
        res["partitions"].append(row)
        print(f"  {parts:4d} partitions: send_batch {row['send_batch_rps']:,.0f}, send "
              f"{row['send_rps']:,.0f}, poll {row['poll_rps']:,.0f} rec/s; server "
              f"{row.get('server_produce_rps', 0):,.0f} / {row.get('server_consume_rps', 0):,.0f}"
              f" rec/s, RSS idle {row.get('rss_idle_mb', 0):.0f} MB, peak "
              f"{row.get('rss_peak_mb', 0):.0f} MB", flush=True)
    md = render(res)
    print()
    print(md)
    with open(os.path.join(args.out, "curves.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "curves.json"), "w") as f:
        json.dump(res, f, indent=2)
    png = os.path.join(args.out, "curves.png")
    drew = chart(res, png)
    if args.report:
        rep = os.path.join(HERE, "report")
        os.makedirs(rep, exist_ok=True)
        shutil.copy(os.path.join(args.out, "curves.md"), rep)
        if drew:
            shutil.copy(png, rep)


if __name__ == "__main__":
    main()
