"""The pure-Python reference of key bucketing (see :mod:`logmq.codec.keys`).

Its own module so the compiled core can fall back to it without importing the module that
selects the compiled core (no import cycle).
"""

from __future__ import annotations

from xxhash import xxh3_64_intdigest

from logmq.codec.records import encode_batch

__all__ = ["_py_bucket_keys", "_py_bucket_encode"]


def _py_bucket_keys(records: list, num_partitions: int) -> dict[int, list] | None:
    """Group plain ``(bytes key, bytes value)`` records by partition, hashing each key once.

    Returns None as soon as a record needs the producer's general path (headers, non-bytes
    keys or values, null keys that take the sticky partition), so the caller pays one aborted
    pass at most. Each list holds the caller's record objects in their original order.
    """
    h = xxh3_64_intdigest
    cache: dict[bytes, list] = {}
    buckets: dict[int, list] = {}
    try:
        for rec in records:
            k, v = rec  # records with headers do not unpack: general path
            if v.__class__ is not bytes:
                return None
            b = cache.get(k)
            if b is None:
                if k.__class__ is not bytes:
                    return None
                p = h(k) % num_partitions
                b = buckets.get(p)
                if b is None:
                    b = buckets[p] = []
                cache[k] = b
            b.append(rec)
    except (TypeError, ValueError):
        return None
    return buckets


def _zz_len(n: int) -> int:
    """Bytes of ``n``'s zigzag varint (n >= 0 here: lengths and offset deltas)."""
    z, size = n << 1, 1
    while z >= 0x80:
        z >>= 7
        size += 1
    return size


def _record_size(k: bytes, v: bytes, delta: int) -> int:
    """Bytes of one plain record (timestamp delta 0, no headers) in a v2 batch."""
    body = 3 + _zz_len(delta) + _zz_len(len(k)) + len(k) + _zz_len(len(v)) + len(v)
    return _zz_len(body) + body


def _py_bucket_encode(records: list, num_partitions: int, timestamp: int,
                      max_batch_bytes: int) -> dict[int, list[bytes]] | None:
    """Bucketing and encoding in one: the batches (uncompressed, one timestamp, no producer
    id) each partition gets, each at most ``max_batch_bytes`` unless one record alone is
    larger. None where :func:`_py_bucket_keys` says None. The compiled core does this in one
    pass over the records, writing each into its partition's buffer as it meets it, so a bulk
    load reads every record once instead of once to bucket and twice to encode."""
    buckets = _py_bucket_keys(records, num_partitions)
    if buckets is None:
        return None
    out: dict[int, list[bytes]] = {}
    for p, recs in buckets.items():
        batches = out[p] = []
        start, size = 0, 61
        for i, (k, v) in enumerate(recs):
            rs = _record_size(k, v, i - start)
            if i > start and size + rs > max_batch_bytes:
                batches.append(encode_batch(recs[start:i], timestamp=timestamp))
                start, size, rs = i, 61, _record_size(k, v, 0)
            size += rs
        batches.append(encode_batch(recs[start:], timestamp=timestamp))
    return out
