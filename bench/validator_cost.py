"""Cost of the produce validator per record, alone and on the server's produce path.

Prints µs per record for: the CRC-only check the server did before (``validate_batch``), the
full validator (``validate_produce``), and the server's whole produce handler (validation +
append) with each, for uncompressed and gzip batches. Ratios in one run, as bench/ does.

    PYTHONPATH=. python bench/validator_cost.py
"""

from __future__ import annotations

import sys
import tempfile
import time

import logmq
from logmq.codec.batch import iter_batches
from logmq.codec.records import encode_batch
from logmq.codec.validate import ProducePolicy, validate_produce
from logmq.server.handlers import Handlers


def per_record(fn, n_records: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - t0) / rounds / n_records * 1e6)
    return best


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    now = int(time.time() * 1000)
    rows = []
    for codec in ("none", "gzip"):
        batch = encode_batch([(b"key-%d" % i, b"v" * 100, [("h", b"x")]) for i in range(n)],
                             timestamp=now, compression=codec)
        policy = ProducePolicy()
        crc = per_record(lambda batch=batch: iter_batches(batch, validate=True), n, 50)
        full = per_record(lambda batch=batch, policy=policy: validate_produce(batch, policy), n, 50)
        with logmq.open(tempfile.mkdtemp(prefix="vcost-"), fsync="never") as b:
            b.create_topic("t", partitions=1)
            h = Handlers(b, "127.0.0.1", 0)
            plog = b.partition_log("t", 0)
            old = per_record(lambda batch=batch, plog=plog: plog.append(batch, validate=True), n, 50)
            new = per_record(lambda batch=batch, h=h: h._produce_partition("t", 0, batch), n, 50)
        rows.append((codec, crc, full, old, new))
    print(f"{n} records of ~110 bytes per batch; µs per record (best of 5)")
    print(f"{'codec':6} {'crc-only':>9} {'validator':>10} {'append(crc)':>12} "
          f"{'produce path':>13} {'path ratio':>10}")
    for codec, crc, full, old, new in rows:
        print(f"{codec:6} {crc:9.3f} {full:10.3f} {old:12.3f} {new:13.3f} {new / old:10.2f}x")


if __name__ == "__main__":
    main()
