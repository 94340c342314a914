"""The physical reference: the same bytes written to and read from one plain file.

The bytes are the workload encoded as logmq stores them (RecordBatch v2, 1,000 records per
batch), written with one ``write(2)`` per batch (the write pattern of the log) to the page
cache, and read back in 1 MiB reads. No system that stores these records in a file can beat
this; logmq's goal is a produce rate of at least a quarter of it. The same session also
measures the cost of durability itself: the whole file written *and* fdatasynced, and one
fdatasync of a 4 KiB append (what fsync="always" pays per acknowledged batch).
"""

from __future__ import annotations

import os
import time
from typing import Any

from peers.base import Peer, keyed

PER_BATCH = 1000


class PlainFile(Peer):
    name = "plain file (reference)"
    durability = "write(2) to the page cache; alt: + one fdatasync of the whole file"
    partitions = 1
    has_latency = False

    def open(self, tmp: str) -> None:
        self.path = os.path.join(tmp, "plain")
        self.tmp = tmp

    def _batches(self, n: int, size: int) -> list[bytes]:
        from logmq.codec.records import encode_batch

        # With keys cycling through 1,000, every full batch has the same records: encode one.
        one = encode_batch(keyed(PER_BATCH, size), timestamp=1)
        out = [one] * (n // PER_BATCH)
        if n % PER_BATCH:
            out.append(encode_batch(keyed(n % PER_BATCH, size), timestamp=1))
        return out

    def produce(self, n: int, size: int) -> dict[str, Any]:
        batches = self._batches(n, size)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        write = os.write
        t = time.perf_counter()
        for b in batches:
            write(fd, b)
        secs = time.perf_counter() - t
        os.close(fd)
        synced = self.path + ".synced"
        fd = os.open(synced, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        t = time.perf_counter()
        for b in batches:
            write(fd, b)
        os.fdatasync(fd)
        with_sync = time.perf_counter() - t
        os.close(fd)
        os.unlink(synced)
        return {"seconds": secs, "alt": {"write + fdatasync": with_sync},
                "fdatasync_4k_ms": fdatasync_cost(os.path.join(self.tmp, "fs")) * 1000,
                "stored_bytes": sum(map(len, batches))}

    def consume(self, n: int, size: int) -> dict[str, Any]:
        fd = os.open(self.path, os.O_RDONLY)
        read = os.read
        t = time.perf_counter()
        while read(fd, 1 << 20):
            pass
        secs = time.perf_counter() - t
        os.close(fd)
        return {"seconds": secs}


def fdatasync_cost(path: str, rounds: int = 200) -> float:
    """Seconds per (4 KiB append + fdatasync), the floor of a synchronous durable write."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    block = b"x" * 4096
    try:
        t = time.perf_counter()
        for _ in range(rounds):
            os.write(fd, block)
            os.fdatasync(fd)
        return (time.perf_counter() - t) / rounds
    finally:
        os.close(fd)
        os.unlink(path)
