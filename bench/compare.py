#!/usr/bin/env python3
"""logmq side by side with what users would pick instead, on the same workload.

    python bench/compare.py [--records 1000000] [--size 100] [--runs 3] [--quick]

Peers: ``apt-get install redis-server nats-server`` and
``pip install redis hiredis nats-py persist-queue matplotlib`` (hiredis matters: without it
redis-py parses replies in Python and Redis' consume numbers drop by more than half).

Systems: logmq embedded (send_batch and per-record send), logmq server with confluent-kafka,
Redis Streams (redis-server, appendonly yes, appendfsync everysec; pipelined XADD; XREAD and
XREADGROUP+XACK), NATS JetStream (nats-server -js, file storage; nats-py), persist-queue
(SQLite), and the plain-file reference. Each server is started here on a free loopback port
with its data in a temporary directory and stopped afterwards; a system whose server or
client package is missing is skipped with a line saying so. Every row names its durability
setting; logmq runs with fsync="interval" (fsync every second), the closest to Redis'
everysec.

Writes a markdown table and JSON with the raw numbers (medians of ``--runs``) and, when
matplotlib is installed, a PNG chart, to ``bench/results/`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


class Skip(Exception):
    """The system cannot run here (missing server binary or client package)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Skip(f"server exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # a benchmark harness waiting for a foreign server to listen
    raise Skip("server did not start listening")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def records(n: int, size: int) -> list[tuple[bytes, bytes]]:
    value = b"x" * size
    return [(b"key-%d" % (i % 1000), value) for i in range(n)]


# ---------------------------------------------------------------------- systems
def logmq_batch(n: int, size: int, tmp: str) -> dict:
    import logmq

    recs = records(n, size)
    with logmq.open(os.path.join(tmp, "lq"), cleaner=False) as log:
        log.create_topic("t", partitions=8)
        p = log.producer()
        t = time.perf_counter()
        for i in range(0, n, 100_000):
            p.send_batch("t", recs[i : i + 100_000])
        log.flush()
        produce = time.perf_counter() - t
        c = log.consumer("t", auto_offset_reset="earliest", max_poll_records=50_000)
        got = 0
        t = time.perf_counter()
        while got < n:
            got += len(c.poll(timeout=5))
        consume = time.perf_counter() - t
    return {"produce": n / produce, "consume": n / consume,
            "durability": 'fsync="interval" (1 s); send_batch, poll'}


def logmq_send(n: int, size: int, tmp: str) -> dict:
    import logmq

    recs = records(n, size)
    with logmq.open(os.path.join(tmp, "lq1"), cleaner=False) as log:
        log.create_topic("t", partitions=8)
        p = log.producer()
        send = p.send
        t = time.perf_counter()
        for k, v in recs:
            send("t", v, key=k)
        p.flush()
        log.flush()
        produce = time.perf_counter() - t
        c = log.consumer("t", auto_offset_reset="earliest", max_poll_records=500)
        got = 0
        t = time.perf_counter()
        while got < n:
            got += len(c.poll(timeout=5))
        consume = time.perf_counter() - t
    return {"produce": n / produce, "consume": n / consume,
            "durability": 'fsync="interval" (1 s); send per record, poll 500'}


def logmq_server(n: int, size: int, tmp: str) -> dict:
    try:
        from confluent_kafka import Consumer, Producer, TopicPartition
        from confluent_kafka.admin import AdminClient, NewTopic
    except ImportError as e:
        raise Skip("confluent-kafka not installed") from e
    from server_util import ServerProcess

    with ServerProcess(os.path.join(tmp, "srv")) as srv:
        admin = AdminClient({"bootstrap.servers": srv.bootstrap})
        admin.create_topics([NewTopic("t", 8, 1)])["t"].result(30)
        p = Producer({"bootstrap.servers": srv.bootstrap, "linger.ms": 20,
                      "batch.size": 1_000_000, "queue.buffering.max.messages": 2_000_000})
        value = b"x" * size
        keys = [b"key-%d" % (i % 1000) for i in range(n)]
        t = time.perf_counter()
        produce_fn = p.produce
        for k in keys:
            try:
                produce_fn("t", value, key=k)
            except BufferError:
                p.flush(30)
                produce_fn("t", value, key=k)
        p.flush(120)
        produce = time.perf_counter() - t
        c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "bench",
                      "enable.auto.commit": False, "fetch.max.bytes": 52_428_800,
                      "max.partition.fetch.bytes": 10_485_760})
        c.assign([TopicPartition("t", i, 0) for i in range(8)])
        got = 0
        t = time.perf_counter()
        while got < n:
            got += sum(1 for m in c.consume(100_000, 5.0) if not m.error())
        consume = time.perf_counter() - t
        c.close()
    return {"produce": n / produce, "consume": n / consume,
            "durability": 'server, fsync="interval" (1 s); confluent-kafka, acks=1'}


