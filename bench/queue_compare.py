#!/usr/bin/env python3
"""Work-queue throughput: acknowledged messages/s, logmq share groups vs Redis Streams groups.

    python3 bench/queue_compare.py               # 200,000 x 100 B, 3 runs, medians (~5 min)
    python3 bench/queue_compare.py --quick       # 20,000 messages, one run (< 1 min)
    python3 bench/queue_compare.py --profile     # also cProfile the embedded 1-worker case

Every row is a fresh session (a new data directory, or a new redis-server on a free loopback
port with its data in a temp dir): ``N`` values of 100 B are pre-filled (not timed), then
workers receive a batch, acknowledge it and repeat until ``N`` are acknowledged. The rate is
acknowledged messages / (time of the last acknowledgement - start), so workers idling at the
end do not count.

* logmq embedded: the records are written with ``Producer.send_batch`` into a topic of 4
  partitions; workers are threads, each its own member ``log.queue(topic, group=...)``
  (a fresh group per row), doing ``receive(batch)`` + ``ack_many(batch)``. The per-record rows
  receive the same batches but call ``rec.ack()`` one by one (what a naive handler does).
* logmq remote: 4 worker *processes* with ``RemoteQueue`` talking to a ``QueueServer`` in
  this process (which owns the data directory), same loop.
* logmq Kafka wire: confluent-kafka ``ShareConsumer`` processes (1 and 4, implicit
  acknowledgement) against logmq's Kafka server in this process (bench/queue_share_wire.py).
* Redis Streams (needs ``redis-server``, e.g. ``apt-get install redis-server``, and redis-py;
  without them these rows say skipped): XADD pipelined 1,000 per round trip into one stream, then XREADGROUP COUNT
  batch + XACK of the batch's ids, one consumer in this process or 4 consumer *processes*
  (4 threads would share one GIL in the client and measure redis-py, not Redis). Run with
  appendfsync everysec (the usual setting) and appendfsync always (the one comparable with
  logmq's acks).

Durability (printed with the table): a logmq ack returns after its LMDB write transaction
committed with LMDB's default sync (fdatasync of the data pages, O_DSYNC meta page write);
receive's acquisitions are committed the same way; concurrent members share commits (group
commit, :class:`logmq.broker.queues.state.Journal`). Redis everysec writes XREADGROUP's and
XACK's effects to the AOF before replying and fsyncs once a second; always fsyncs before
replying (once per event-loop iteration, so concurrent clients share it too).

Outputs: the markdown table on stdout and in ``bench/results/queues.md``, every sample in
``bench/results/queues.json`` (``--out`` changes the directory; ``--report`` writes the
tracked ``bench/report/`` copies the README cites instead, as compare.py does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from peers.base import Skip, cpu_model  # noqa: E402
from queue_peers import (  # noqa: E402
    _SPAWN,
    KEYS,
    REDIS_DUR,
    SIZE,
    STALL_S,
    ProcTally,
    ThreadTally,
    _wait_procs,
    redis_run,
)
from queue_share_wire import WIRE_DUR, share_wire  # noqa: E402

PARTITIONS = 4
LOGMQ_DUR = ("ack returns after the LMDB commit of the group state (sync: fdatasync + "
             "O_DSYNC meta page); acquisitions committed too; members share commits")


# ---------------------------------------------------------------------------- logmq
def _values(n: int) -> list[tuple[bytes, bytes]]:
    value = b"x" * SIZE
    keys = [b"key-%d" % i for i in range(KEYS)]
    return [(keys[i % KEYS], value) for i in range(n)]


def _logmq_open(tmp: str, n: int) -> tuple[Any, float]:
    import logmq

    log = logmq.open(os.path.join(tmp, "lq"), fsync="interval", cleaner=False)
    return log, _prefill(log, n)


def _prefill(log: Any, n: int) -> float:
    """Create ``jobs`` and write ``n`` values into it; the write rate."""
    log.create_topic("jobs", partitions=PARTITIONS)
    recs = _values(n)
    p = log.producer()
    t = time.perf_counter()
    for i in range(0, n, 50_000):
        p.send_batch("jobs", recs[i : i + 50_000])
    secs = time.perf_counter() - t
    p.close()
    return n / secs


def _logmq_loop(q: Any, batch: int, per_record: bool, tally: Any) -> None:
    last = time.monotonic()
    while not tally.is_done():
        recs = q.receive(batch, timeout=0.5)
        if not recs:
            if time.monotonic() - last > STALL_S:
                raise RuntimeError(f"no records for {STALL_S:.0f} s at {tally.count} acked")
            continue
        last = time.monotonic()
        if per_record:
            for r in recs:
                r.ack()
        else:
            q.ack_many(recs)
        tally.add(len(recs))


def logmq_threads(tmp: str, n: int, workers: int, batch: int, per_record: bool,
                  profile: str | None = None) -> dict[str, Any]:
    """``workers`` members in threads of this process (worker 0 is the main thread)."""
    log, prefill = _logmq_open(tmp, n)
    try:
        group = f"g-{os.getpid()}-{time.monotonic_ns()}"
        qs = [log.queue("jobs", group=group) for _ in range(workers)]
        tally = ThreadTally(n)
        tally.on_done = [q.wakeup for q in qs]

        def run(q: Any) -> None:
            try:
                _logmq_loop(q, batch, per_record, tally)
            except BaseException as e:
                tally.error = e
                tally.done.set()
                for q2 in qs:
                    q2.wakeup()

        ths = [threading.Thread(target=run, args=(q,), daemon=True) for q in qs[1:]]
        c0 = time.process_time()  # CPU of every thread: a rate that a loaded box skews less
        t0 = time.monotonic()
        for th in ths:
            th.start()
        if profile:
            import cProfile

            cProfile.runctx("run(qs[0])", globals(), {"run": run, "qs": qs}, profile)
        else:
            run(qs[0])
        for th in ths:
            th.join()
        if tally.error is not None:
            raise tally.error
        cpu = time.process_time() - c0
        depth = qs[0].stats().depth
        for q in qs:
            q.close()
        return {"acked": tally.count, "seconds": tally.end - t0, "prefill_rate": prefill,
                "depth_after": depth, "cpu_seconds": cpu}
    finally:
        log.close()


def _remote_worker(address: Any, authkey: bytes, group: str, batch: int, tally: ProcTally,
                   barrier: Any) -> None:
    from logmq.broker.queues.remote import RemoteQueue

    q = RemoteQueue(address, "jobs", group=group, authkey=authkey)
    barrier.wait()
    _logmq_loop(q, batch, False, tally)
    q.close()


def logmq_processes(tmp: str, n: int, workers: int, batch: int) -> dict[str, Any]:
    """``workers`` RemoteQueue members in spawned processes; the QueueServer runs here."""
    from logmq.broker.queues.remote import QueueServer

    log, prefill = _logmq_open(tmp, n)
    server = QueueServer(log, ("127.0.0.1", 0)).start()
    try:
        group = f"g-{os.getpid()}-{time.monotonic_ns()}"
        tally = ProcTally(n)
        barrier = _SPAWN.Barrier(workers + 1)
        procs = [_SPAWN.Process(target=_remote_worker, daemon=True,
                                args=(server.address, server.authkey, group, batch, tally,
                                      barrier)) for _ in range(workers)]
        for p in procs:
            p.start()
        barrier.wait(120)  # every member connected and joined the group
        t0 = time.monotonic()
        _wait_procs(procs, tally)
        return {"acked": tally.count, "seconds": tally.end - t0, "prefill_rate": prefill}
    finally:
        server.close()
        log.close()


# ---------------------------------------------------------------------------- rows
def rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    b, n, n1 = args.batch, args.messages, args.per_record_messages
    out = [
        {"system": "logmq share group (embedded)", "workers": "1 thread", "ack": "ack_many",
         "n": n, "fn": lambda t: logmq_threads(t, n, 1, b, False), "dur": LOGMQ_DUR},
        {"system": "logmq share group (embedded)", "workers": "4 threads", "ack": "ack_many",
         "n": n, "fn": lambda t: logmq_threads(t, n, 4, b, False), "dur": LOGMQ_DUR},
        {"system": "logmq share group (embedded)", "workers": "1 thread",
         "ack": "rec.ack() each", "n": n1,
         "fn": lambda t: logmq_threads(t, n1, 1, b, True), "dur": LOGMQ_DUR},
        {"system": "logmq share group (embedded)", "workers": "4 threads",
         "ack": "rec.ack() each", "n": n1,
         "fn": lambda t: logmq_threads(t, n1, 4, b, True), "dur": LOGMQ_DUR},
        {"system": "logmq share group (QueueServer)", "workers": "4 processes",
         "ack": "ack_many", "n": n, "fn": lambda t: logmq_processes(t, n, 4, b),
         "dur": LOGMQ_DUR + " (in the owner process)"},
    ]
    for w in (1, 4):  # KIP-932 over the Kafka wire (bench/queue_share_wire.py)
        out.append({"system": "logmq share group (Kafka wire, ShareConsumer)",
                    "workers": f"{w} process{'es' if w > 1 else ''}", "ack": "implicit",
                    "n": n, "fn": lambda t, w=w: share_wire(t, n, w, _prefill),
                    "dur": WIRE_DUR})
    for fs in ("everysec", "always"):
        sysname = f"Redis Streams, appendfsync {fs}"
        out += [
            {"system": sysname, "workers": "1 consumer", "ack": "XACK batch", "n": n,
             "fn": lambda t, fs=fs: redis_run(t, n, 1, b, False, fs), "dur": REDIS_DUR[fs]},
            {"system": sysname, "workers": "4 processes", "ack": "XACK batch", "n": n,
             "fn": lambda t, fs=fs: redis_run(t, n, 4, b, False, fs), "dur": REDIS_DUR[fs]},
            {"system": sysname, "workers": "1 consumer", "ack": "XACK each", "n": n1,
             "fn": lambda t, fs=fs: redis_run(t, n1, 1, b, True, fs), "dur": REDIS_DUR[fs]},
        ]
    for r in out:
        r["key"] = f"{r['system']} | {r['workers']} | {r['ack']}"
        r["redis"] = r["system"].startswith("Redis")
    return out


EMBEDDED = "logmq share group (embedded)"
IMPLS = {"native": "0", "pure": "1"}  # LOGMQ_PURE for each codec core


def split_impl(all_rows: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each embedded logmq row once per codec core (``--impl``), every run in a fresh
    interpreter with ``LOGMQ_PURE`` set, so native and pure print side by side in one run."""
    impls = list(IMPLS) if args.impl == "both" else [args.impl]
    out: list[dict[str, Any]] = []
    for r in all_rows:
        if r["system"] != EMBEDDED:
            out.append(r)
            continue
        for impl in impls:
            system = f"logmq share group (embedded, {impl})"
            out.append({**r, "system": system, "key": f"{system} | {r['workers']} | {r['ack']}",
                        "fn": lambda t, key=r["key"], impl=impl: in_subprocess(key, impl, args)})
    return out


