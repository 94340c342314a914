#!/usr/bin/env python3
"""How much faster test-style workloads run on ``logmq.open(":memory:")`` than on a disk dir.

A "test" here is what a test of application code does with a fresh log: open it, create a
topic, produce a few hundred records, read them back through a consumer group and commit,
take and ack a few queue records, close. Each variant runs the same tests, alternating so
that load on the machine hits both alike; the report is the ratio per variant (disk time /
memory time) with the median test time of each.

- ``default``: topics with the default ``fsync=interval`` (the log fsyncs at close and for
  LMDB commits: group offsets, topic creation, queue state);
- ``fsync=always``: what a durability-minded test suite sets for its topics.

    python bench/memory_vs_disk.py [--tests N] [--records N] [--disk-dir DIR]

``--disk-dir`` defaults to the temporary directory; point it at the file system your test
suite really uses (on a tmpfs ``/tmp`` both sides are in memory and the gain is small).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid

import logmq
import logmq.storage.memory


def one_test(path: str, records: int, topic_config: dict[str, str]) -> float:
    t0 = time.perf_counter()
    with logmq.open(path, cleaner=False) as log:
        log.create_topic("orders", partitions=3, config=topic_config)
        log.create_topic("jobs", config=topic_config)
        p = log.producer(linger_ms=0)
        for i in range(0, records, 50):
            p.send_batch("orders", [(b"k%d" % j, b"v" * 100) for j in range(i, i + 50)])
        p.send_batch("jobs", [(None, b"job%d" % j) for j in range(20)])
        p.close()
        c = log.consumer("orders", group="g", auto_offset_reset="earliest")
        got = 0
        deadline = time.monotonic() + 30
        while got < records and time.monotonic() < deadline:
            got += len(c.poll(timeout=1))
            c.commit()
        c.close()
        assert got == records, (got, records)
        q = log.queue("jobs", group="w")
        for r in q.receive(20, timeout=1):
            r.ack()
        q.close()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tests", type=int, default=20, help="tests per variant and storage")
    ap.add_argument("--records", type=int, default=500)
    ap.add_argument("--disk-dir", default=tempfile.gettempdir())
    args = ap.parse_args()
    variants = {"default": {}, "fsync=always": {"fsync": "always"}}
    print(f"{args.tests} tests x {args.records} records; disk dir {args.disk_dir}; "
          f"memory root {logmq.storage.memory.memory_root()}")
    for name, cfg in variants.items():
        times: dict[str, list[float]] = {"disk": [], "memory": []}
        for _ in range(args.tests):
            with tempfile.TemporaryDirectory(dir=args.disk_dir) as d:
                times["disk"].append(one_test(os.path.join(d, uuid.uuid4().hex), args.records, cfg))
            times["memory"].append(one_test(":memory:", args.records, cfg))
        disk, mem = statistics.median(times["disk"]), statistics.median(times["memory"])
        print(f"{name:>13}: disk {disk * 1000:7.1f} ms/test, memory {mem * 1000:7.1f} ms/test, "
              f"memory is {disk / mem:4.1f}x faster (sum {sum(times['disk']):.2f} s vs "
              f"{sum(times['memory']):.2f} s)")


if __name__ == "__main__":
    main()
