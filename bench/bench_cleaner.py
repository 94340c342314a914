"""Cleaner benchmark: compaction throughput, and produce throughput with/without a cleaner.

Run: ``python bench/bench_cleaner.py [--records 200000 --keys 1000 --value-size 100]``

What it measures, and why those three numbers:

1. produce throughput into a fresh compacted topic with no cleaner (the baseline);
2. one forced, unthrottled compaction of that topic: MiB of segments cleaned per second
   (the cleaner's own speed, what bounds how fast a topic can be kept compact);
3. produce throughput into a second topic while a cleaner thread repeatedly compacts the
   first one, throttled (the default 50 MiB/s) and unthrottled: how much a busy cleaner
   slows producers down, which is what the throttle is for.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time

import logmq
from logmq.broker.cleaner import DEFAULT_MAX_BYTES_PER_SEC, Cleaner


def _records(n: int, keys: int, value_size: int, salt: int = 0) -> list[tuple[bytes, bytes]]:
    value = os.urandom(value_size)
    return [(b"key-%06d" % ((i * 7919 + salt) % keys), value) for i in range(n)]


def _produce(log: logmq.Broker, topic: str, recs: list[tuple[bytes, bytes]],
             chunk: int = 1000) -> tuple[float, int]:
    p = log.producer(linger_ms=0)
    t0 = time.perf_counter()
    for i in range(0, len(recs), chunk):
        p.send_batch(topic, recs[i : i + chunk])
    p.close()
    secs = time.perf_counter() - t0
    return secs, log.describe_topic(topic).partitions[0].size_bytes


def _topic(log: logmq.Broker, name: str, segment_bytes: int) -> None:
    log.create_topic(name, partitions=1, config={
        "cleanup.policy": "compact", "segment.bytes": segment_bytes,
        "delete.retention.ms": 0})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--segment-bytes", type=int, default=4 << 20)
    args = ap.parse_args()
    n, mib = args.records, float(1 << 20)
    tmp = tempfile.mkdtemp(prefix="logmq-bench-cleaner-")
    try:
        log = logmq.open(os.path.join(tmp, "data"), cleaner=False, fsync="never")
        recs = _records(n, args.keys, args.value_size)

        _topic(log, "a", args.segment_bytes)
        secs, size = _produce(log, "a", recs)
        print(f"produce, no cleaner:          {n / secs:>10,.0f} rec/s  "
              f"{size / mib / secs:7.1f} MiB/s  ({size / mib:.1f} MiB)")
        log.partition_log("a", 0).roll()

        cleaner = Cleaner(log, max_bytes_per_sec=None)
        stats = cleaner.run_once(force=True)
        print(f"compaction (unthrottled):     {stats['mb_per_sec']:>10.1f} MiB/s cleaned  "
              f"({stats['bytes_cleaned'] / mib:.1f} MiB in {stats['seconds']:.2f} s, "
              f"{stats['records_removed']:,} records removed, "
              f"{stats['bytes_written'] / mib:.2f} MiB written)")

        for label, rate in (("throttled 50 MiB/s", DEFAULT_MAX_BYTES_PER_SEC),
                            ("unthrottled", None)):
            name = f"b{0 if rate else 1}"
            dirty = f"d{0 if rate else 1}"
            _topic(log, name, args.segment_bytes)
            _topic(log, dirty, args.segment_bytes)
            # 3x the data: the cleaner's one pass outlasts the producer's run below
            _produce(log, dirty, _records(3 * n, args.keys, args.value_size, 2))
            log.partition_log(dirty, 0).roll()
            bg = Cleaner(log, max_bytes_per_sec=rate)
            t = threading.Thread(target=bg.run_once, kwargs={"force": True, "topics": [dirty]})
            t.start()
            secs, size = _produce(log, name, _records(n, args.keys, args.value_size, 1))
            busy = t.is_alive()
            t.join()
            st = bg.last_stats or {}
            print(f"produce, cleaner {label:<18} {n / secs:>10,.0f} rec/s  "
                  f"{size / mib / secs:7.1f} MiB/s  (cleaner pass: {st.get('seconds', 0):.2f} s, "
                  f"{st.get('mb_per_sec', 0):.1f} MiB/s; still cleaning when produce ended: "
                  f"{busy})")
        log.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