def redis_streams(n: int, size: int, tmp: str) -> dict:
    exe = shutil.which("redis-server")
    if exe is None:
        raise Skip("redis-server not installed (apt-get install redis-server)")
    try:
        import redis
    except ImportError as e:
        raise Skip("redis-py not installed (pip install redis)") from e
    port = free_port()
    d = os.path.join(tmp, "redis")
    os.makedirs(d)
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
                             "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        r = redis.Redis(port=port)
        value = b"x" * size
        t = time.perf_counter()
        pipe = r.pipeline(transaction=False)
        for i in range(n):
            pipe.xadd("s", {b"k": b"key-%d" % (i % 1000), b"v": value})
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
        produce = time.perf_counter() - t
        got = 0
        last = b"0-0"
        t = time.perf_counter()
        while got < n:
            resp = r.xread({"s": last}, count=10_000)
            entries = resp[0][1]
            got += len(entries)
            last = entries[-1][0]
        consume = time.perf_counter() - t
        r.xgroup_create("s", "g", id="0")
        got = 0
        t = time.perf_counter()
        while got < n:
            resp = r.xreadgroup("g", "c", {"s": ">"}, count=10_000)
            ids = [e[0] for e in resp[0][1]]
            r.xack("s", "g", *ids)
            got += len(ids)
        group = time.perf_counter() - t
    finally:
        stop(proc)
    return {"produce": n / produce, "consume": n / consume, "consume_group_ack": n / group,
            "durability": "appendonly, appendfsync everysec; pipelined XADD, XREAD"}


