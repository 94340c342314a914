"""Transaction markers: the control batches a transaction coordinator writes.

A marker is a RecordBatch v2 with the control and transactional attribute bits set, the
producer's id and epoch, base sequence -1 and exactly one record whose key is
``int16 version (0), int16 type (0 ABORT, 1 COMMIT)`` and whose value is
``int16 version (0), int32 coordinator epoch``. Consumers skip control batches; a
read_committed consumer uses the ABORT markers (with the aborted-transaction list of a Fetch)
to drop the aborted records it was sent.
"""

from __future__ import annotations

import struct

from logmq.codec.batch import CONTROL_MASK, HEADER_SIZE, BatchHeader, parse_header
from logmq.codec.records import decode_varint, encode_batch
from logmq.errors import CorruptRecordError

__all__ = ["ABORT", "COMMIT", "encode_marker", "marker_type", "decode_marker"]

ABORT = 0
COMMIT = 1
_KEY = struct.Struct(">hh")
_VALUE = struct.Struct(">hi")


def encode_marker(producer_id: int, producer_epoch: int, commit: bool,
                  coordinator_epoch: int = 0, timestamp: int | None = None) -> bytes:
    """One COMMIT or ABORT control batch for ``producer_id`` (base offset 0, to be assigned)."""
    key = _KEY.pack(0, COMMIT if commit else ABORT)
    value = _VALUE.pack(0, coordinator_epoch)
    return encode_batch([(key, value)], timestamp=timestamp, producer_id=producer_id,
                        producer_epoch=producer_epoch, base_sequence=-1, transactional=True,
                        control=True)


def marker_type(buf: bytes | bytearray | memoryview, pos: int = 0,
                h: BatchHeader | None = None) -> int:
    """COMMIT or ABORT of the control batch at ``pos`` (CorruptRecordError if it is none)."""
    return decode_marker(buf, pos, h)[0]


def decode_marker(buf: bytes | bytearray | memoryview, pos: int = 0,
                  h: BatchHeader | None = None) -> tuple[int, int]:
    """(COMMIT or ABORT, coordinator epoch) of the control batch at ``pos``."""
    if h is None:
        h = parse_header(buf, pos)
    if not h.attributes & CONTROL_MASK or h.attributes & 0x07:
        raise CorruptRecordError("not an uncompressed control batch", position=pos)
    p = pos + HEADER_SIZE
    _length, p = decode_varint(buf, p)
    p += 1  # attributes
    _ts, p = decode_varint(buf, p)
    _od, p = decode_varint(buf, p)
    klen, p = decode_varint(buf, p)
    if klen < 4:
        raise CorruptRecordError("control record key shorter than 4 bytes", position=pos)
    _version, kind = _KEY.unpack_from(buf, p)
    if kind not in (ABORT, COMMIT):
        raise CorruptRecordError(f"unknown control record type {kind}", position=pos)
    p += klen
    vlen, p = decode_varint(buf, p)
    coordinator_epoch = _VALUE.unpack_from(buf, p)[1] if vlen >= _VALUE.size else -1
    return int(kind), int(coordinator_epoch)
