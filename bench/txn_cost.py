#!/usr/bin/env python3
"""What a transaction costs, as ratios measured in one run (embedded, one partition).

* produce: the same records sent by a plain producer (one flush per group) and by a
  transactional producer (one transaction per group, every other one aborted). A transaction
  is three LMDB commits (AddPartitions, PrepareCommit/Abort, Complete), each fsynced, plus a
  marker, so with small transactions the ratio is high; it falls as transactions grow.
* read: read_committed over that log against read_uncommitted (aborted batches are skipped
  without being decoded).

    python bench/txn_cost.py [--transactions N] [--records-per-txn M] [--data DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from typing import Any

import logmq


def _drain(log: Any, topic: str, isolation: str) -> tuple[float, int]:
    c = log.consumer(topic, auto_offset_reset="earliest", isolation_level=isolation,
                     max_poll_records=5000)
    t0 = time.perf_counter()
    n = 0
    while True:
        got = c.poll(0)
        if not got:
            return time.perf_counter() - t0, n
        n += len(got)


def run(data: str, transactions: int, per: int) -> dict[str, float]:
    value = b"x" * 100
    with logmq.open(data, fsync="never") as log:
        log.create_topic("plain", partitions=1)
        log.create_topic("tx", partitions=1)
        p = log.producer()
        t0 = time.perf_counter()
        for _ in range(transactions):
            for _ in range(per):
                p.send("plain", value, partition=0)
            p.flush()
        plain = time.perf_counter() - t0
        tp = log.producer(transactional_id="bench")
        t0 = time.perf_counter()
        for i in range(transactions):
            tp.begin_transaction()
            for _ in range(per):
                tp.send("tx", value, partition=0)
            (tp.commit_transaction if i % 2 == 0 else tp.abort_transaction)()
        txn = time.perf_counter() - t0
        ru, _ = _drain(log, "tx", "read_uncommitted")
        rc, _ = _drain(log, "tx", "read_committed")
    return {"produce_plain_s": plain, "produce_txn_s": txn, "produce_ratio": txn / plain,
            "txn_ms": 1000 * txn / transactions, "read_uncommitted_s": ru,
            "read_committed_s": rc, "read_ratio": rc / ru}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--transactions", type=int, default=200)
    ap.add_argument("--records-per-txn", type=int, default=50)
    ap.add_argument("--data", default=None)
    ns = ap.parse_args()
    data = ns.data or tempfile.mkdtemp(prefix="txn-bench-")
    try:
        r = run(data + "/d", ns.transactions, ns.records_per_txn)
    finally:
        if ns.data is None:
            shutil.rmtree(data, ignore_errors=True)
    for k, v in r.items():
        print(f"{k:20s} {v:10.3f}")


if __name__ == "__main__":
    main()
