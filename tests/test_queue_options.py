"""Producer-side message options: delay, TTL, priority, dedup, conditional append,
idempotent sequence numbers, and backpressure on queue depth."""

from __future__ import annotations

import threading
import time

import pytest

import logmq
from logmq.broker.queues import options as O
from logmq.codec.batch import parse_header
from logmq.errors import ConcurrencyError, ConfigError, QueueFullError


def now_ms() -> int:
    return int(time.time() * 1000)


def test_delay_ms_and_deliver_at_hold_records_back(log):
    log.create_topic("jobs", partitions=2)
    p = log.producer()
    q = log.queue("jobs", group="w")
    t0 = time.monotonic()
    md = p.send("jobs", b"later", key=b"a", delay_ms=300).result()
    p.send("jobs", b"now", key=b"b").result()
    first = q.receive(10, timeout=1)
    assert [r.value for r in first] == [b"now"]  # the delayed one does not block the queue
    got = q.receive(1, timeout=5)  # woken by the due-time timer
    waited = time.monotonic() - t0
    assert got[0].value == b"later" and 0.3 <= waited < 0.3 + 0.5
    # plain consumers see it at its offset at once, with the due time in a header
    c = log.consumer("jobs", auto_offset_reset="earliest")
    seen = {r.value: r for r in c.poll(timeout=1, max_records=10)}
    due = int(dict(seen[b"later"].headers)[O.DELIVER_AT])
    assert md.timestamp + 300 <= due <= md.timestamp + 320
    # deliver_at: an absolute time
    at = now_ms() + 250
    p.send("jobs", b"at", deliver_at=at).result()
    assert q.receive(1, timeout=0) == []
    got = q.receive(1, timeout=5)
    assert got[0].value == b"at" and now_ms() >= at
    with pytest.raises(ConfigError):
        p.send("jobs", b"x", delay_ms=1, deliver_at=at)


def test_delayed_records_leave_the_window_and_survive_reopen(data_dir):
    with logmq.open(data_dir) as log:
        log.create_topic("jobs")
        p = log.producer()
        p.send_batch("jobs", [(None, b"d%d" % i) for i in range(10)])  # plain first
        for i in range(3000):
            p.send("jobs", b"delayed-%d" % i, delay_ms=3_600_000)
        soon = p.send("jobs", b"due-soon", delay_ms=400)
        p.send("jobs", b"plain").result()
        q = log.queue("jobs", group="w", max_inflight=100)
        got = q.receive(20, timeout=1)
        assert [r.value for r in got] == [b"d%d" % i for i in range(10)]
        q.ack_many(got)
        # delayed records moved to the due-time index, so the window moves past them
        got = q.receive(20, timeout=1)
        assert [r.value for r in got] == [b"plain"]
        q.ack_many(got)
        s = q.stats()
        assert s.scheduled == 3001 and s.depth == 3001
        assert all(span <= 100 for _, _, span in q._share.window_sizes())
        sent_ms = soon.result().timestamp
    with logmq.open(data_dir) as log:  # the due-time index is in LMDB
        q = log.queue("jobs", group="w", max_inflight=100)
        assert q.stats().scheduled == 3001
        got = q.receive(5, timeout=5)
        received_ms = now_ms()
        assert [r.value for r in got] == [b"due-soon"]
        due = int(got[0].header(O.DELIVER_AT))
        assert due - sent_ms >= 400 and received_ms >= due  # not before its time
        got[0].ack()


