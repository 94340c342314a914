"""Redis 7 Streams: ``redis-server`` (Debian) with appendonly yes, appendfsync everysec.

One stream (Redis has no partitions; XADD to 8 streams changes nothing on one core).
Produce is XADD pipelined 1,000 per round trip, fields ``k`` (key) and ``v`` (value); consume
is XREAD 1,000 entries per call from the start, and separately XREADGROUP (2,000 per call) +
XACK (the queue-like way, which acknowledges each entry) from a new group on the same stream.
Those counts are the fastest measured here: XREAD COUNT 10,000 reads about 40% slower than
COUNT 1,000 (268k vs 449k entries/s on a quiet machine), XREADGROUP peaks near 2,000.

redis-py parses replies with hiredis when it is installed (``pip install hiredis``); without
it, consume rates drop by more than half and the comparison would be about redis-py.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from typing import Any

from peers.base import (
    Pacer,
    Peer,
    ServerProc,
    Skip,
    free_port,
    keyed,
    latency_stats,
    stamp,
    unstamp,
)

XREAD_COUNT = 1000
GROUP_COUNT = 2000


class RedisStreams(Peer):
    name = "Redis Streams"
    durability = "appendonly yes, appendfsync everysec (written before reply, fsync every 1 s)"
    partitions = 1

    def check(self) -> None:
        if shutil.which("redis-server") is None:
            raise Skip("redis-server not installed (apt-get install redis-server)")
        try:
            import redis  # noqa: F401
        except ImportError as e:
            raise Skip("redis-py not installed (pip install redis hiredis)") from e

    def open(self, tmp: str) -> None:
        import redis

        self.srv: ServerProc | None = None
        port = free_port()
        d = os.path.join(tmp, "redis")
        os.makedirs(d)
        self.srv = ServerProc(
            [shutil.which("redis-server") or "redis-server", "--port", str(port),
             "--bind", "127.0.0.1", "--dir", d, "--appendonly", "yes",
             "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes"],
            port, os.path.join(tmp, "redis.log"))
        self.port = port
        self.r = redis.Redis(port=port)

    def close(self) -> None:
        if getattr(self, "srv", None) is not None:
            self.r.close()
            self.srv.stop()
            self.srv = None

    def server_pid(self) -> int | None:
        return self.srv.pid if self.srv is not None else None

    def produce(self, n: int, size: int) -> dict[str, Any]:
        recs = keyed(n, size)
        t = time.perf_counter()
        pipe = self.r.pipeline(transaction=False)
        xadd = pipe.xadd
        for i, (k, v) in enumerate(recs):
            xadd("s", {b"k": k, b"v": v})
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
        return {"seconds": time.perf_counter() - t}

    def consume(self, n: int, size: int) -> dict[str, Any]:
        r = self.r
        got = 0
        last = b"0-0"
        t = time.perf_counter()
        while got < n:
            entries = r.xread({"s": last}, count=XREAD_COUNT)[0][1]
            got += len(entries)
            last = entries[-1][0]
        plain = time.perf_counter() - t
        r.xgroup_create("s", "g", id="0")
        got = 0
        t = time.perf_counter()
        while got < n:
            entries = r.xreadgroup("g", "c", {"s": ">"}, count=GROUP_COUNT)[0][1]
            r.xack("s", "g", *[e[0] for e in entries])
            got += len(entries)
        return {"seconds": plain, "alt": {"XREADGROUP+XACK": time.perf_counter() - t}}

    def latency(self, rate: int, seconds: float, size: int) -> dict[str, Any]:
        """Pipelined XADD of whatever is due each tick; a thread blocks in XREAD (100 ms)."""
        import redis

        pacer = Pacer(rate, seconds)
        lat: list[int] = []
        stop = threading.Event()
        reader_conn = redis.Redis(port=self.port)

        def reader() -> None:
            mono = time.monotonic_ns
            last = b"0-0"
            while len(lat) < pacer.total and not stop.is_set():
                resp = reader_conn.xread({"lat": last}, count=10_000, block=100)
                if not resp:
                    continue
                entries = resp[0][1]
                now = mono()
                lat.extend(now - unstamp(f[b"v"]) for _, f in entries)
                last = entries[-1][0]

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        keys = [b"key-%d" % i for i in range(1000)]
        pad = b"x" * (size - 8)
        pipe = self.r.pipeline(transaction=False)
        while not pacer.done():
            due = pacer.due()
            for i in range(pacer.sent, due):
                pipe.xadd("lat", {b"k": keys[i % 1000], b"v": stamp(pacer.scheduled(i), 8) + pad})
            if due > pacer.sent:
                pipe.execute()
            pacer.sent = due
            time.sleep(pacer.pause())
        th.join(timeout=seconds + 30)
        stop.set()
        th.join()
        reader_conn.close()
        return latency_stats(lat, pacer.total, seconds)
