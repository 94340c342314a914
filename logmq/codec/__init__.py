"""Encoders and decoders: RecordBatch v2 (``batch``, ``records``) and compression.

``implementation`` says which per-record core is in use: ``"native"`` (the compiled
``_native`` extension, built by ``pip install`` where a C compiler exists) or ``"python"``
(the pure reference, also forced by ``LOGMQ_PURE=1``). Both give identical results.
"""

from logmq.codec.batch import BatchHeader, parse_header, validate_batch
from logmq.codec.keys import bucket_keys
from logmq.codec.records import (
           decode_batch,
           encode_batch,
           implementation,
           iter_records,
           walk_records,
)

__all__ = ["BatchHeader", "parse_header", "validate_batch", "encode_batch", "decode_batch",
           "iter_records", "walk_records", "bucket_keys", "implementation"]
