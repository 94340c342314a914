"""Producer.send's fast path (plain bytes records) against the general path's promises.

The fast path caches per-topic facts (partition count, max.message.bytes, key -> partition);
these tests change each fact under it and check that sends still follow the current one.
"""

from __future__ import annotations

import os
import threading

import pytest

from logmq.broker.partitioner import key_partition
from logmq.errors import BrokerClosedError, RecordTooLargeError


def _read_all(log, topic):
    """Every record of ``topic``, as {partition: records in offset order}."""
    c = log.consumer(topic, auto_offset_reset="earliest")
    out: dict[int, list] = {p: [] for p in range(log.partitions_for(topic))}
    while True:
        got = c.poll(timeout=0.3)
        if not got:
            break
        for r in got:
            out[r.partition].append(r)
    c.close()
    return out


def test_keyed_sends_follow_partition_count_changes(log):
    log.create_topic("t", partitions=3)
    p = log.producer(linger_ms=60_000)  # batches stay open: the fast path takes the sends
    keys = [b"k%d" % i for i in range(50)]
    futs = [p.send("t", b"v", key=k) for k in keys * 2]
    log.create_partitions("t", 7)  # while batches are open
    futs2 = [p.send("t", b"v", key=k) for k in keys * 2]
    p.flush()
    metas = [f.result(5) for f in futs]
    assert [m.partition for m in metas] == [key_partition(k, 3) for k in keys * 2]
    metas = [f.result(5) for f in futs2]
    assert [m.partition for m in metas] == [key_partition(k, 7) for k in keys * 2]
    assert any(m.partition >= 3 for m in metas)
    p.close()


def test_altered_max_message_bytes_applies_to_next_send(log):
    log.create_topic("t", partitions=1)
    p = log.producer(linger_ms=60_000)
    first = p.send("t", b"x" * 100, key=b"k")  # a batch is open
    p.send("t", b"x" * 600, key=b"k")  # fits the topic's default limit
    log.alter_topic_config("t", {"max.message.bytes": 500})
    with pytest.raises(RecordTooLargeError):
        p.send("t", b"x" * 600, key=b"k")
    p.flush()
    assert first.exception(5) is not None  # the open batch now exceeds the limit as a whole
    p.send("t", b"x" * 100, key=b"k")
    p.flush()
    p.close()


def test_mixed_types_keep_per_partition_order_and_offsets(log):
    log.create_topic("t", partitions=2)
    p = log.producer(linger_ms=1000, batch_size=300)
    sent = []
    for i in range(200):
        key = [b"a", "a", None, bytearray(b"a")][i % 4]
        value = b"%d" % i if i % 3 else str(i)
        sent.append((p.send("t", value, key=key), i))
    p.flush()
    metas = [(f.result(5), i) for f, i in sent]
    got = _read_all(log, "t")
    for m, i in metas:
        assert got[m.partition][m.offset].value == b"%d" % i
    keyed = [m for (m, i) in metas if i % 4 != 2]
    assert len({m.partition for m in keyed}) == 1  # b"a", "a" and bytearray b"a" agree
    for part in got:
        assert [r.offset for r in got[part]] == list(range(len(got[part])))
    assert sum(len(v) for v in got.values()) == 200
    p.close()
    with pytest.raises(BrokerClosedError):
        p.send("t", b"late", key=b"a")


def test_small_buffer_falls_back_and_delivers_everything(log):
    log.create_topic("t", partitions=4)
    p = log.producer(linger_ms=1000, batch_size=256, buffer_memory=1024)
    futs = [p.send("t", b"x" * 40, key=b"k%d" % (i % 9)) for i in range(500)]
    p.flush()
    offs = {(m.partition, m.offset) for m in (f.result(5) for f in futs)}
    assert len(offs) == 500
    assert sum(len(v) for v in _read_all(log, "t").values()) == 500
    p.close()


def test_concurrent_senders_get_distinct_offsets(log):
    log.create_topic("t", partitions=3)
    p = log.producer(batch_size=2048)
    futs: list = [[] for _ in range(4)]

    def run(j):
        for i in range(2000):
            futs[j].append(p.send("t", b"%d-%d" % (j, i), key=b"k%d" % (i % 5) if i % 2 else None))

    ths = [threading.Thread(target=run, args=(j,)) for j in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    p.flush()
    got = _read_all(log, "t")
    seen = {}
    for j in range(4):
        last: dict[int, int] = {}
        for i, f in enumerate(futs[j]):
            m = f.result(5)
            assert got[m.partition][m.offset].value == b"%d-%d" % (j, i)
            assert m.offset > last.get(m.partition, -1)  # one thread's sends stay in order
            last[m.partition] = m.offset
            seen[(m.partition, m.offset)] = (j, i)
    assert len(seen) == 8000 == sum(len(v) for v in got.values())
    p.close()


def test_compiled_fast_path_matches_reference(log):
    """The same sends through the reference and the compiled fast path, on two producers and
    two identical topics: the same decisions (None = general path), partitions, offsets,
    buffer accounting and stored records."""
    from logmq.broker.futures import RecordFuture
    from logmq.broker.send_fast import _py_send_fast

    try:
        from logmq.broker import _native_send as native
    except ImportError as e:
        if os.environ.get("CI"):
            raise ImportError(f"CI must build the send fast path (pip install -e .): {e}") from e
        pytest.skip(f"compiled send fast path not built ({e})")
    log.create_topic("a", partitions=3, config={"max.message.bytes": 2000})
    log.create_topic("b", partitions=3, config={"max.message.bytes": 2000})
    pa = log.producer(linger_ms=60_000, batch_size=700)
    pb = log.producer(linger_ms=60_000, batch_size=700)
    inputs = []
    for i in range(600):
        key = [b"k%d" % (i % 7), None, "str-key", b""][i % 4]
        value = [b"v" * (i % 50), None, b"x" * 2500, "s"][i % 13 % 4]
        inputs.append((key, value))
    got = {"a": [], "b": []}
    for key, value in inputs:
        for topic, prod, fn in (("a", pa, _py_send_fast), ("b", pb, native.send_fast)):
            fast = prod._fast.get(topic)
            f = fn(prod, fast, topic, key, value, RecordFuture) if fast else None
            if f is None:  # what Producer.send then does
                try:
                    f = prod._send_general(topic, value, key, None, None, None)
                except Exception as e:
                    f = type(e).__name__
                got[topic].append(("general", f))
            else:
                got[topic].append(("fast", f))
        assert pa._buffered == pb._buffered
    pa.flush()
    pb.flush()

    def outcome(x):
        how, f = x
        return how, f if isinstance(f, str) else f.result(5)[1:3]

    assert [outcome(x) for x in got["a"]] == [outcome(x) for x in got["b"]]
    assert sum(how == "fast" for how, _ in got["a"]) > 150  # the fast path was exercised
    ra, rb = _read_all(log, "a"), _read_all(log, "b")
    assert {p: [(r.key, r.value) for r in v] for p, v in ra.items()} == \
        {p: [(r.key, r.value) for r in v] for p, v in rb.items()}
