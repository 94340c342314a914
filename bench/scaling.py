#!/usr/bin/env python3
"""How the log behaves as it grows: append rate per million records, and reopen time.

    python bench/scaling.py [--records 20000000] [--reopen-gb 5]

Appends pre-encoded 1,000-record batches of 100-byte values (the storage path, no encoding)
to one partition, printing the rate of every 1M-record window, then closes the log and times
a clean reopen of the whole directory (which must not scan: cost grows with the number of
segments, not bytes). ``--reopen-gb`` keeps appending until the log is that large first.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time

import logmq
from logmq.codec.records import encode_batch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20_000_000)
    ap.add_argument("--reopen-gb", type=float, default=5.0)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="logmq-scale-")
    batch = encode_batch([(b"key-%d" % i, b"x" * 100) for i in range(1000)], timestamp=1)
    try:
        log = logmq.open(tmp, cleaner=False)
        log.create_topic("s", partitions=1)
        plog = log.partition_log("s", 0)
        window = 1_000_000
        rates = []
        t = time.perf_counter()
        appended = 0
        while appended < args.records:
            plog.append(batch, validate=False)
            appended += 1000
            if appended % window == 0:
                now = time.perf_counter()
                rates.append(window / (now - t))
                print(f"{appended / 1e6:5.0f}M records  {rates[-1]:>12,.0f} rec/s  "
                      f"log {plog.size_bytes / 1e9:6.2f} GB")
                t = now
        target = args.reopen_gb * 1e9
        while plog.size_bytes < target:
            plog.append(batch, validate=False)
        first, last = rates[0], rates[-1]
        print(f"append rate at {args.records / 1e6:.0f}M vs 1M: {last / first:.0%}")
        size = plog.size_bytes
        segs = len(plog.segments)
        log.close()
        t = time.perf_counter()
        log = logmq.open(tmp, cleaner=False)
        reopen = time.perf_counter() - t
        print(f"clean reopen of {size / 1e9:.2f} GB in {segs} segments: {reopen * 1000:.1f} ms "
              f"(end offset {log.end_offset(('s', 0)):,})")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS {rss:.0f} MB")
        log.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
