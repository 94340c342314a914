"""A work queue with retries and a dead-letter queue (share groups).

Jobs go into a topic; workers in share group "workers" receive them one by one under a lock.
A failing job is nacked and comes back after an exponential backoff; after ``max_attempts``
deliveries it is moved to ``jobs.dlq`` with headers saying why, where an operator can look at
it (and ``logmq replay`` can put it back once the bug is fixed). Every ack is durable when it
returns: a crash of a worker redelivers what it had not acked, never what it had.

    python examples/work_queue.py
"""

from __future__ import annotations

import tempfile
import threading
import time

import logmq


def handle(job: bytes) -> None:
    """The job handler: 'flaky' jobs fail twice then work, 'poison' ones always fail."""
    name = job.decode()
    if name.startswith("poison"):
        raise ValueError(f"cannot parse {name}")
    if name.startswith("flaky"):
        attempts = FLAKY.setdefault(name, 0) + 1
        FLAKY[name] = attempts
        if attempts < 3:
            raise TimeoutError(f"{name}: upstream timed out (attempt {attempts})")


FLAKY: dict[str, int] = {}


def worker(log: logmq.Broker, done: list[str], stop: threading.Event) -> None:
    q = log.queue("jobs", group="workers", max_attempts=3, backoff_base_ms=20,
                  backoff_max_ms=100, lock_ms=5_000)
    while not stop.is_set():
        for rec in q.receive(max_records=10, timeout=0.2):
            try:
                handle(rec.value)
            except Exception as e:
                rec.nack(error=f"{type(e).__name__}: {e}")  # retried after a backoff
            else:
                rec.ack()
                done.append(rec.value.decode())
    q.close()


def main() -> None:
    with logmq.open(tempfile.mkdtemp(prefix="queue-")) as log:
        log.create_topic("jobs", partitions=2)
        jobs = [f"resize-{i}" for i in range(20)] + ["flaky-1", "flaky-2", "poison-1"]
        with log.producer() as p:
            for j in jobs:
                p.send("jobs", j.encode())
        done: list[str] = []
        stop = threading.Event()
        threads = [threading.Thread(target=worker, args=(log, done, stop)) for _ in range(3)]
        for t in threads:
            t.start()
        dlq = log.queue("jobs.dlq", group="operators")
        dead = []
        deadline = time.monotonic() + 30
        while (len(done) < len(jobs) - 1 or not dead) and time.monotonic() < deadline:
            dead.extend(dlq.receive(max_records=10, timeout=0.2))
        stop.set()
        for t in threads:
            t.join()
        print(f"done: {len(done)} jobs ({', '.join(sorted(j for j in done if 'flaky' in j))} "
              f"after retries)")
        for rec in dead:
            h = {k: (v or b"").decode() for k, v in rec.headers}
            print(f"dead letter: {rec.value.decode()} ({h['logmq.dlq.reason']} after "
                  f"{h['logmq.dlq.attempts']} attempts), last error {h['logmq.dlq.error']!r}")
            rec.ack()
        dlq.close()
        assert sorted(done) == sorted(j for j in jobs if not j.startswith("poison"))
        assert [r.value for r in dead] == [b"poison-1"]


if __name__ == "__main__":
    main()
