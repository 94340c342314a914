"""The peers and tallies of ``bench/queue_compare.py``: Redis Streams consumer groups
(XREADGROUP + XACK) on a redis-server it starts, and the acknowledged-message counters that
time a row across threads or processes. Kept apart so the comparison script stays readable."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any

from peers.base import ServerProc, free_port

SIZE = 100
KEYS = 1000
STALL_S = 60.0  # no acknowledgement for this long: the row fails instead of hanging
_SPAWN = mp.get_context("spawn")  # never fork a process that holds LMDB and threads

REDIS_DUR = {
    "everysec": "appendonly yes, appendfsync everysec (AOF written before the reply, "
                "fsync once a second)",
    "always": "appendonly yes, appendfsync always (AOF fsync before the replies of each "
              "event-loop iteration)",
}


# ---------------------------------------------------------------------------- tallies
class ThreadTally:
    """Acknowledged-message count shared by worker threads; records when the target is hit."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.end = 0.0
        self.done = threading.Event()
        self._lock = threading.Lock()
        self.on_done: list[Callable[[], None]] = []
        self.error: BaseException | None = None

    def add(self, n: int) -> None:
        with self._lock:
            self.count += n
            if self.count < self.target or self.done.is_set():
                return
            self.end = time.monotonic()
            self.done.set()
        for f in self.on_done:
            f()

    def is_done(self) -> bool:
        return self.done.is_set()


class ProcTally:
    """The same across processes (``CLOCK_MONOTONIC`` is system-wide on Linux)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self._count = _SPAWN.Value("q", 0)
        self._end = _SPAWN.Value("d", 0.0)

    def add(self, n: int) -> None:
        with self._count.get_lock():
            self._count.value += n
            if self._count.value >= self.target and self._end.value == 0.0:
                self._end.value = time.monotonic()

    def is_done(self) -> bool:
        return self._count.value >= self.target

    @property
    def count(self) -> int:
        return self._count.value

    @property
    def end(self) -> float:
        return self._end.value


def _wait_procs(procs: list[Any], tally: ProcTally) -> None:
    last, seen = time.monotonic(), -1
    while any(p.is_alive() for p in procs):
        for p in procs:
            p.join(0.2)
        if tally.count != seen:
            last, seen = time.monotonic(), tally.count
        elif time.monotonic() - last > STALL_S:
            for p in procs:
                p.terminate()
            raise RuntimeError(f"stalled at {seen} of {tally.target} acknowledged")
    bad = [p.exitcode for p in procs if p.exitcode]
    if bad:
        raise RuntimeError(f"worker process(es) failed with exit code(s) {bad}")


# ---------------------------------------------------------------------------- redis
class RedisSession:
    """A redis-server on a free loopback port, AOF in ``tmp``, one stream pre-filled."""

    def __init__(self, tmp: str, fsync: str, n: int) -> None:
        import redis

        self.port = free_port()
        d = os.path.join(tmp, "redis")
        os.makedirs(d)
        self.srv = ServerProc(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--dir", d, "--appendonly", "yes",
             "--appendfsync", fsync, "--save", "", "--protected-mode", "yes"],
            self.port, os.path.join(tmp, "redis.log"))
        try:
            self.r = redis.Redis(port=self.port)
            value = b"x" * SIZE
            keys = [b"key-%d" % i for i in range(KEYS)]
            pipe = self.r.pipeline(transaction=False)
            t = time.perf_counter()
            for i in range(n):
                pipe.xadd("jobs", {b"k": keys[i % KEYS], b"v": value})
                if i % 1000 == 999:
                    pipe.execute()
            pipe.execute()
            self.prefill_rate = n / (time.perf_counter() - t)
            self.r.xgroup_create("jobs", "g", id="0")
        except BaseException:
            self.srv.stop()
            raise

    def close(self) -> None:
        self.r.close()
        self.srv.stop()


def _redis_loop(port: int, consumer: str, batch: int, per_record: bool, tally: Any,
                barrier: Any = None) -> None:
    import redis

    r = redis.Redis(port=port)
    if barrier is not None:
        barrier.wait()
    last = time.monotonic()
    while not tally.is_done():
        resp = r.xreadgroup("g", consumer, {"jobs": ">"}, count=batch, block=100)
        entries = resp[0][1] if resp else []
        if not entries:
            if time.monotonic() - last > STALL_S:
                raise RuntimeError(f"no entries for {STALL_S:.0f} s")
            continue
        last = time.monotonic()
        ids = [e[0] for e in entries]
        if per_record:
            for i in ids:
                r.xack("jobs", "g", i)
        else:
            r.xack("jobs", "g", *ids)
        tally.add(len(ids))
    r.close()


def redis_run(tmp: str, n: int, workers: int, batch: int, per_record: bool,
              fsync: str) -> dict[str, Any]:
    """One consumer in this process, or ``workers`` consumer processes."""
    s = RedisSession(tmp, fsync, n)
    try:
        if workers == 1:
            tally: Any = ThreadTally(n)
            t0 = time.monotonic()
            _redis_loop(s.port, "c0", batch, per_record, tally)
        else:
            tally = ProcTally(n)
            barrier = _SPAWN.Barrier(workers + 1)
            procs = [_SPAWN.Process(target=_redis_loop, daemon=True,
                                    args=(s.port, f"c{i}", batch, per_record, tally, barrier))
                     for i in range(workers)]
            for p in procs:
                p.start()
            barrier.wait(120)
            t0 = time.monotonic()
            _wait_procs(procs, tally)
        pending = s.r.xpending("jobs", "g")["pending"]
        return {"acked": tally.count, "seconds": tally.end - t0,
                "prefill_rate": s.prefill_rate, "pending_after": pending}
    finally:
        s.close()
