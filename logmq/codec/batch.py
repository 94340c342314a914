"""Kafka RecordBatch v2 header: layout, validation and offset assignment, without touching records.

The storage layer and the wire server work on whole batches. They need to know where a batch
ends, which offsets and timestamps it covers, and whether its bytes are intact, but never the
records inside. Everything here reads a fixed 61-byte header with one ``struct`` call, so the
append and fetch paths do no per-record work.

Layout (big-endian), byte positions from the start of the batch::

     0 baseOffset i64          27 baseTimestamp i64
     8 batchLength i32         35 maxTimestamp i64
    12 partitionLeaderEpoch i32 43 producerId i64
    16 magic i8 (= 2)          51 producerEpoch i16
    17 crc u32 (CRC-32C)       53 baseSequence i32
    21 attributes i16          57 recordCount i32
    23 lastOffsetDelta i32     61 records...

``batchLength`` counts the bytes after itself, so a batch occupies ``12 + batchLength`` bytes.
The CRC covers bytes 21..end; baseOffset, batchLength and the leader epoch are outside it, which
is what lets a broker assign offsets without recomputing it.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import crc32c as _crc32c

from logmq.errors import CorruptRecordError

__all__ = [
    "HEADER_SIZE",
    "LOG_OVERHEAD",
    "MAGIC",
    "BatchHeader",
    "COMPRESSION_MASK",
    "TIMESTAMP_TYPE_MASK",
    "TRANSACTIONAL_MASK",
    "CONTROL_MASK",
    "crc32c",
    "parse_header",
    "validate_batch",
    "set_base_offset",
    "iter_batches",
    "batch_size_at",
]

HEADER_SIZE = 61
#: baseOffset + batchLength: the bytes a batch occupies beyond ``batchLength``.
LOG_OVERHEAD = 12
MAGIC = 2
#: Smallest legal batchLength: the header after the first 12 bytes, with no records.
MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD
CRC_START = 21

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20
DELETE_HORIZON_MASK = 0x40

_HEADER = struct.Struct(">qiibIhiqqqhii")
_OFFSET_LEN = struct.Struct(">qi")
_BASE_OFFSET = struct.Struct(">q")
_MAGIC_POS = 16

crc32c = _crc32c.crc32c


class BatchHeader(NamedTuple):
    """The decoded 61-byte header of one batch; ``size`` is the whole batch in bytes."""

    base_offset: int
    batch_length: int
    leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)


def parse_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Decode the header at ``pos``. Checks only that 61 bytes are there and magic is 2."""
    if len(buf) - pos < HEADER_SIZE:
        raise CorruptRecordError(
            f"truncated batch header: {len(buf) - pos} bytes, need {HEADER_SIZE}",
            position=pos,
        )
    h = BatchHeader._make(_HEADER.unpack_from(buf, pos))
    if h.magic != MAGIC:
        raise CorruptRecordError(f"unsupported batch magic {h.magic} (only v2 is stored)", position=pos)
    return h


def validate_batch(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Check one batch's framing, magic, counts and CRC-32C; return its header.

    This is the full check a broker does on bytes it did not write itself (a client's produce,
    a segment being recovered). It does not decode records, so it costs one CRC pass.
    """
    h = parse_header(buf, pos)
    if h.batch_length < MIN_BATCH_LENGTH:
        raise CorruptRecordError(f"batch length {h.batch_length} is below the minimum", position=pos)
    end = pos + h.batch_length + LOG_OVERHEAD
    if end > len(buf):
        raise CorruptRecordError(
            f"batch claims {h.batch_length + LOG_OVERHEAD} bytes, only {len(buf) - pos} present",
            position=pos,
        )
    if h.record_count < 0 or h.last_offset_delta < 0:
        raise CorruptRecordError("negative record count or offset delta", position=pos)
    if h.record_count and h.last_offset_delta < h.record_count - 1 and not h.is_control:
        raise CorruptRecordError(
            f"lastOffsetDelta {h.last_offset_delta} too small for {h.record_count} records",
            position=pos,
        )
    actual = crc32c(memoryview(buf)[pos + CRC_START : end])
    if actual != h.crc:
        raise CorruptRecordError(
            f"CRC mismatch (stored {h.crc:#010x}, computed {actual:#010x})", position=pos
        )
    return h


def set_base_offset(buf: bytearray | memoryview, pos: int, base_offset: int) -> None:
    """Assign offsets to the batch at ``pos`` in place; the CRC stays valid (it excludes them)."""
    _BASE_OFFSET.pack_into(buf, pos, base_offset)


def batch_size_at(buf: bytes | bytearray | memoryview, pos: int) -> int:
    """Size in bytes of the batch starting at ``pos`` (from its length field), or -1 if truncated."""
    if len(buf) - pos < LOG_OVERHEAD:
        return -1
    _, length = _OFFSET_LEN.unpack_from(buf, pos)
    return length + LOG_OVERHEAD


def iter_batches(
    buf: bytes | bytearray | memoryview, validate: bool = True
) -> list[tuple[int, BatchHeader]]:
    """Split a buffer of concatenated batches into (position, header) pairs.

    Raises :class:`CorruptRecordError` if the buffer does not end exactly on a batch boundary:
    a produce request carrying half a batch is refused whole rather than partly appended.
    """
    out: list[tuple[int, BatchHeader]] = []
    pos = 0
    n = len(buf)
    check = validate_batch if validate else parse_header
    while pos < n:
        h = check(buf, pos)
        if not validate and pos + h.size > n:
            raise CorruptRecordError("truncated batch", position=pos)
        out.append((pos, h))
        pos += h.size
    return out
