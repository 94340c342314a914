"""logmq embedded: the library in the benchmark's own process, no server, no socket.

Two peers, because they are the two ways an application writes: ``send_batch`` (one call,
one RecordBatch per partition: bulk loads, batch jobs) and ``send`` per record (futures,
batched by the accumulator on size and linger: the Kafka-client way). Both read with
``poll``. fsync="interval" (every 1 s) is the comparable setting to Redis' appendfsync
everysec and SQLite WAL synchronous=NORMAL: acknowledged once written to the file (survives a
process crash), fsynced within a second.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from peers.base import Pacer, Peer, keyed, latency_stats, stamp, unstamp

FSYNC = os.environ.get("LOGMQ_BENCH_FSYNC", "interval")
_DUR = {"interval": 'fsync="interval" (write(2) before ack, fsync every 1 s)',
        "always": 'fsync="always" (fdatasync before ack)',
        "never": 'fsync="never" (write(2) before ack, fsync on close)'}


class _Embedded(Peer):
    durability = _DUR.get(FSYNC, FSYNC)
    partitions = 8

    def check(self) -> None:
        import logmq  # noqa: F401  - the project itself: never skipped

    def open(self, tmp: str) -> None:
        import logmq

        self.log = logmq.open(os.path.join(tmp, "lq"), fsync=FSYNC, cleaner=False)
        self.log.create_topic("t", partitions=self.partitions)

    def close(self) -> None:
        log = getattr(self, "log", None)
        if log is not None:
            log.close()
            self.log = None

    def _consume(self, n: int, max_poll: int) -> dict[str, Any]:
        c = self.log.consumer("t", auto_offset_reset="earliest", max_poll_records=max_poll)
        got = 0
        t = time.perf_counter()
        while got < n:
            batch = c.poll(timeout=5)
            if not batch:
                raise RuntimeError(f"logmq consumer stalled at {got} of {n}")
            got += len(batch)
        secs = time.perf_counter() - t
        c.close(commit=False)
        return {"seconds": secs}

    def latency(self, rate: int, seconds: float, size: int) -> dict[str, Any]:
        """Per-record ``send`` (linger 1 ms) in this thread, ``poll`` in another.

        Same process, so the two threads share the GIL: that is what an embedded
        producer+consumer pays.
        """
        self.log.create_topic("lat", partitions=self.partitions)
        pacer = Pacer(rate, seconds)
        lat: list[int] = []
        c = self.log.consumer("lat", auto_offset_reset="earliest", max_poll_records=5000)
        stop = threading.Event()

        def reader() -> None:
            mono = time.monotonic_ns
            while len(lat) < pacer.total and not stop.is_set():
                recs = c.poll(timeout=0.2)
                now = mono()
                lat.extend(now - unstamp(r.value) for r in recs)

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        p = self.log.producer(linger_ms=1)
        keys = [b"key-%d" % i for i in range(1000)]
        pad = b"x" * (size - 8)
        send = p.send
        while not pacer.done():
            due = pacer.due()
            for i in range(pacer.sent, due):
                send("lat", stamp(pacer.scheduled(i), 8) + pad, key=keys[i % 1000])
            pacer.sent = due
            time.sleep(pacer.pause())
        p.flush()
        th.join(timeout=seconds + 30)
        stop.set()
        th.join()
        p.close()
        c.close(commit=False)
        return latency_stats(lat, pacer.total, seconds)


class EmbeddedBatch(_Embedded):
    """``send_batch`` in chunks of ~10 MB, then ``poll`` 50,000 records at a time.

    Timed until ``send_batch`` returns (acknowledged: written), like every peer is timed to
    its acknowledgement; the 1 s fsync runs on the broker's flusher thread meanwhile, as
    Redis' everysec fsync runs on its background thread.
    """

    name = "logmq embedded (send_batch)"
    has_latency = False  # latency is a per-record-send measurement: see EmbeddedSend

    def produce(self, n: int, size: int) -> dict[str, Any]:
        recs = keyed(n, size)
        chunk = max(1, min(100_000, 10_000_000 // size))
        p = self.log.producer()
        t = time.perf_counter()
        for i in range(0, n, chunk):
            p.send_batch("t", recs[i : i + chunk])
        secs = time.perf_counter() - t
        p.close()
        if n * size > 500_000_000:  # after 1 GB the page cache's writeback dominates: skip
            return {"seconds": secs}
        return {"seconds": secs, "alt": {"append_batches, pre-encoded": self._raw(n, size)}}

    def _raw(self, n: int, size: int) -> float:
        """The storage path alone: the same records already encoded (1,000 per batch),
        appended to one partition with CRC validation and offset assignment, as the server
        appends a producer's batches. Compared with the plain file, this is logmq's own cost;
        ``send_batch`` adds encoding in Python on top.
        """
        from logmq.codec.records import encode_batch

        self.log.create_topic("raw", partitions=1, config={"max.message.bytes": 64 << 20})
        per = 1000
        one = encode_batch(keyed(per, size), timestamp=1)  # keys cycle: every batch is this
        batches = [one] * (n // per)
        tp = ("raw", 0)
        append = self.log.append_batches
        t = time.perf_counter()
        for b in batches:
            append(tp, b)
        return (time.perf_counter() - t) * n / max(1, len(batches) * per)

    def consume(self, n: int, size: int) -> dict[str, Any]:
        return self._consume(n, 50_000)


class EmbeddedSend(_Embedded):
    """``send`` per record with futures (default 64 KiB batches, linger 5 ms), ``poll`` 500."""

    name = "logmq embedded (send per record)"

    def produce(self, n: int, size: int) -> dict[str, Any]:
        recs = keyed(n, size)
        p = self.log.producer()
        send = p.send
        t = time.perf_counter()
        for k, v in recs:
            send("t", v, key=k)
        p.flush()
        secs = time.perf_counter() - t
        p.close()
        return {"seconds": secs}

    def consume(self, n: int, size: int) -> dict[str, Any]:
        return self._consume(n, 500)