def in_subprocess(key: str, impl: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one sample of row ``key`` in a child interpreter with ``impl``'s codec core."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        env = {**os.environ, "LOGMQ_PURE": IMPLS[impl]}
        subprocess.run([sys.executable, os.path.abspath(__file__), "--child", key,
                        "--child-out", f.name, "--messages", str(args.messages),
                        "--per-record-messages", str(args.per_record_messages),
                        "--batch", str(args.batch)], env=env, check=True)
        with open(f.name) as fh:
            res: dict[str, Any] = json.load(fh)
    want = "python" if impl == "pure" else "native"
    if res.get("implementation") != want:
        raise Skip(f"{impl} codec core not available (got {res.get('implementation')})")
    return res


def child(args: argparse.Namespace) -> None:
    """The ``--child`` side of :func:`in_subprocess`: one sample, written as JSON."""
    from logmq.broker.queues.hot import implementation as queue_implementation
    from logmq.codec import implementation

    row = next(r for r in rows(args) if r["key"] == args.child)
    res = sample(row)
    res["implementation"] = implementation
    res["queue_implementation"] = queue_implementation  # the share groups' loops
    with open(args.child_out, "w") as fh:
        json.dump(res, fh)


def sample(row: dict[str, Any]) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="qbench_")
    try:
        res = row["fn"](tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["rate"] = res["acked"] / res["seconds"]
    return res


# ---------------------------------------------------------------------------- machine
def fdatasync_probe(n: int = 200) -> dict[str, float]:
    """fdatasync latency of a 4 KiB overwrite in the temp dir (what every sync commit pays)."""
    fd, path = tempfile.mkstemp(prefix="qbench_fsync_")
    try:
        ts = []
        for i in range(n):
            os.pwrite(fd, b"x" * 4096, (i % 16) * 4096)
            t = time.perf_counter()
            os.fdatasync(fd)
            ts.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        os.unlink(path)
    ts.sort()
    return {"p50_ms": ts[n // 2] * 1e3, "p90_ms": ts[n * 9 // 10] * 1e3}


def machine() -> dict[str, Any]:
    cpu = cpu_model()
    redis_v = "?"
    exe = shutil.which("redis-server")
    if exe:
        with open(os.devnull, "wb") as dn:
            out = subprocess.run([exe, "--version"], stdout=subprocess.PIPE, stderr=dn,
                                 text=True, timeout=10).stdout
        redis_v = next((w[2:] for w in out.split() if w.startswith("v=")), "?")
    try:
        import redis

        redis_py = redis.__version__
        import hiredis  # noqa: F401

        redis_py += " + hiredis"
    except ImportError:
        redis_py = "missing"
    try:
        git = subprocess.run(["git", "-C", os.path.dirname(HERE), "rev-parse", "--short",
                              "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", os.path.dirname(HERE), "status", "--porcelain",
                                "--", "logmq"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
        git += " + uncommitted changes in logmq/" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        git = "?"
    return {"cpu": cpu, "nproc": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release(), "redis": redis_v, "redis_py": redis_py, "git": git,
            "loadavg_before": list(os.getloadavg()), "fdatasync": fdatasync_probe()}


# ---------------------------------------------------------------------------- report
def render(res: dict[str, Any]) -> str:
    m = res["machine"]
    la0 = " / ".join(f"{x:.2f}" for x in m["loadavg_before"])
    la1 = " / ".join(f"{x:.2f}" for x in m.get("loadavg_after", [0, 0, 0]))
    fs = m["fdatasync"]
    lines = [
        f"Machine: {m['cpu']}, {m['nproc']} cores, Linux {m['kernel']}, Python {m['python']}, "
        f"logmq {m['git']}, Redis {m['redis']} (redis-py {m['redis_py']}); load average "
        f"(1/5/15 min) {la0} before, {la1} after; fdatasync of a 4 KiB overwrite in the temp "
        f"dir p50 {fs['p50_ms']:.2f} ms, p90 {fs['p90_ms']:.2f} ms.",
        "",
        f"Acknowledged messages/s through a work queue, {SIZE} B values, median of "
        f"{res['runs']} run(s); receive batch {res['batch']} (XREADGROUP COUNT "
        f"{res['batch']}); logmq topic of {PARTITIONS} partitions, Redis one stream. Messages "
        "pre-filled before timing (fill rate in the last column).",
        "",
        "| System | Workers | Ack | Messages | Acked/s (median) | min - max | Pre-fill/s |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for v in res["rows"].values():
        if "error" in v and not v["samples"]:
            lines.append(f"| {v['system']} | {v['workers']} | {v['ack']} | {v['n']:,} | "
                         f"failed: {v['error']} | | |")
            continue
        rates = [s["rate"] for s in v["samples"]]
        fill = statistics.median(s["prefill_rate"] for s in v["samples"])
        lines.append(f"| {v['system']} | {v['workers']} | {v['ack']} | {v['n']:,} | "
                     f"{statistics.median(rates):,.0f} | {min(rates):,.0f} - {max(rates):,.0f}"
                     f" | {fill:,.0f} |")
    lines += ["", "Durability (what an acknowledged message survives):", ""]
    seen: dict[str, str] = {}
    for v in res["rows"].values():
        seen.setdefault(v["system"], v["dur"])
    lines += [f"- {k}: {d}" for k, d in seen.items()]
    lines += ["", "Workers: logmq embedded members are threads of one process (the LMDB "
              "commit and the fsync release the GIL); 4 Redis consumers are processes "
              "(threads would measure one GIL in redis-py); the logmq QueueServer row is 4 "
              "RemoteQueue processes served by one owner process; the Kafka wire rows are "
              "confluent-kafka ShareConsumer processes against logmq's Kafka server in the "
              "owner process. Per-record rows receive the same batches but acknowledge each record with its own call, on fewer messages."]
    errs = [f"- {k}: {v['error']}" for k, v in res["rows"].items() if v.get("error")]
    if errs:
        lines += ["", "Errors:"] + errs
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--per-record-messages", type=int, default=None,
                    help="messages for the per-record-ack rows (default min(messages, 20000))")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=500, help="receive / XREADGROUP COUNT")
    ap.add_argument("--quick", action="store_true", help="20,000 messages, 1 run (< 1 min)")
    ap.add_argument("--only", help="comma-separated substrings of row keys")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile one embedded 1-worker ack_many session and print the top")
    ap.add_argument("--out", default=None,
                    help="output directory  [default: bench/results, untracked]")
    ap.add_argument("--report", action="store_true",
                    help="write into bench/report/ (the tracked files the README cites)")
    ap.add_argument("--impl", choices=["both", *IMPLS], default="both",
                    help="codec core(s) for the embedded logmq rows, each run in its own "
                         "interpreter (default: both, side by side)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.out is None:
        args.out = os.path.join(HERE, "report" if args.report else "results")
    if args.quick:
        args.messages, args.runs = 20_000, 1
        if args.per_record_messages is None:
            args.per_record_messages = 5_000
    if args.per_record_messages is None:
        args.per_record_messages = min(args.messages, 20_000)

    if args.child:
        child(args)
        return
    if args.profile:
        profile(args)
        return

    all_rows = split_impl(rows(args), args)
    if args.only:
        subs = [s.strip().lower() for s in args.only.split(",")]
        all_rows = [r for r in all_rows if any(s in r["key"].lower() for s in subs)]
    redis_skip = None
    if shutil.which("redis-server") is None:
        redis_skip = "redis-server not installed"
    else:
        try:
            import redis  # noqa: F401
        except ImportError:
            redis_skip = "redis-py not installed"

    res: dict[str, Any] = {"machine": machine(), "runs": args.runs, "batch": args.batch,
                           "messages": args.messages, "size": SIZE,
                           "per_record_messages": args.per_record_messages, "rows": {}}
    m = res["machine"]
    print(f"{m['cpu']}, {m['nproc']} cores, Python {m['python']}; {args.messages:,} messages "
          f"x {SIZE} B, {args.runs} run(s), batch {args.batch}", flush=True)
    for r in all_rows:
        res["rows"][r["key"]] = {k: r[k] for k in ("system", "workers", "ack", "n", "dur")}
        res["rows"][r["key"]]["samples"] = []
        if r["redis"] and redis_skip:
            res["rows"][r["key"]]["error"] = f"skipped: {redis_skip}"
    for run in range(args.runs):  # interleaved: run 1 of every row, then run 2, ...
        for r in all_rows:
            out = res["rows"][r["key"]]
            if out.get("error"):
                continue
            try:
                s = sample(r)
            except (Skip, Exception) as e:
                out["error"] = f"{type(e).__name__}: {e}"
                print(f"  run {run + 1} {r['key']}: FAILED {out['error']}", flush=True)
                continue
            out["samples"].append(s)
            print(f"  run {run + 1} {r['key']}: {s['rate']:,.0f} acked/s "
                  f"({s['acked']:,} in {s['seconds']:.2f} s)", flush=True)
    for v in res["rows"].values():
        if v["samples"]:
            v["median_rate"] = statistics.median(s["rate"] for s in v["samples"])
    m["loadavg_after"] = list(os.getloadavg())
    md = render(res)
    print()
    print(md)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "queues.md"), "w") as f:
        f.write("# Work queues: acknowledged messages/s\n\n"
                "`python3 bench/queue_compare.py --report` (see its docstring for the method).\n\n" + md)
    with open(os.path.join(args.out, "queues.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(f"wrote {args.out}/queues.md and queues.json")


def profile(args: argparse.Namespace) -> None:
    import pstats

    path = os.path.join(tempfile.gettempdir(), f"qbench_profile_{os.getpid()}.prof")
    tmp = tempfile.mkdtemp(prefix="qbench_")
    try:
        res = logmq_threads(tmp, args.messages, 1, args.batch, False, profile=path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"profiled: {res['acked']:,} acked in {res['seconds']:.2f} s "
          f"({res['acked'] / res['seconds']:,.0f}/s, {res['acked'] / res['cpu_seconds']:,.0f} "
          f"per CPU second, slower under cProfile); {path}")
    st = pstats.Stats(path)
    st.sort_stats("tottime").print_stats(15)
    st.sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
