"""Worker runners (threads and asyncio), circuit breaker, rate limit, graceful shutdown,
request-reply and subscription filters."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time

import pytest

import logmq
from logmq.broker.queues.worker import CircuitBreaker
from logmq.errors import KafkaTimeoutError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fill(log, topic: str, n: int, partitions: int = 1) -> None:
    log.create_topic(topic, partitions=partitions)
    log.producer().send_batch(topic, [(b"k%d" % i, b"%d" % i) for i in range(n)])


def test_worker_threads_process_everything_and_failures_are_retried(log):
    n = 1000
    fill(log, "jobs", n, partitions=4)
    done: dict[int, int] = {}
    attempts: dict[int, int] = {}
    cond = threading.Condition()

    def handler(rec) -> None:
        v = int(rec.value)
        with cond:
            attempts[v] = attempts.get(v, 0) + 1
        if v % 10 == 0 and rec.delivery_count == 1:
            raise RuntimeError(f"flaky {v}")  # nacked with backoff, redelivered
        with cond:
            done[v] = done.get(v, 0) + 1
            cond.notify_all()

    w = logmq.Worker(log, "jobs", handler, group="workers", concurrency=4,
                     backoff_base_ms=20, failure_threshold=1000)
    with w:
        with cond:
            assert cond.wait_for(lambda: len(done) == n, timeout=30)
    assert all(c == 1 for c in done.values())  # each handled successfully once
    assert all(attempts[v] == 2 for v in range(0, n, 10))
    assert w.failed == n // 10 and w.processed == n and not w.errors
    assert log.queue("jobs", group="workers").stats().depth == 0


def test_circuit_breaker_pauses_after_consecutive_failures(log):
    fill(log, "jobs", 20)
    calls: list[tuple[float, bool]] = []
    healthy = threading.Event()
    cond = threading.Condition()

    def handler(rec) -> None:
        ok = healthy.is_set()
        with cond:
            calls.append((time.monotonic(), ok))
            cond.notify_all()
        if not ok:
            raise ConnectionError("payment provider down")

    w = logmq.Worker(log, "jobs", handler, concurrency=1, prefetch=1, failure_threshold=3,
                     cooldown_s=0.4, backoff_base_ms=0, max_attempts=100)
    w.start()
    with cond:
        assert cond.wait_for(lambda: len(calls) >= 4, timeout=10)  # 3 failures + 1 trial
    healthy.set()
    with cond:
        assert cond.wait_for(lambda: sum(ok for _, ok in calls) >= 20, timeout=30)
    w.stop()
    times = [t for t, _ in calls]
    # failures 1..3 open the breaker; the next handler call is the half-open trial
    assert times[3] - times[2] >= 0.4 - 0.01
    assert w.breaker.times_opened >= 1 and w.breaker.is_closed
    b = CircuitBreaker(2, 10.0, clock=lambda: 0.0)
    assert not b.failure() and b.failure() and b.wait_time() == (10.0, False)


def test_graceful_shutdown_finishes_running_and_releases_the_rest(log):
    fill(log, "jobs", 10)
    started = threading.Event()
    finish = threading.Event()
    handled: list[int] = []

    def handler(rec) -> None:
        started.set()
        finish.wait()
        handled.append(int(rec.value))

    w = logmq.Worker(log, "jobs", handler, concurrency=1, prefetch=5).start()
    assert started.wait(10)
    stopper = threading.Thread(target=w.stop)
    stopper.start()
    assert w._stop.wait(10)  # stop() has begun...
    finish.set()  # ...and the running handler completes after it
    stopper.join()
    assert handled == [0]  # nothing new was started
    assert w.released == 4
    q = log.queue("jobs", group="workers")
    got = q.receive(100, timeout=1)
    assert [int(r.value) for r in got] == list(range(1, 10))
    # released records did not lose an attempt
    assert [r.delivery_count for r in got] == [1] * 9


def test_rate_limit(log):
    fill(log, "jobs", 30)
    stamps: list[float] = []
    cond = threading.Condition()

    def handler(rec) -> None:
        with cond:
            stamps.append(time.monotonic())
            cond.notify_all()

    w = logmq.Worker(log, "jobs", handler, concurrency=2, rate_limit=50, burst=1)
    with w:
        with cond:
            assert cond.wait_for(lambda: len(stamps) == 30, timeout=30)
    elapsed = stamps[-1] - stamps[0]
    assert 29 / 50 - 0.05 <= elapsed < 29 / 50 + 1.0


def test_async_worker(log):
    fill(log, "jobs", 200, partitions=2)

    async def main() -> tuple[int, int]:
        seen: set[int] = set()
        all_done = asyncio.Event()

        async def handler(rec) -> None:
            await asyncio.sleep(0)  # a real await point between handlers
            v = int(rec.value)
            if v % 50 == 0 and rec.delivery_count == 1:
                raise ValueError("first try fails")
            seen.add(v)
            if len(seen) == 200:
                all_done.set()

        w = logmq.AsyncWorker(log, "jobs", handler, concurrency=8, backoff_base_ms=10,
                              failure_threshold=100)
        async with w:
            await asyncio.wait_for(all_done.wait(), 30)
        return w.processed, w.failed

    processed, failed = asyncio.run(main())
    assert processed == 200 and failed == 4
    assert log.queue("jobs", group="workers").stats().depth == 0


def test_request_reply(log):
    log.create_topic("rpc", partitions=2)

    def serve(rec) -> None:
        rec.reply(rec.value.upper(), headers=[("served-by", b"w1")])

    with logmq.Worker(log, "rpc", serve, concurrency=2):
        reply = log.request("rpc", b"hello", timeout=10)
        assert reply.value == b"HELLO" and dict(reply.headers)["served-by"] == b"w1"
        results: dict[int, bytes] = {}

        def client(i: int) -> None:
            results[i] = log.request("rpc", b"msg-%d" % i, key=b"%d" % i, timeout=10).value

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == {i: b"MSG-%d" % i for i in range(8)}
    log.create_topic("nobody-listens")
    t0 = time.monotonic()
    with pytest.raises(KafkaTimeoutError):
        log.request("nobody-listens", b"?", timeout=0.3)
    assert time.monotonic() - t0 >= 0.3


def test_filters_on_queues_and_consumers(log):
    log.create_topic("events", partitions=2)
    p = log.producer()
    for i in range(20):
        kind = b"order" if i % 2 == 0 else b"refund"
        p.send("events", b"%d" % i, key=b"eu-%d" % i if i < 10 else b"us-%d" % i,
               headers=[("type", kind)])
    p.flush()
    orders = log.queue("events", group="orders", filter={"headers": {"type": "order"}})
    got = orders.receive(100, timeout=1)
    assert sorted(int(r.value) for r in got) == list(range(0, 20, 2))
    orders.ack_many(got)
    # filtered-out records are done for that group: another member gets nothing
    other = log.queue("events", group="orders")
    assert other.receive(100, timeout=0.2) == []
    s = other.stats()
    assert s.depth == 0 and s.archived == 10
    # ...but not for other groups
    everything = log.queue("events", group="audit")
    assert len(everything.receive(100, timeout=1)) == 20
    # predicate and key filters on plain consumers
    c = log.consumer("events", auto_offset_reset="earliest",
                     filter=lambda r: int(r.value) % 5 == 0)
    assert sorted(int(r.value) for r in c.poll(timeout=1)) == [0, 5, 10, 15]
    c2 = log.consumer("events", auto_offset_reset="earliest",
                      filter={"key_prefix": b"eu-", "headers": {"type": [b"refund"]}})
    assert sorted(int(r.value) for r in c2.poll(timeout=1)) == [1, 3, 5, 7, 9]


def test_order_pipeline_example(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "order_pipeline.py"),
                          "--orders", "200", "--data", str(tmp_path / "data")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pipeline OK" in out.stdout
