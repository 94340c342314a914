"""Key bucketing for bulk produce: which records go to which partition, cached per key.

Placement is the project's documented one (``logmq.broker.partitioner``): ``xxh3_64(key) %
partitions`` with xxhash's XXH3, seed 0. It lives in the codec because it is a per-record loop
over the same ``(key, value)`` tuples the encoder reads, and the compiled core replaces it
(``LOGMQ_PURE=1`` keeps this one); the broker layer decides when the plain path applies.
"""

from __future__ import annotations

from typing import Any

from logmq.codec.keys_ref import _py_bucket_encode, _py_bucket_keys
from logmq.codec.purity import pure_forced

__all__ = ["bucket_keys", "bucket_encode"]


def select_native(name: str, pure: Any) -> Any:
    """The native function unless LOGMQ_PURE=1 or the extension is not built."""
    if not pure_forced():
        try:
            from logmq.codec import _native
        except ImportError:
            pass
        else:
            native = getattr(_native, name, None)  # None: a build older than this module
            if native is not None:
                _native._fallbacks[name] = pure
                return native
    return pure


#: ``bucket_keys(records, num_partitions) -> {partition: [records]} | None``, bound once here
bucket_keys: Any = select_native("bucket_keys", _py_bucket_keys)
#: ``bucket_encode(records, num_partitions, timestamp, max_batch_bytes)
#: -> {partition: [batch bytes]} | None``: bucketing and encoding in one pass
bucket_encode: Any = select_native("bucket_encode", _py_bucket_encode)
