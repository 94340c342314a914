"""The pure-Python reference of key bucketing (see :mod:`logmq.codec.keys`).

Its own module so the compiled core can fall back to it without importing the module that
selects the compiled core (no import cycle).
"""

from __future__ import annotations

from xxhash import xxh3_64_intdigest

__all__ = ["_py_bucket_keys"]


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
