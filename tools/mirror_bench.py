"""How fast ``logmq mirror`` moves records: dir -> logmq serve -> dir, and dir -> dir.

    python tools/mirror_bench.py [--records 100000] [--size 100] [--partitions 4]

Prints records/s per direction (verification included unless noted). A figure for the README,
not a test: run it alone on a quiet machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import logmq
from logmq.mirror import mirror
from logmq.testing import LogMQServer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=4)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="mirror-bench-")
    n = a.records
    with logmq.open(d + "/a") as log:
        log.create_topic("bench", a.partitions)
        with log.producer() as p:
            for i in range(n):
                p.send("bench", b"x" * a.size, key=b"k%d" % i)
    with LogMQServer(d + "/srv", auto_create_topics=False) as srv:
        url = f"kafka://{srv.bootstrap}"
        for label, src, dst, verify in (("dir -> serve", d + "/a", url, True),
                                         ("rerun, nothing new", d + "/a", url, False),
                                         ("serve -> dir", url, d + "/b", True),
                                         ("dir -> dir (no verify)", d + "/a", d + "/c", False)):
            t = time.perf_counter()
            r = mirror(src, dst, verify=verify)
            dt = time.perf_counter() - t
            rate = f"{r.copied / dt:,.0f} records/s" if r.copied else ""
            print(f"{label:24} ok={r.ok} copied={r.copied:,} {dt:.2f} s {rate}")


if __name__ == "__main__":
    main()
