"""persist-queue (PyPI): a SQLite-backed FIFO queue, the "just use SQLite" choice.

``SQLiteQueue(auto_commit=False)``: ``get`` moves a cursor and ``task_done`` (every 1,000
gets) deletes what was read, in one transaction. ``put`` commits every insert whatever
``auto_commit`` says (the library wraps each insert in ``with connection:``), so a put is one
SQLite transaction.

Durability at the comparable setting: the library opens SQLite in WAL mode; with
``synchronous=NORMAL`` a committed put is in the WAL file (survives a process crash) and the
WAL is fsynced at checkpoints, which is logmq's fsync="interval" class. The library's default
(synchronous=FULL) fsyncs every put: about 4,000 puts/s here, the fsync rate of the disk
(``LOGMQ_BENCH_PQ_SYNC=FULL`` measures it).

Values are stored as given (the pickle serializer is swapped for identity bytes), so the
numbers are SQLite's and the library's, not pickle's. The key has no place in a queue; the
1,000 keys of the workload are dropped.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from peers.base import Pacer, Peer, Skip, latency_stats, stamp, unstamp

SYNC = os.environ.get("LOGMQ_BENCH_PQ_SYNC", "NORMAL")


class _Raw:
    """persist-queue serializer interface (dumps/loads), storing bytes unchanged."""

    @staticmethod
    def dumps(value: bytes) -> bytes:
        return value

    @staticmethod
    def loads(value: bytes) -> bytes:
        return value


class PersistQueue(Peer):
    name = "persist-queue (SQLite)"
    durability = (f"SQLite WAL, synchronous={SYNC} "
                  + ("(commit per put in the WAL, fsync at checkpoint)" if SYNC == "NORMAL"
                     else "(fsync per put)" if SYNC == "FULL" else ""))
    partitions = 1

    def check(self) -> None:
        try:
            import persistqueue  # noqa: F401
        except ImportError as e:
            raise Skip("persist-queue not installed (pip install persist-queue)") from e

    def open(self, tmp: str) -> None:
        self.dir = os.path.join(tmp, "pq")
        self.q = self._queue("q", multithreading=False)

    def _queue(self, name: str, multithreading: bool) -> Any:
        import persistqueue

        q = persistqueue.SQLiteQueue(self.dir, name=name, auto_commit=False,
                                     multithreading=multithreading, serializer=_Raw)
        for conn in {id(q._putter): q._putter, id(q._getter): q._getter}.values():
            conn.execute(f"PRAGMA synchronous={SYNC}")
        return q

    def close(self) -> None:
        q = getattr(self, "q", None)
        if q is not None:
            q.close()
            self.q = None

    def produce(self, n: int, size: int) -> dict[str, Any]:
        value = b"x" * size
        put = self.q.put
        t = time.perf_counter()
        for _ in range(n):
            put(value)
        self.q.task_done()
        return {"seconds": time.perf_counter() - t}

    def consume(self, n: int, size: int) -> dict[str, Any]:
        q = self.q
        get = q.get
        t = time.perf_counter()
        for i in range(n):
            get(block=False)
            if i % 1000 == 999:
                q.task_done()
        q.task_done()
        return {"seconds": time.perf_counter() - t}

    def latency(self, rate: int, seconds: float, size: int) -> dict[str, Any]:
        """put from this thread, get (blocking, woken by put's event) in another."""
        import persistqueue

        q = self._queue("lat", multithreading=True)
        pacer = Pacer(rate, seconds)
        lat: list[int] = []
        deadline = time.monotonic() + seconds + 30

        def reader() -> None:
            mono = time.monotonic_ns
            while len(lat) < pacer.total and time.monotonic() < deadline:
                try:
                    v = q.get(timeout=0.1)
                except persistqueue.Empty:
                    continue
                lat.append(mono() - unstamp(v))
                if len(lat) % 1000 == 0:
                    q.task_done()

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        pad = b"x" * (size - 8)
        while not pacer.done():
            due = pacer.due()
            for i in range(pacer.sent, due):
                q.put(stamp(pacer.scheduled(i), 8) + pad)
            pacer.sent = due
            time.sleep(pacer.pause())
        th.join(timeout=seconds + 30)
        q.close()
        return latency_stats(lat, pacer.total, seconds)
