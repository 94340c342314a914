#!/usr/bin/env python3
"""Event-store workloads on logmq streams, with the eventsourcing library's SQLite recorder as
the reference in the same run.

1. appends: ``--streams`` streams (default 10,000), ``--threads`` threads (4), each append one
   event with ``expected_version`` = the version the writer last saw; events/s for
   - logmq ``append_to_stream`` with fsync=always and fsync=interval,
   - logmq through ``logmq.eventsourcing``'s application recorder (fsync=always),
   - ``eventsourcing.sqlite``'s application recorder on a file (WAL, synchronous=FULL: it
     fsyncs every commit, like fsync=always), same StoredEvents.
2. read one 100-event stream among ``--events`` events (default 1,000,000) in one partition:
   p50/p99 latency of ``read_stream`` (the index is built once by catch-up first; its
   indexing rate is printed too).
3. catch-up replay: ``subscribe_all`` from offset 0 over the same ``--events`` events.

    python bench/bench_streams.py [--events N] [--streams N] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import logmq  # noqa: E402

PAYLOAD = b'{"amount": 100, "currency": "EUR", "note": "bench"}'


def run_threads(n_threads: int, work: Callable[[int], int]) -> tuple[int, float]:
    done = [0] * n_threads
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            done[i] = work(i)
        except BaseException as e:  # pragma: no cover - reported
            errors.append(e)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    secs = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return sum(done), secs


def bench_logmq_appends(tmp: str, n_streams: int, n_threads: int, rounds: int,
                        fsync: str) -> dict[str, Any]:
    path = os.path.join(tmp, f"appends-{fsync}")
    shutil.rmtree(path, ignore_errors=True)
    with logmq.open(path, cleaner=False) as log:
        log.create_topic("bank", partitions=1, config={"fsync": fsync})
        s = log.streams
        keys = [f"acc-{i}" for i in range(n_streams)]

        def work(t: int) -> int:
            mine = keys[t::n_threads]
            ver = dict.fromkeys(mine, -1)
            n = 0
            for _ in range(rounds):
                for k in mine:
                    ver[k] = s.append_to_stream("bank", k, [PAYLOAD],
                                                expected_version=ver[k]).version
                    n += 1
            return n

        n, secs = run_threads(n_threads, work)
        assert all(s.version("bank", k) == rounds - 1 for k in keys[:50])
    shutil.rmtree(path, ignore_errors=True)
    return {"events": n, "seconds": secs, "events_per_s": n / secs}


def _stored_event_workload(recorder: Any, n_streams: int, n_threads: int, rounds: int
                           ) -> tuple[int, float]:
    from eventsourcing.persistence import StoredEvent

    ids = [uuid4() for _ in range(n_streams)]

    def work(t: int) -> int:
        mine: list[UUID] = ids[t::n_threads]
        n = 0
        for r in range(rounds):
            for oid in mine:
                recorder.insert_events([StoredEvent(originator_id=oid, originator_version=r + 1,
                                                    topic="bank.Deposited", state=PAYLOAD)])
                n += 1
        return n

    return run_threads(n_threads, work)


def bench_recorder(tmp: str, kind: str, n_streams: int, n_threads: int, rounds: int
                   ) -> dict[str, Any]:
    from eventsourcing.utils import Environment

    if kind == "sqlite":
        from eventsourcing.sqlite import SQLiteFactory

        db = os.path.join(tmp, "bench.sqlite")
        factory: Any = SQLiteFactory(Environment("Bank", {"SQLITE_DBNAME": db,
                                                          "CREATE_TABLE": "y"}))
    else:
        from logmq.eventsourcing import LogMQFactory

        factory = LogMQFactory(Environment("Bank", {"LOGMQ_DATA": os.path.join(tmp, "es"),
                                                    "LOGMQ_FSYNC": "always"}))
    try:
        rec = factory.application_recorder()
        n, secs = _stored_event_workload(rec, n_streams, n_threads, rounds)
        assert rec.max_notification_id() == n
    finally:
        factory.close()
    return {"events": n, "seconds": secs, "events_per_s": n / secs}


def build_log(path: str, n_events: int, batch: int, target_events: int = 100) -> None:
    """``n_events`` records in one partition; stream ``target`` has 100 of them, spread out,
    each in a batch of its own (as ``append_to_stream`` writes); the others in batches of
    ``batch`` records."""
    every = max(1, n_events // target_events)
    with logmq.open(path, cleaner=False) as log:
        log.create_topic("big", partitions=1, config={"fsync": "never"})
        p = log.producer()
        chunk: list[tuple[bytes, bytes]] = []
        t_i = 0
        for i in range(n_events):
            if i % every == every // 2 and t_i < target_events:
                if chunk:
                    p.send_batch("big", chunk, partition=0)
                    chunk = []
                p.send_batch("big", [(b"target", b"%d" % t_i)], partition=0)
                t_i += 1
                continue
            chunk.append((b"s-%d" % (i % 50_000), PAYLOAD))
            if len(chunk) == batch:
                p.send_batch("big", chunk, partition=0)
                chunk = []
        if chunk:
            p.send_batch("big", chunk, partition=0)
        p.close()


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def bench_reads(path: str, n_events: int, reads: int) -> dict[str, Any]:
    with logmq.open(path, cleaner=False) as log:
        t0 = time.perf_counter()
        log.streams.index.catch_up("big", 0)  # the first read would do this
        index_secs = time.perf_counter() - t0
        assert len(log.read_stream("big", "target")) == 100
        lat = []
        for _ in range(reads):
            t = time.perf_counter()
            evs = log.read_stream("big", "target")
            lat.append(time.perf_counter() - t)
            assert len(evs) == 100
        lat_last = []
        for _ in range(reads):
            t = time.perf_counter()
            log.read_stream("big", "target", backwards=True, limit=1)
            lat_last.append(time.perf_counter() - t)
    return {"events": n_events, "index_build_s": index_secs,
            "index_events_per_s": n_events / index_secs,
            "read100_p50_ms": pct(lat, 0.5) * 1e3, "read100_p99_ms": pct(lat, 0.99) * 1e3,
            "read100_mean_ms": statistics.fmean(lat) * 1e3,
            "last_event_p50_ms": pct(lat_last, 0.5) * 1e3,
            "last_event_p99_ms": pct(lat_last, 0.99) * 1e3}


def bench_replay(path: str, n_events: int) -> dict[str, Any]:
    with logmq.open(path, cleaner=False) as log:
        sub = log.subscribe_all("big", 0, batch_size=5000)
        n = 0
        t0 = time.perf_counter()
        while n < n_events:
            got = sub.poll(1.0)
            if not got:
                break
            n += len(got)
        secs = time.perf_counter() - t0
        sub.stop()
    assert n == n_events, (n, n_events)
    return {"events": n, "seconds": secs, "events_per_s": n / secs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--streams", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=1, help="events appended per stream")
    ap.add_argument("--reads", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each append variant")
    ap.add_argument("--batch", type=int, default=10,
                    help="records per batch of the other streams in the read benchmark")
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--dir", help="scratch directory (default: a temp dir, removed)")
    a = ap.parse_args()
    tmp = a.dir or tempfile.mkdtemp(prefix="logmq-bench-streams-")
    os.makedirs(tmp, exist_ok=True)
    out: dict[str, Any] = {"machine": {"python": platform.python_version(),
                                       "cpus": os.cpu_count(), "pure": bool(
                                           os.environ.get("LOGMQ_PURE"))},
                           "args": vars(a)}
    try:
        print(f"appends with expected_version: {a.streams} streams x {a.rounds}, "
              f"{a.threads} threads")
        variants = [
            ("logmq fsync=always", lambda: bench_logmq_appends(tmp, a.streams, a.threads,
                                                                a.rounds, "always")),
            ("logmq fsync=interval", lambda: bench_logmq_appends(tmp, a.streams, a.threads,
                                                                  a.rounds, "interval")),
            ("logmq.eventsourcing recorder", lambda: bench_recorder(tmp, "logmq", a.streams,
                                                                    a.threads, a.rounds)),
            ("eventsourcing SQLite recorder", lambda: bench_recorder(tmp, "sqlite", a.streams,
                                                                     a.threads, a.rounds)),
        ]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
        for _rep in range(a.repeat):  # interleaved, so a busy moment hits every variant
            for name, fn in variants:
                runs[name].append(fn())
                shutil.rmtree(os.path.join(tmp, "es"), ignore_errors=True)
                for f in os.listdir(tmp):
                    if f.startswith("bench.sqlite"):
                        os.unlink(os.path.join(tmp, f))
        res = {}
        for name, _ in variants:
            rates = sorted(r["events_per_s"] for r in runs[name])
            r = dict(runs[name][0], events_per_s=statistics.median(rates), all=rates)
            res[name] = r
            print(f"  {name:<32} {r['events_per_s']:>10,.0f} events/s median of {a.repeat} "
                  f"({', '.join(f'{x:,.0f}' for x in rates)}; {r['events']} events each)")
        sq = res["eventsourcing SQLite recorder"]["events_per_s"]
        for name in ("logmq fsync=always", "logmq.eventsourcing recorder"):
            print(f"  ratio {name} / SQLite recorder: {res[name]['events_per_s'] / sq:.2f}")
        out["appends"] = res
        for batch in (a.batch, 2000):
            path = os.path.join(tmp, f"big-{batch}")
            t0 = time.perf_counter()
            build_log(path, a.events, batch)
            print(f"built {a.events:,} events in one partition (other streams' events in "
                  f"batches of {batch}) in {time.perf_counter() - t0:.1f} s")
            r = bench_reads(path, a.events, a.reads)
            out[f"read_stream_batch{batch}"] = r
            print(f"  index catch-up: {r['index_events_per_s']:,.0f} events/s "
                  f"({r['index_build_s']:.1f} s)")
            print(f"  read one 100-event stream: p50 {r['read100_p50_ms']:.3f} ms, p99 "
                  f"{r['read100_p99_ms']:.3f} ms; its last event only: p50 "
                  f"{r['last_event_p50_ms']:.3f} ms, p99 {r['last_event_p99_ms']:.3f} ms")
        path = os.path.join(tmp, f"big-{a.batch}")
        r = bench_replay(path, a.events)
        out["replay"] = r
        print(f"subscribe_all catch-up replay: {r['events_per_s']:,.0f} events/s "
              f"({r['events']:,} in {r['seconds']:.1f} s)")
    finally:
        if not a.dir:
            shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
