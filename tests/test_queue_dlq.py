"""Retries with backoff, dead letters after max attempts or reject, replay from the DLQ."""

from __future__ import annotations

import subprocess
import sys
import time

import logmq
from logmq.broker.queues import options as O


def dlq_records(log, topic: str, n: int) -> list:
    c = log.consumer(topic, auto_offset_reset="earliest")
    out: list = []
    while len(out) < n:
        got = c.poll(timeout=5)
        assert got, f"expected {n} dead letters, found {len(out)}"
        out.extend(got)
    c.close()
    return out


def test_max_attempts_dead_letters_with_headers(log):
    log.create_topic("orders", partitions=2)
    sent = log.producer().send("orders", b"poison", key=b"k", headers=[("trace", b"t1")],
                               partition=1).result()
    q = log.queue("orders", group="billing", max_attempts=3, backoff_base_ms=0)
    t0 = int(time.time() * 1000)
    for attempt in range(1, 4):
        recs = q.receive(1, timeout=2)
        assert len(recs) == 1 and recs[0].delivery_count == attempt
        recs[0].nack(error=f"boom {attempt}")
    assert q.receive(1, timeout=0.2) == []  # archived: never delivered again
    (dead,) = dlq_records(log, "orders.dlq", 1)
    h = dict(dead.headers)
    assert dead.key == b"k" and dead.value == b"poison" and dead.partition == 1
    assert h["trace"] == b"t1"  # the original headers are kept
    assert h[O.DLQ_TOPIC] == b"orders"
    assert int(h[O.DLQ_PARTITION]) == 1 and int(h[O.DLQ_OFFSET]) == sent.offset
    assert h[O.DLQ_GROUP] == b"billing"
    assert int(h[O.DLQ_ATTEMPTS]) == 3
    assert h[O.DLQ_REASON] == b"max-attempts" and h[O.DLQ_ERROR] == b"boom 3"
    assert int(h[O.DLQ_PRODUCED_AT]) == sent.timestamp
    assert t0 <= int(h[O.DLQ_FIRST_DELIVERY_AT]) <= int(h[O.DLQ_DEAD_AT])
    s = q.stats()
    assert s.dlq_size == 1 and s.dead_lettered == 1 and s.depth == 0


def test_reject_goes_straight_to_dead_letters_and_lock_expiry_counts(log):
    log.create_topic("jobs")
    p = log.producer()
    p.send("jobs", b"bad").result()
    p.send("jobs", b"slow").result()
    q = log.queue("jobs", group="w", max_attempts=2, backoff_base_ms=0, lock_ms=100,
                  dead_letter_topic="jobs-dead")
    bad, slow = q.receive(2, timeout=1)
    bad.reject("schema mismatch")
    # `slow` is never settled: its lock expires twice and it dies of max attempts
    again = q.receive(1, timeout=5)
    assert again[0].value == b"slow" and again[0].delivery_count == 2
    assert q.receive(1, timeout=0.5) == []  # ...and after the second expiry it is gone
    dead = dlq_records(log, "jobs-dead", 2)
    reasons = {r.value: dict(r.headers) for r in dead}
    assert reasons[b"bad"][O.DLQ_REASON] == b"rejected"
    assert reasons[b"bad"][O.DLQ_ERROR] == b"schema mismatch"
    assert reasons[b"slow"][O.DLQ_REASON] == b"max-attempts"
    assert reasons[b"slow"][O.DLQ_ERROR] == b"lock expired"


def test_retries_back_off_exponentially_with_jitter(log):
    log.create_topic("jobs")
    log.producer().send("jobs", b"flaky").result()
    base = 100
    q = log.queue("jobs", group="w", backoff_base_ms=base, backoff_max_ms=300,
                  backoff_jitter=0.5, max_attempts=10)
    rec = q.receive(1, timeout=1)[0]
    waits = []
    for attempt in range(1, 5):
        t0 = time.monotonic()
        rec.nack()
        rec = q.receive(1, timeout=5)[0]
        waits.append((time.monotonic() - t0) * 1000)
        assert rec.delivery_count == attempt + 1
    for attempt, waited in enumerate(waits, start=1):
        full = min(300, base * 2 ** (attempt - 1))
        assert full * 0.5 - 2 <= waited < full + 250, (attempt, waited, waits)
    rec.ack()


def test_explicit_nack_delay_is_respected(log):
    log.create_topic("jobs")
    log.producer().send("jobs", b"x").result()
    q = log.queue("jobs", group="w")
    rec = q.receive(1, timeout=1)[0]
    t0 = time.monotonic()
    rec.nack(delay=0.3)
    assert q.receive(1, timeout=0) == []
    again = q.receive(1, timeout=5)
    waited = time.monotonic() - t0
    assert again and 0.3 <= waited < 0.3 + 0.5


def test_dead_letters_replay_into_the_source_with_the_cli(data_dir):
    with logmq.open(data_dir) as log:
        log.create_topic("orders", partitions=2)
        log.producer().send_batch("orders", [(b"k%d" % i, b"order-%d" % i) for i in range(6)])
        q = log.queue("orders", group="w", max_attempts=1)
        recs = q.receive(10, timeout=1)
        assert len(recs) == 6
        for r in recs:
            if int(r.value.split(b"-")[1]) % 2:
                r.reject("downstream was down")
            else:
                r.ack()
        assert q.stats().dlq_size == 3
    # the DLQ is an ordinary topic: the replay command copies it back into the source
    subprocess.run([sys.executable, "-m", "logmq.cli", "replay", "orders.dlq", "--to", "orders",
                    "--data", data_dir], check=True, capture_output=True)
    with logmq.open(data_dir) as log:
        q = log.queue("orders", group="w", max_attempts=1)
        again = q.receive(10, timeout=1)
        assert sorted(r.value for r in again) == [b"order-1", b"order-3", b"order-5"]
        assert all(r.header(O.DLQ_REASON) == b"rejected" for r in again)
        q.ack_many(again)
        assert q.stats().depth == 0
