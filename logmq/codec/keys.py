"""Key bucketing for bulk produce: which records go to which partition, cached per key.

Placement is the project's documented one (``logmq.broker.partitioner``): ``xxh3_64(key) %
partitions`` with xxhash's XXH3, seed 0. It lives in the codec because it is a per-record loop
over the same ``(key, value)`` tuples the encoder reads, and the compiled core replaces it
(``LOGMQ_PURE=1`` keeps this one); the broker layer decides when the plain path applies.
"""

from __future__ import annotations

import os
from typing import Any

from xxhash import xxh3_64_intdigest

__all__ = ["bucket_keys"]


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


def _select() -> Any:
    """The native bucketing unless LOGMQ_PURE=1 or the extension is not built."""
    if os.environ.get("LOGMQ_PURE", "") in ("", "0"):
        try:
            from logmq.codec import _native
        except ImportError:
            pass
        else:
            return _native.bucket_keys
    return _py_bucket_keys


#: ``bucket_keys(records, num_partitions) -> {partition: [records]} | None``, bound once here
bucket_keys: Any = _select()