def test_expired_records_are_never_received(log):
    log.create_topic("jobs")
    p = log.producer()
    md = p.send("jobs", b"fresh", ttl_ms=60_000).result()
    past = [(O.EXPIRES_AT, b"%d" % (now_ms() - 1))]
    p.send("jobs", b"stale", headers=past).result()  # as if it had waited too long
    p.send("jobs", b"dies-while-delayed", delay_ms=200, ttl_ms=100).result()
    q = log.queue("jobs", group="w", dead_letter_expired=True)
    got = q.receive(10, timeout=1)
    assert [r.value for r in got] == [b"fresh"]
    assert int(got[0].header(O.EXPIRES_AT)) - md.timestamp in range(60_000, 60_020)
    got[0].ack()
    stop = threading.Event()
    receiver = threading.Thread(target=lambda: [q.receive(1, timeout=0.2)
                                                for _ in iter(stop.is_set, True)])
    receiver.start()  # a receiving member is what moves due and expired records along
    c = log.consumer("jobs.dlq", auto_offset_reset="earliest")
    dead: list = []
    while len(dead) < 2:
        batch = c.poll(timeout=5)
        assert batch
        dead.extend(batch)
    stop.set()
    receiver.join()
    assert sorted(r.value for r in dead) == [b"dies-while-delayed", b"stale"]
    assert all(dict(r.headers)[O.DLQ_REASON] == b"expired" for r in dead)
    s = q.stats()
    assert s.archived == 2 and s.depth == 0


def test_priority_order_and_aging(log):
    log.create_topic("jobs")
    p = log.producer()
    prios = [3, 0, 9, 5, 9, 1, 7, 0, 5, 2]
    for i, pr in enumerate(prios):
        p.send("jobs", b"%d" % i, priority=pr)
    p.flush()
    q = log.queue("jobs", group="strict")
    got = q.receive(len(prios), timeout=1)
    assert [r.priority for r in got] == sorted(prios, reverse=True)
    # equal priorities keep their order
    assert [int(r.value) for r in got if r.priority == 9] == [2, 4]
    with pytest.raises(ConfigError):
        p.send("jobs", b"x", priority=10)

    log.create_topic("aging")
    old = now_ms() - 60_000
    p.send("aging", b"old-low", priority=0, timestamp=old)
    p.send("aging", b"new-high", priority=9)
    p.flush()
    strict = log.queue("aging", group="strict")
    assert strict.receive(1, timeout=1)[0].value == b"new-high"
    fair = log.queue("aging", group="fair", priority_aging_ms=1000)
    assert fair.receive(1, timeout=1)[0].value == b"old-low"  # a minute outweighs 9 levels


def test_dedup_window(data_dir):
    with logmq.open(data_dir) as log:
        log.create_topic("pay", partitions=3)
        p = log.producer(dedup_window_ms=60_000)
        first = p.send("pay", b"charge 10", key=b"c1", msg_id="pay-1").result()
        again = p.send("pay", b"charge 10", key=b"c1", msg_id="pay-1").result()
        assert again == first
        ends = sum(log.end_offset(("pay", i)) for i in range(3))
        assert ends == 1
        # racing duplicates: one append, everyone gets its metadata
        results: list = []
        barrier = threading.Barrier(8)

        def send() -> None:
            barrier.wait()
            results.append(p.send("pay", b"charge 20", key=b"c2", msg_id="pay-2").result())

        threads = [threading.Thread(target=send) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(results)) == 1
        assert sum(log.end_offset(("pay", i)) for i in range(3)) == 2
        p.close()
    with logmq.open(data_dir) as log:  # the index is durable
        p = log.producer(dedup_window_ms=100)
        assert p.send("pay", b"charge 10", key=b"c1", msg_id="pay-1").result() == first
        md = p.send("pay", b"x", msg_id="short").result()
        expires = now_ms() + 100
        while now_ms() <= expires:  # let the window pass
            time.sleep(0.02)
        later = p.send("pay", b"x", msg_id="short").result()
        assert later.offset != md.offset or later.partition != md.partition
        p.close()


