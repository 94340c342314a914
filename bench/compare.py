#!/usr/bin/env python3
"""logmq side by side with what users would pick instead, on the same workloads, in one run.

    python bench/compare.py                 # full: 3 runs, medians (~15-20 min on 2 cores)
    python bench/compare.py --quick         # one small run of everything, under a minute
    python bench/compare.py --only server --profile   # issue 4: server + Kafka clients, py-spy

Systems (``bench/peers/``, one module each): logmq embedded (``send_batch`` and per-record
``send``), logmq server with confluent-kafka and with kafka-python, Redis 7 Streams, NATS
JetStream, persist-queue (SQLite), and the plain-file reference (plus the cost of fdatasync).
Servers are started here on free loopback ports with data in a temporary directory and
stopped afterwards; a system whose binary or client package is missing is skipped with a
line saying so. Peers: ``apt-get install redis-server nats-server`` and
``pip install redis hiredis nats-py persist-queue matplotlib confluent-kafka kafka-python``.

Workloads (the issue's): ``small`` 1,000,000 records x 100 B and ``large`` 100,000 x 10 KB,
1,000 keys, 8 partitions where the system has them, produced then consumed from the
beginning; ``latency``: send -> receipt by a concurrent consumer at a fixed rate (20,000/s for
10 s), p50/p99/p999 from each record's *scheduled* send time.

Why it is built this way:

- Every row prints its durability setting; logmq runs at fsync="interval" (write before the
  ack, fsync every second), the class of Redis' appendfsync everysec and SQLite WAL
  synchronous=NORMAL (``LOGMQ_BENCH_FSYNC=always`` re-runs logmq at the strict setting).
- A fresh session (server, directory) per workload and run, so nothing carries over.
- Runs are interleaved (run 1 of every system, then run 2, ...) and the median is reported:
  the machine is shared (2 cores, other jobs), so noise hits all systems alike rather than
  whichever ran during a burst. The JSON keeps every sample and the spread.
- The server's CPU share (CPU seconds / wall seconds, from /proc) and peak RSS are recorded
  for every system that has a server: with two cores, a client and a server that each want
  one is the whole machine.

Outputs go to ``bench/results/`` (``--out``): ``compare.md`` (tables), ``compare.json`` (raw
samples and medians), ``compare.png`` (matplotlib), and with ``--profile`` the py-spy
profiles of the logmq server (``profile-*.txt``, collapsed stacks, plus a summary in the
markdown). ``--report`` also copies the markdown and PNG to ``bench/report/`` for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from typing import Any

from peers import ALL, Peer, Skip
from peers.base import RssSampler, cpu_model, proc_cpu, pyplot

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = "logmq embedded (send_batch)"
PER_RECORD = "logmq embedded (send per record)"


# ---------------------------------------------------------------------------- machine
def machine() -> dict[str, Any]:
    """What the numbers were measured on (printed with every table)."""
    cpu = cpu_model()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import logmq

    return {"cpu": cpu, "nproc": os.cpu_count(), "mem_gib": round(mem, 1),
            "python": platform.python_version(), "kernel": platform.release(),
            "logmq": logmq.__version__, "git": _git_state(),
            "load_before": os.getloadavg()[0]}


def _git_state() -> str:
    """The commit measured, and whether logmq/ had uncommitted changes (numbers from a dirty
    tree are not the commit's numbers)."""
    root = os.path.dirname(HERE)
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "logmq"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return head + (" + uncommitted changes in logmq/" if dirty else "")


# ---------------------------------------------------------------------------- profiling
class PySpy:
    """py-spy sampling the logmq server during one phase (``--profile``).

    Raw collapsed stacks; stopped with SIGINT, on which py-spy writes its output.
    """

    def __init__(self, pid: int, path: str) -> None:
        self.path = path
        exe = shutil.which("py-spy")
        self.proc = None
        if exe is None:
            print("  (py-spy not installed: pip install py-spy; no profile)")
            return
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", "1000", "--format", "raw",
             "--output", path, "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # py-spy attaches asynchronously; give it a moment before the phase

    def stop(self) -> str | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.path if os.path.exists(self.path) else None


def summarize_profile(path: str, top: int = 12) -> dict[str, Any]:
    """Where the server's time goes, from py-spy's collapsed stacks.

    Three views: self time by function; inclusive time of logmq's own functions (frames under
    ``logmq/``, minus the CLI/startup wrappers every sample passes through); and self time by
    area (storage, protocol, server, codec, the asyncio loop and transports, waiting in epoll).
    """
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = stack.split(";")
            self_time[_short(frames[-1])] += n
            areas[_area(frames[-1])] += n
            for fr in {_short(x) for x in frames if _is_logmq_work(x)}:
                inclusive[fr] += n
    if not total:
        return {"samples": 0, "self": [], "inclusive": [], "areas": []}
    return {"samples": total,
            "self": [(k, v / total) for k, v in self_time.most_common(top)],
            "inclusive": [(k, v / total) for k, v in inclusive.most_common(top)],
            "areas": [(k, v / total) for k, v in areas.most_common()]}


_WRAPPERS = ("logmq/cli/", "run_server (logmq/server/app.py", "main (logmq/server/app.py")


def _is_logmq_work(frame: str) -> bool:
    where = frame.partition(" (")[2]
    return where.startswith("logmq/") and not frame.startswith(_WRAPPERS) \
        and not where.startswith(_WRAPPERS)


def _area(frame: str) -> str:
    name, _, where = frame.partition(" (")
    if where.startswith("logmq/"):
        return "logmq/" + where.split("/")[1].split(".")[0]
    if "select (selectors" in frame:
        return "waiting in epoll"
    if where.startswith("asyncio/"):
        return "asyncio loop + transports"
    return "other (" + where.split("/")[0].split(":")[0] + ")"


def _short(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py)``: lines differ, functions matter."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({file})"


# ---------------------------------------------------------------------------- running
def run_phase(peer: Peer, call: str, *args: Any, profile: str | None = None) -> dict[str, Any]:
    """One produce / consume / latency call, with the server's CPU share and peak RSS."""
    pid = peer.server_pid()
    spy = PySpy(pid, profile) if profile and pid else None
    cpu0 = proc_cpu(pid) if pid else 0.0
    rss = RssSampler(pid) if pid else None
    t = time.perf_counter()
    res = getattr(peer, call)(*args)
    wall = time.perf_counter() - t
    if pid:
        busy = res.get("seconds", wall) if call != "latency" else wall
        res["server_cpu"] = (proc_cpu(pid) - cpu0) / busy
        res["server_rss_mb"] = rss.stop() if rss else None
    if spy is not None:
        res["profile"] = spy.stop()
    return res


def session(peer: Peer, fn: Any) -> Any:
    """Open a fresh session in a new temp dir, run ``fn``, always close and delete it."""
    tmp = tempfile.mkdtemp(prefix="logmq-compare-")
    try:
        peer.open(tmp)
        try:
            return fn()
        finally:
            peer.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def throughput_sample(peer: Peer, n: int, size: int, profile_prefix: str | None) -> dict:
    def go() -> dict:
        pp = f"{profile_prefix}-produce.txt" if profile_prefix else None
        pc = f"{profile_prefix}-consume.txt" if profile_prefix else None
        p = run_phase(peer, "produce", n, size, profile=pp)
        c = run_phase(peer, "consume", n, size, profile=pc)
        out = {"produce_rps": n / p["seconds"], "consume_rps": n / c["seconds"],
               "produce_MBps": n * size / p["seconds"] / 1e6,
               "consume_MBps": n * size / c["seconds"] / 1e6}
        for phase, ph in (("produce", p), ("consume", c)):
            for k, secs in ph.get("alt", {}).items():
                out[f"alt {phase}:{k}"] = n / secs
        for k in ("server_cpu", "server_rss_mb"):
            if k in p:
                out[f"{k}_produce"] = p[k]
                out[f"{k}_consume"] = c[k]
        if "fdatasync_4k_ms" in p:
            out["fdatasync_4k_ms"] = p["fdatasync_4k_ms"]
        for k, ph in (("produce", p), ("consume", c)):
            if ph.get("profile"):
                out[f"profile_{k}"] = ph["profile"]
        return out

    return session(peer, go)


def latency_sample(peer: Peer, rate: int, seconds: float, size: int,
                   profile: str | None = None) -> dict:
    return session(peer, lambda: run_phase(peer, "latency", rate, seconds, size,
                                           profile=profile))


def median_of(samples: list[dict]) -> dict[str, Any]:
    """Median of every numeric metric, and its spread ((max - min) / median)."""
    out: dict[str, Any] = {}
    for k in samples[0]:
        vals = [s[k] for s in samples if isinstance(s.get(k), int | float) and s[k] == s[k]]
        if not vals:
            continue
        m = statistics.median(vals)
        out[k] = m
        if len(vals) > 1 and m:
            out[f"{k}~spread"] = (max(vals) - min(vals)) / m
    return out


# ---------------------------------------------------------------------------- report
def fmt_rate(v: float | None) -> str:
    return "" if v is None else f"{v:,.0f}"


def ratio(base: float | None, v: float | None) -> str:
    if not base or not v:
        return ""
    return f"{base / v:.1f}x"


def table_throughput(res: dict, wl: str) -> list[str]:
    systems = res["systems"]
    n, size = res["workloads"][wl]
    med = {k: v["workloads"][wl]["median"] for k, v in systems.items()
           if wl in v.get("workloads", {}) and "median" in v["workloads"][wl]}
    base = med.get(BASE, {})
    per = med.get(PER_RECORD, {})
    lines = [f"**{n:,} records x {size:,} B**, 1,000 keys, produce then consume from the "
             f"beginning; MB/s of values; median of {res['runs']} run(s).",
             "",
             "| system | produce rec/s | produce MB/s | consume rec/s | consume MB/s | "
             "logmq send_batch is (produce / consume) | logmq per-record send is | "
             "server CPU (produce / consume) | durability |",
             "|---|---:|---:|---:|---:|---|---|---|---|"]
    for name, m in med.items():
        alt_p, alt_c = ("".join(f"<br>{k.split(':', 1)[1]}: {v:,.0f}" for k, v in m.items()
                                if k.startswith(f"alt {ph}:") and "~" not in k)
                        for ph in ("produce", "consume"))
        cpu = ""
        if "server_cpu_produce" in m:
            cpu = f"{m['server_cpu_produce']:.0%} / {m['server_cpu_consume']:.0%}"
        parts = systems[name].get("partitions", 1)
        label = name if parts == 1 or name.startswith("plain") else f"{name}, {parts} partitions"
        r1 = (f"{ratio(base.get('produce_rps'), m['produce_rps'])} / "
              f"{ratio(base.get('consume_rps'), m['consume_rps'])}") if base else ""
        r2 = (f"{ratio(per.get('produce_rps'), m['produce_rps'])} / "
              f"{ratio(per.get('consume_rps'), m['consume_rps'])}") if per else ""
        lines.append(
            f"| {label} | {fmt_rate(m['produce_rps'])}{alt_p} | {m['produce_MBps']:,.1f} | "
            f"{fmt_rate(m['consume_rps'])}{alt_c} | {m['consume_MBps']:,.1f} | {r1} | {r2} | "
            f"{cpu} | {systems[name]['durability']} |")
    spreads = [f"{name} {m['produce_rps~spread']:.0%} / {m['consume_rps~spread']:.0%}"
               for name, m in med.items() if "produce_rps~spread" in m]
    if spreads:
        lines += ["", "Run-to-run spread ((max - min) / median, produce / consume): "
                  + "; ".join(spreads) + "."]
    return lines


def table_latency(res: dict) -> list[str]:
    rate, secs = res["latency"]
    lines = [f"**End-to-end latency** at {rate:,} records/s for {secs:g} s "
             f"({res['workloads']['small'][1]} B values), send -> receipt by a consumer "
             "running at the same time, from each record's scheduled send time; median of "
             f"{res['runs']} run(s).", "",
             "| system | p50 ms | p99 ms | p99.9 ms | max ms | received | server CPU |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, v in res["systems"].items():
        m = v.get("workloads", {}).get("latency", {}).get("median")
        if not m:
            continue
        cpu = f"{m['server_cpu']:.0%}" if "server_cpu" in m else ""
        lines.append(f"| {name} | {m['p50_ms']:,.2f} | {m['p99_ms']:,.2f} | "
                     f"{m['p999_ms']:,.2f} | {m['max_ms']:,.1f} | "
                     f"{m['received'] / m['expected']:.0%} | {cpu} |")
    return lines


def goal_lines(res: dict) -> list[str]:
    """The issue's goal, checked: 3x every peer embedded; produce >= 1/4 of the plain file."""
    med = {k: v["workloads"]["small"]["median"] for k, v in res["systems"].items()
           if "median" in v.get("workloads", {}).get("small", {})}
    base = med.get(BASE)
    if not base:
        return []
    n, size = res["workloads"]["small"]
    out = [f"**Goal check** ({n:,} x {size} B, logmq embedded send_batch vs each peer):", ""]
    for name, m in med.items():
        if name.startswith("logmq"):
            continue
        if name.startswith("plain"):
            r = base["produce_rps"] / m["produce_rps"]
            out.append(f"- send_batch produces at {r:.0%} of the plain-file write rate "
                       f"(goal >= 25%): {'met' if r >= 0.25 else 'NOT met'}")
            raw = base.get("alt produce:append_batches, pre-encoded")
            if raw:
                out.append(f"- append_batches of pre-encoded batches (the server's path) at "
                           f"{raw / m['produce_rps']:.0%} of it")
            continue
        p = base["produce_rps"] / m["produce_rps"]
        c = base["consume_rps"] / m["consume_rps"]
        ok = "met" if p >= 3 and c >= 3 else "NOT met"
        out.append(f"- {name}: produce {p:.1f}x, consume {c:.1f}x (goal 3x): {ok}")
    return out


def profile_lines(res: dict) -> list[str]:
    out: list[str] = []
    for name, v in res["systems"].items():
        for phase, prof in v.get("profiles", {}).items():
            if not prof.get("samples"):
                continue
            areas = ", ".join(f"{k} {x:.0%}" for k, x in prof["areas"] if x >= 0.01)
            out += [f"**Server profile, {name}, {phase}** (py-spy, {prof['samples']:,} "
                    f"samples at 1 kHz while the server was on CPU). By area: {areas}.", "",
                    "| self | function | inclusive | logmq function |", "|---:|---|---:|---|"]
            for (sf, sv), (inf, iv) in zip(prof["self"], prof["inclusive"], strict=False):
                out.append(f"| {sv:.0%} | `{sf}` | {iv:.0%} | `{inf}` |")
            out.append("")
    return out


def render(res: dict) -> str:
    m = res["machine"]
    lines = [f"Machine: {m['cpu']}, {m['nproc']} cores, {m['mem_gib']} GiB RAM, Linux "
             f"{m['kernel']}, Python {m['python']}, logmq {m['logmq']} ({m.get('git', '?')}); "
             "load average "
             f"{m['load_before']:.1f} before / {m.get('load_after', 0):.1f} after "
             "(shared machine).", ""]
    for wl in ("small", "large"):
        if any(wl in v.get("workloads", {}) for v in res["systems"].values()):
            lines += table_throughput(res, wl) + [""]
    if any("latency" in v.get("workloads", {}) for v in res["systems"].values()):
        lines += table_latency(res) + [""]
    fs = [v["workloads"]["small"]["median"].get("fdatasync_4k_ms")
          for v in res["systems"].values()
          if "median" in v.get("workloads", {}).get("small", {})]
    fs = [x for x in fs if x]
    if fs:
        lines += [f"fdatasync of a 4 KiB append: {fs[0]:.3f} ms (the floor of fsync=\"always\" "
                  "per acknowledged write).", ""]
    lines += goal_lines(res)
    skipped = [f"- skipped {k}: {v['skipped']}" for k, v in res["systems"].items()
               if v.get("skipped")]
    errors = [f"- {k}: {w} failed: {e}" for k, v in res["systems"].items()
              for w, e in v.get("errors", {}).items()]
    if skipped or errors:
        lines += [""] + skipped + errors
    prof = profile_lines(res)
    if prof:
        lines += [""] + prof
    return "\n".join(lines) + "\n"


def chart(res: dict, path: str) -> bool:
    """Three panels: 100 B records/s, 10 KB MB/s, latency percentiles (all log scale)."""
    plt = pyplot()
    if plt is None:
        return False
    panels = []
    for wl, key, unit in (("small", "rps", "records/s"), ("large", "MBps", "MB/s")):
        rows = {k: v["workloads"][wl]["median"] for k, v in res["systems"].items()
                if "median" in v.get("workloads", {}).get(wl, {})}
        if rows:
            n, size = res["workloads"][wl]
            panels.append(("bars", rows, key, unit, f"{n:,} x {size:,} B"))
    lat = {k: v["workloads"]["latency"]["median"] for k, v in res["systems"].items()
           if "median" in v.get("workloads", {}).get("latency", {})}
    if lat:
        panels.append(("lat", lat, "", "ms", f"latency at {res['latency'][0]:,}/s"))
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5.2))
    if len(panels) == 1:
        axes = [axes]
    for ax, (kind, rows, key, unit, title) in zip(axes, panels, strict=True):
        names = list(rows)
        xs = range(len(names))
        if kind == "bars":
            ax.bar([x - 0.2 for x in xs], [rows[k][f"produce_{key}"] for k in names], 0.4,
                   label="produce")
            ax.bar([x + 0.2 for x in xs], [rows[k][f"consume_{key}"] for k in names], 0.4,
                   label="consume")
        else:
            for i, (q, lab) in enumerate((("p50_ms", "p50"), ("p99_ms", "p99"),
                                          ("p999_ms", "p99.9"))):
                ax.bar([x + (i - 1) * 0.27 for x in xs], [rows[k][q] for k in names], 0.27,
                       label=lab)
        ax.set_yscale("log")
        ax.set_ylabel(f"{unit} (log scale)")
        ax.set_title(title)
        ax.set_xticks(list(xs), [k.replace(" (", "\n(") for k in names], rotation=45,
                      ha="right", fontsize=7)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"logmq vs peers, median of {res['runs']} run(s), {res['machine']['nproc']} "
                 f"cores ({res['machine']['cpu']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="small workload records")
    ap.add_argument("--size", type=int, default=100, help="small workload value bytes")
    ap.add_argument("--large-records", type=int, default=100_000)
    ap.add_argument("--large-size", type=int, default=10_000)
    ap.add_argument("--rate", type=int, default=20_000, help="latency: records/s")
    ap.add_argument("--seconds", type=float, default=10.0, help="latency: how long")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workloads", default="small,large,latency")
    ap.add_argument("--quick", action="store_true",
                    help="50,000 x 100 B, 2,000 x 10 KB, 1 s of latency, one run (< 1 min)")
    ap.add_argument("--only", help="comma-separated substrings of system names")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy the logmq server during produce and consume (first run)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--name", default="compare",
                    help="base name of the output files (compare.md/.json/.png)")
    ap.add_argument("--report", action="store_true",
                    help="also copy NAME.md and NAME.png to bench/report/")
    args = ap.parse_args()
    if args.quick:
        args.records, args.large_records, args.seconds, args.runs = 50_000, 2_000, 1.0, 1
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    os.makedirs(args.out, exist_ok=True)
    res: dict[str, Any] = {
        "machine": machine(), "runs": args.runs, "quick": args.quick,
        "workloads": {"small": [args.records, args.size],
                      "large": [args.large_records, args.large_size]},
        "latency": [args.rate, args.seconds], "systems": {}}
    peers: list[Peer] = []
    for cls in ALL:
        peer = cls()
        if args.only and not any(s.strip().lower() in peer.name.lower()
                                 for s in args.only.split(",")):
            continue
        entry: dict[str, Any] = {"durability": peer.durability, "partitions": peer.partitions,
                                 "workloads": {}, "errors": {}}
        res["systems"][peer.name] = entry
        try:
            peer.check()
        except Skip as e:
            entry["skipped"] = str(e)
            print(f"skipped {peer.name}: {e}", flush=True)
            continue
        peers.append(peer)
    m = res["machine"]
    print(f"{m['cpu']}, {m['nproc']} cores, Python {m['python']}; workloads {workloads}; "
          f"{args.runs} run(s), interleaved", flush=True)
    samples: dict[tuple[str, str], list[dict]] = {}
    t_start = time.monotonic()
    for run in range(args.runs):
        for peer in peers:
            entry = res["systems"][peer.name]
            for wl in workloads:
                if wl in entry["errors"] or (wl == "latency" and not peer.has_latency):
                    continue
                t = time.monotonic()
                prefix = None
                if args.profile and run == 0 and getattr(peer, "python_server", False):
                    slug = peer.name.split("+")[-1].strip().replace(" ", "-")
                    prefix = os.path.join(args.out, f"profile-{slug}-{wl}")
                try:
                    if wl == "latency":
                        s = latency_sample(peer, args.rate, args.seconds, args.size,
                                           f"{prefix}.txt" if prefix else None)
                        if s.get("profile"):
                            s["profile_latency"] = s.pop("profile")
                        msg = (f"p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, "
                               f"p99.9 {s['p999_ms']:.2f} ms, received {s['received']:,}")
                    else:
                        n, size = res["workloads"][wl]
                        s = throughput_sample(peer, n, size, prefix)
                        msg = (f"produce {s['produce_rps']:,.0f}/s, "
                               f"consume {s['consume_rps']:,.0f}/s")
                        if "server_cpu_produce" in s:
                            msg += (f"; server CPU {s['server_cpu_produce']:.0%} / "
                                    f"{s['server_cpu_consume']:.0%}")
                except Skip as e:
                    entry["skipped"] = str(e)
                    print(f"skipped {peer.name}: {e}", flush=True)
                    break
                except Exception as e:  # noqa: BLE001 - one system failing must not end the run
                    entry["errors"][wl] = f"{type(e).__name__}: {e}"
                    print(f"  run {run + 1} {peer.name} {wl}: FAILED {e}", flush=True)
                    traceback.print_exc()
                    continue
                samples.setdefault((peer.name, wl), []).append(s)
                print(f"  run {run + 1} {peer.name} [{wl}] {msg} "
                      f"({time.monotonic() - t:.1f} s)", flush=True)
    for (name, wl), ss in samples.items():
        w = res["systems"][name]["workloads"]
        w[wl] = {"samples": ss, "median": median_of(ss)}
        for s in ss:
            for phase in ("produce", "consume", "latency"):
                path = s.get(f"profile_{phase}")
                if path:
                    res["systems"][name].setdefault("profiles", {})[
                        wl if wl == phase else f"{wl} {phase}"] = \
                        summarize_profile(path)
    res["machine"]["load_after"] = os.getloadavg()[0]
    res["elapsed_s"] = time.monotonic() - t_start
    md = render(res)
    print()
    print(md)
    base = os.path.join(args.out, args.name)
    with open(base + ".md", "w") as f:
        f.write(md)
    with open(base + ".json", "w") as f:
        json.dump(res, f, indent=2, default=str)
    drew = chart(res, base + ".png")
    print(f"wrote {base}.md, .json" + (", .png" if drew else "")
          + f" in {res['elapsed_s']:.0f} s")
    if args.report:
        rep = os.path.join(HERE, "report")
        os.makedirs(rep, exist_ok=True)
        shutil.copy(base + ".md", rep)
        if drew:
            shutil.copy(base + ".png", rep)
        print(f"copied to {rep}/")


if __name__ == "__main__":
    sys.exit(main())
