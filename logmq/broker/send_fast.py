"""``Producer.send``'s fast path: one plain record into an already open batch.

The common case (bytes or ``None`` key and value, default partitioner, no serializers, no
queue depth limit, no headers/options/partition/timestamp) needs none of the general path's
steps but the lock and the appends; this function does only those, with the per-topic facts
the producer caches (``Producer._fast``). It returns ``None``, having changed nothing the
general path depends on, whenever that path must take the record (a new batch, a full
buffer, an oversized record, another type, stale cached facts).

This is the reference; ``logmq/broker/_native_send.pyx`` (its own extension: it knows the
producer's internals, which the codec's must not) compiles the same steps and is used unless
``LOGMQ_PURE=1`` (tests/test_producer_fast.py runs both on the same sends).
"""

from __future__ import annotations

from typing import Any

from logmq.broker.futures import RecordFuture
from logmq.broker.partitioner import _xxh3
from logmq.codec.purity import pure_forced

__all__ = ["send_fast", "RECORD_OVERHEAD", "KEY_CACHE"]

RECORD_OVERHEAD = 16  # rough per-record framing, for buffer accounting only
KEY_CACHE = 65536  # distinct keys per topic whose partition send() remembers


def _py_send_fast(prod: Any, fast: tuple, topic: str, key: Any, value: Any,
                  future: type = RecordFuture) -> RecordFuture | None:
    """Queue ``(key, value)`` into ``topic``'s open batch, or None for the general path.

    ``fast``: (topics version, partition 0's log, its config, partitions,
    max.message.bytes, {key: partition}, ((topic, p), ...)), valid while the version and
    the config object hold.
    """
    if fast[0] != prod._version_src.topics_version or fast[1].config is not fast[2]:
        return None
    size = RECORD_OVERHEAD
    if value is not None:
        if value.__class__ is not bytes:
            return None
        size += len(value)
    p = -1
    if key is not None:
        if key.__class__ is not bytes:
            return None
        size += len(key)
        kp = fast[5]
        p = kp.get(key, -1)
        if p < 0:
            p = _xxh3(key) % fast[3]
            if len(kp) < KEY_CACHE:
                kp[key] = p
    if size > fast[4]:
        return None
    ts = int(prod._wall() * 1000)
    full = False
    lock = prod._lock
    lock.acquire()  # not `with`: acquire/release measured 2x cheaper on the dev box
    try:
        if prod._buffered + size > prod.buffer_memory:
            return None
        if key is None:
            p = prod._sticky.partition(topic, fast[3])
        tp = fast[6][p]
        batch = prod._open.get(tp)
        if batch is None:
            return None
        i = len(batch.records)
        batch.records.append((key, value))
        batch.timestamps.append(ts)
        batch.size += size
        prod._buffered += size
        if batch.size >= prod.batch_size:
            prod._seal(tp, batch)
            full = True
    finally:
        lock.release()
    if full:  # this record filled the batch: send it ourselves
        prod._drain(tp)
    return future(batch, i)


def _select() -> Any:
    """The compiled twin unless LOGMQ_PURE=1 or it is not built."""
    if not pure_forced():
        try:
            from logmq.broker._native_send import send_fast as native
        except ImportError:
            return _py_send_fast
        return native
    return _py_send_fast


#: ``send_fast(producer, fast, topic, key, value, future_class) -> RecordFuture | None``
send_fast: Any = _select()
