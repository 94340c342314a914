"""Pure encoders and decoders: RecordBatch v2 (``batch``, ``records``) and compression."""

from logmq.codec.batch import BatchHeader, parse_header, validate_batch
from logmq.codec.records import decode_batch, encode_batch, iter_records

__all__ = ["BatchHeader", "parse_header", "validate_batch", "encode_batch", "decode_batch",
           "iter_records"]