def nats_jetstream(n: int, size: int, tmp: str) -> dict:
    exe = shutil.which("nats-server")
    if exe is None:
        raise Skip("nats-server not installed (apt-get install nats-server)")
    try:
        import nats
    except ImportError as e:
        raise Skip("nats-py not installed (pip install nats-py)") from e
    port = free_port()
    d = os.path.join(tmp, "nats")
    proc = subprocess.Popen([exe, "-js", "-sd", d, "-a", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def run() -> tuple[float, float]:
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        js = nc.jetstream()
        await js.add_stream(name="B", subjects=["b.*"], storage="file")
        value = b"x" * size
        t = time.perf_counter()
        window = 2000
        for i in range(0, n, window):
            futs = [js.publish(f"b.{(i + j) % 8}", value) for j in range(min(window, n - i))]
            await asyncio.gather(*futs)
        produce = time.perf_counter() - t
        from nats.js.api import AckPolicy, ConsumerConfig

        sub = await js.pull_subscribe("b.*", "dur", config=ConsumerConfig(
            ack_policy=AckPolicy.ALL, max_ack_pending=-1))
        got = 0
        t = time.perf_counter()
        while got < n:
            msgs = await sub.fetch(1000, timeout=10)
            got += len(msgs)
            if msgs:
                await msgs[-1].ack()  # AckAll: one ack covers the whole fetch
        consume = time.perf_counter() - t
        await nc.close()
        return produce, consume

    try:
        wait_port(port, proc)
        produce, consume = asyncio.run(run())
    finally:
        stop(proc)
    return {"produce": n / produce, "consume": n / consume,
            "durability": "JetStream file storage (default sync); publish acked, pull fetch"}


def persist_queue(n: int, size: int, tmp: str) -> dict:
    try:
        import persistqueue
    except ImportError as e:
        raise Skip("persist-queue not installed (pip install persist-queue)") from e
    q = persistqueue.SQLiteQueue(os.path.join(tmp, "pq"), auto_commit=False,
                                 multithreading=False)
    value = b"x" * size
    t = time.perf_counter()
    for i in range(n):
        q.put(value)
        if i % 1000 == 999:
            q.task_done()
    q.task_done()
    produce = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(n):
        q.get()
        if i % 1000 == 999:
            q.task_done()
    q.task_done()
    consume = time.perf_counter() - t
    return {"produce": n / produce, "consume": n / consume,
            "durability": "SQLite, commit every 1,000 (auto_commit=False)"}


def plain_file(n: int, size: int, tmp: str) -> dict:
    from logmq.codec.records import encode_batch

    recs = records(n, size)
    data = b"".join(encode_batch(recs[i : i + 1000], timestamp=1) for i in range(0, n, 1000))
    path = os.path.join(tmp, "plain")
    t = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        for i in range(0, len(data), 1 << 20):
            f.write(data[i : i + (1 << 20)])
        os.fdatasync(f.fileno())
    write = time.perf_counter() - t
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass
    read = time.perf_counter() - t
    return {"produce": n / write, "consume": n / read,
            "durability": "same bytes, write + one fdatasync; read from page cache"}


SYSTEMS: list[tuple[str, Callable[[int, int, str], dict]]] = [
    ("logmq embedded (batch)", logmq_batch),
    ("logmq embedded (per record)", logmq_send),
    ("logmq server + confluent-kafka", logmq_server),
    ("Redis Streams", redis_streams),
    ("NATS JetStream", nats_jetstream),
    ("persist-queue (SQLite)", persist_queue),
    ("plain file (reference)", plain_file),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="100,000 records, one run")
    ap.add_argument("--only", help="comma-separated substrings of system names to run")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args()
    n, runs = (100_000, 1) if args.quick else (args.records, args.runs)
    os.makedirs(args.out, exist_ok=True)
    results: dict[str, Any] = {"records": n, "size": args.size, "runs": runs,
                               "python": sys.version.split()[0], "cpus": os.cpu_count(),
                               "systems": {}}
    print(f"{n:,} records x {args.size} B, 1,000 keys, 8 partitions/streams where supported, "
          f"median of {runs}")
    for name, fn in SYSTEMS:
        if args.only and not any(s.strip() in name for s in args.only.split(",")):
            continue
        samples = []
        try:
            for _ in range(runs):
                tmp = tempfile.mkdtemp(prefix="logmq-compare-")
                try:
                    samples.append(fn(n, args.size, tmp))
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        except Skip as e:
            print(f"skipped {name}: {e}")
            continue
        row = {k: statistics.median(s[k] for s in samples)
               for k in samples[0] if isinstance(samples[0][k], float | int)}
        row["durability"] = samples[0]["durability"]
        results["systems"][name] = row
        print(f"  {name}: produce {row['produce']:,.0f}/s, consume {row['consume']:,.0f}/s")
    base = results["systems"].get("logmq embedded (batch)")
    lines = ["| system | produce rec/s | produce MB/s | consume rec/s | consume MB/s | "
             "logmq batch / system (produce, consume) | durability |",
             "|---|---:|---:|---:|---:|---|---|"]
    for name, row in results["systems"].items():
        ratio = ""
        if base:
            ratio = f"{base['produce'] / row['produce']:.2f}x, {base['consume'] / row['consume']:.2f}x"
        extra = ""
        if "consume_group_ack" in row:
            extra = f" (XREADGROUP+XACK {row['consume_group_ack']:,.0f}/s)"
        lines.append(
            f"| {name} | {row['produce']:,.0f} | {row['produce'] * args.size / 1e6:,.1f} | "
            f"{row['consume']:,.0f}{extra} | {row['consume'] * args.size / 1e6:,.1f} | {ratio} | "
            f"{row['durability']} |")
    table = "\n".join(lines)
    print()
    print(table)
    with open(os.path.join(args.out, "compare.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(args.out, "compare.json"), "w") as f:
        json.dump(results, f, indent=2)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = list(results["systems"])
        fig, ax = plt.subplots(figsize=(10, 4.5))
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], [results["systems"][k]["produce"] for k in names], 0.4,
               label="produce")
        ax.bar([x + 0.2 for x in xs], [results["systems"][k]["consume"] for k in names], 0.4,
               label="consume")
        ax.set_yscale("log")
        ax.set_ylabel("records/s (log scale)")
        ax.set_xticks(list(xs), names, rotation=20, ha="right", fontsize=8)
        ax.set_title(f"{n:,} records x {args.size} B, median of {runs}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, "compare.png"), dpi=110)
    except ImportError:
        print("matplotlib not installed: no chart")


if __name__ == "__main__":
    main()