def test_conditional_appends_race_without_lost_updates(log):
    log.create_topic("account-7")
    writers, events_each = 6, 40
    appended: list[tuple[int, int, int]] = []
    conflicts = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(writers)

    def writer(w: int) -> None:
        p = log.producer()
        barrier.wait()
        done = 0
        while done < events_each:
            expected = log.end_offset(("account-7", 0))  # "read the stream"
            try:
                md = p.send("account-7", b"%d:%d" % (w, done), partition=0,
                            expected_offset=expected).result()
            except ConcurrencyError as e:
                assert e.expected == expected and e.actual > expected
                with lock:
                    conflicts[0] += 1
                continue
            assert md.offset == expected
            with lock:
                appended.append((md.offset, w, done))
            done += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = writers * events_each
    assert sorted(o for o, _, _ in appended) == list(range(total))
    c = log.consumer("account-7", auto_offset_reset="earliest")
    recs: list = []
    while len(recs) < total:
        recs.extend(c.poll(timeout=1))
    by_offset = {o: b"%d:%d" % (w, i) for o, w, i in appended}
    assert all(by_offset[r.offset] == r.value for r in recs)

    # The race, forced (the loop above may or may not collide, by scheduling): two writers
    # read the same end offset, then both append on it; exactly one wins.
    gate = threading.Barrier(2)
    results: list[object] = []

    def racer() -> None:
        p = log.producer()
        expected = log.end_offset(("account-7", 0))
        gate.wait()
        try:
            results.append(p.send("account-7", b"race", partition=0,
                                  expected_offset=expected).result().offset)
        except ConcurrencyError as e:
            results.append(e)

    racers = [threading.Thread(target=racer) for _ in range(2)]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    assert sorted(type(r).__name__ for r in results) == ["ConcurrencyError", "int"]
    assert [r for r in results if isinstance(r, int)] == [total]
    # the batch form is all or nothing
    p = log.producer()
    end = log.end_offset(("account-7", 0))
    with pytest.raises(ConcurrencyError):
        p.send_batch("account-7", [(None, b"a"), (None, b"b")], partition=0,
                     expected_offset=end - 1)
    assert log.end_offset(("account-7", 0)) == end
    (md,) = p.send_batch("account-7", [(None, b"a"), (None, b"b")], partition=0,
                         expected_offset=end)
    assert md.offset == end and log.end_offset(("account-7", 0)) == end + 2


def test_idempotent_producer_stamps_sequences_and_retries_are_not_stored_twice(log):
    log.create_topic("t", partitions=2)
    p = log.producer(idempotent=True, linger_ms=0)
    other = log.producer(idempotent=True)
    assert p.producer_id >= 0 and other.producer_id != p.producer_id
    for i in range(5):
        p.send("t", b"v%d" % i, partition=0).result()
    p.send_batch("t", [(None, b"b%d" % i) for i in range(3)], partition=0)
    data = log.read_batches(("t", 0), 0, 1 << 20)
    seqs = []
    pos = 0
    while pos < len(data):
        h = parse_header(data, pos)
        assert h.producer_id == p.producer_id and h.producer_epoch == 0
        seqs.append((h.base_sequence, h.last_offset_delta + 1))
        pos += h.size
    assert seqs == [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 3)]
    # a retry of an appended batch (same producer id and sequence) is acknowledged with its
    # original offset and not appended again
    last = parse_header(data, pos - (h.size))
    end = log.end_offset(("t", 0))
    assert log.append_batches(("t", 0), data[pos - h.size:]) == last.base_offset
    assert log.end_offset(("t", 0)) == end


def test_backpressure_blocks_then_raises_queue_full(log):
    log.create_topic("jobs", config={"max.queue.depth": 10})
    q = log.queue("jobs", group="w")
    p = log.producer(max_block_ms=300, linger_ms=0)
    for i in range(10):
        p.send("jobs", b"%d" % i).result()
    t0 = time.monotonic()
    with pytest.raises(QueueFullError):
        p.send("jobs", b"too many")
    assert 0.3 <= time.monotonic() - t0 < 1.5
    with pytest.raises(QueueFullError):
        p.send_batch("jobs", [(None, b"x")])
    # a producer blocked on a full queue goes on as soon as a worker acks
    p2 = log.producer(max_block_ms=10_000, linger_ms=0)
    sent = threading.Event()
    blocked = threading.Thread(target=lambda: (p2.send("jobs", b"waits").result(),
                                               sent.set()))
    blocked.start()
    assert not sent.wait(0.2)  # still blocked: nothing was acked
    recs = q.receive(3, timeout=1)
    q.ack_many(recs)
    assert sent.wait(5)
    blocked.join()
    assert q.stats().depth == 8
    # the limit follows the topic config
    log.alter_topic_config("jobs", {"max.queue.depth": None})
    p.send("jobs", b"no limit now").result()
