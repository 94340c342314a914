#!/usr/bin/env python3
"""Produce then consume N records (default 1,000,000 x 100 B, 1,000 keys, 8 partitions).

Prints records/s and MB/s for each path of the embedded API, the durability mode used, and
in the same run the physical reference: writing and reading the same bytes to a plain file.
The workload runs twice, in fresh subprocesses, with the native codec core and with the pure
one (``LOGMQ_PURE=1``), and the two are printed side by side with their ratio
(``--impl native|python`` runs one of them only).

    python bench/throughput.py [--records N] [--fsync interval|always|never] [--rounds R]
                               [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import logmq
from logmq.codec.batch import batch_size_at, parse_header
from logmq.codec.records import encode_batch


def rate(n: int, nbytes: int, secs: float, cpu: float | None = None) -> dict:
    """Wall-clock rates, plus records per CPU-second of this process when ``cpu`` is given:
    on a shared machine the CPU figure says more about the code than the wall clock."""
    r = {"records_per_s": n / secs, "mb_per_s": nbytes / secs / 1e6, "seconds": secs}
    if cpu is not None:
        r["records_per_cpu_s"] = n / max(cpu, 1e-9)
    return r


def show(name: str, r: dict) -> None:
    print(f"{name:<34} {r['records_per_s']:>13,.0f} rec/s {r['mb_per_s']:>9,.1f} MB/s")


def plain_file(path: str, data: bytes, chunk: int) -> tuple[float, float]:
    t = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        for i in range(0, len(data), chunk):
            f.write(data[i : i + chunk])
    w = time.perf_counter() - t
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass
    r = time.perf_counter() - t
    return w, r


def fsync_cost(path: str, rounds: int = 200) -> float:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    t = time.perf_counter()
    for _ in range(rounds):
        os.write(fd, b"x" * 4096)
        os.fdatasync(fd)
    os.close(fd)
    return (time.perf_counter() - t) / rounds


def side_by_side(argv: list[str], json_out: str | None, rounds: int) -> None:
    """Run the workload per codec core, each in its own interpreter, and compare.

    With ``rounds`` > 1 the cores alternate (ABBA...) and each figure is the best of its
    rounds: on a shared machine that is what keeps the ratio about the code, not the load.
    """
    res: dict = {}
    for r in range(rounds):
        for impl in ("native", "python") if r % 2 == 0 else ("python", "native"):
            with tempfile.NamedTemporaryFile(suffix=".json") as f:
                env = {**os.environ, "LOGMQ_PURE": "1" if impl == "python" else "0"}
                print(f"--- {impl} codec core, round {r + 1}/{rounds}")
                subprocess.run([sys.executable, __file__, *argv, "--impl", impl, "--json",
                                f.name], env=env, check=True)
                with open(f.name) as fh:
                    got = json.load(fh)
            prev = res.setdefault(impl, got)
            for k, v in got.items():
                if not (isinstance(v, dict) and "records_per_s" in v) or v is prev[k]:
                    continue
                cpu = max(v.get("records_per_cpu_s", 0), prev[k].get("records_per_cpu_s", 0))
                if v["records_per_s"] > prev[k]["records_per_s"]:
                    prev[k] = v
                if cpu:
                    prev[k]["records_per_cpu_s"] = cpu
    nat, pure = res["native"], res["python"]
    if nat.get("implementation") != "native":
        print(f"native codec core not built (got {nat.get('implementation')}): "
              "python setup.py build_ext --inplace")
    print(f"\nbest of {rounds} round(s); load average now {os.getloadavg()[0]:.1f}")
    print(f"{'records/s (wall clock)':<24} {'native':>12} {'pure':>12} {'ratio':>7}   "
          f"{'per CPU-s: native':>17} {'pure':>12} {'ratio':>7}")
    for k, v in nat.items():
        if isinstance(v, dict) and "records_per_s" in v and k in pure:
            a, b = v["records_per_s"], pure[k]["records_per_s"]
            line = f"{k:<24} {a:>12,.0f} {b:>12,.0f} {a / b:>6.2f}x"
            if "records_per_cpu_s" in v and "records_per_cpu_s" in pure[k]:
                c, d = v["records_per_cpu_s"], pure[k]["records_per_cpu_s"]
                line += f"   {c:>17,.0f} {d:>12,.0f} {c / d:>6.2f}x"
            print(line)
    if json_out:
        with open(json_out, "w") as fh:
            json.dump(res, fh, indent=2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--fsync", default="interval", choices=["always", "interval", "never"])
    ap.add_argument("--single", type=int, default=200_000, help="records for per-record send")
    ap.add_argument("--json")
    ap.add_argument("--impl", choices=["native", "python"],
                    help="run one codec core only (default: both, side by side)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate the two cores this many times, keep each one's best")
    args = ap.parse_args()
    if args.impl is None:
        argv = list(sys.argv[1:])
        for opt in ("--json", "--rounds"):
            if opt in argv:
                i = argv.index(opt)
                del argv[i : i + 2]
        side_by_side(argv, args.json, max(1, args.rounds))
        return
    from logmq.codec import implementation

    n = args.records
    tmp = tempfile.mkdtemp(prefix="logmq-bench-")
    results: dict = {"records": n, "value_bytes": 100, "keys": 1000,
                     "partitions": args.partitions, "fsync": args.fsync,
                     "implementation": implementation, "loadavg_1m": os.getloadavg()[0]}
    try:
        recs = [(b"key-%d" % (i % 1000), b"x" * 100) for i in range(n)]
        payload = n * 100
        print(f"logmq {logmq.__version__}: {n:,} records x 100 B, 1,000 keys, "
              f"{args.partitions} partitions, fsync={args.fsync}, python {sys.version.split()[0]}, "
              f"codec {implementation}, load {os.getloadavg()[0]:.1f}")
        with logmq.open(os.path.join(tmp, "a"), fsync=args.fsync, cleaner=False) as log:
            log.create_topic("t", partitions=args.partitions)
            p = log.producer()
            t = time.perf_counter()
            c0 = time.process_time()
            p.send_batch("t", recs)
            log.flush()
            results["send_batch"] = rate(n, payload, time.perf_counter() - t,
                                   time.process_time() - c0)
            show("send_batch (incl. final fsync)", results["send_batch"])
            c = log.consumer("t", auto_offset_reset="earliest", max_poll_records=50_000)
            got = 0
            t = time.perf_counter()
            c0 = time.process_time()
            while got < n:
                batch = c.poll(timeout=1)
                if not batch:
                    break
                got += len(batch)
            results["poll"] = rate(got, got * 100, time.perf_counter() - t,
                                   time.process_time() - c0)
            show("poll (Record objects)", results["poll"])
            m = min(args.single, n)
            t = time.perf_counter()
            c0 = time.process_time()
            for i in range(m):
                p.send("t", recs[i][1], key=recs[i][0])
            p.flush()
            results["send"] = rate(m, m * 100, time.perf_counter() - t,
                                   time.process_time() - c0)
            show("send (per record, futures)", results["send"])
            p.close()
        # raw batches: the server's path
        batches = [encode_batch(recs[i : i + 1000], timestamp=1) for i in range(0, n, 1000)]
        raw = b"".join(batches)
        with logmq.open(os.path.join(tmp, "b"), fsync=args.fsync, cleaner=False) as log:
            log.create_topic("r", partitions=1, config={"max.message.bytes": 1 << 24})
            tp = ("r", 0)
            t = time.perf_counter()
            c0 = time.process_time()
            for b in batches:
                log.append_batches(tp, b)
            log.flush()
            results["append_batches"] = rate(n, len(raw), time.perf_counter() - t,
                                   time.process_time() - c0)
            show("append_batches (CRC checked)", results["append_batches"])
            off = 0
            nbytes = 0
            end = log.end_offset(tp)
            t = time.perf_counter()
            c0 = time.process_time()
            plog = log.partition_log("r", 0)
            while off < end:
                sl = plog.read(off, 1 << 20)
                data = sl.read()
                nbytes += len(data)
                # advance past whole batches only, as a fetch loop would
                last = pos = 0
                while (size := batch_size_at(data, pos)) > 0 and pos + size <= len(data):
                    last = pos
                    pos += size
                off = parse_header(data, last).next_offset
            results["read_batches"] = rate(n, nbytes, time.perf_counter() - t,
                                   time.process_time() - c0)
            show("read_batches (1 MiB slices)", results["read_batches"])
        path = os.path.join(tmp, "plain")
        w, r = plain_file(path, raw, 1000 * 116)
        results["plain_write"] = rate(n, len(raw), w)
        results["plain_read"] = rate(n, len(raw), r)
        show("plain file write (same bytes)", results["plain_write"])
        show("plain file read (page cache)", results["plain_read"])
        results["fdatasync_4k_ms"] = fsync_cost(os.path.join(tmp, "fs")) * 1000
        print(f"{'fdatasync of a 4 KiB append':<34} {results['fdatasync_4k_ms']:.3f} ms")
        for k in ("append_batches", "read_batches"):
            ref = results["plain_write" if k == "append_batches" else "plain_read"]
            print(f"{k} / plain file: {results[k]['mb_per_s'] / ref['mb_per_s']:.0%}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
