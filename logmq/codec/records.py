"""Kafka RecordBatch v2 records: encode and decode whole batches, no I/O.

A record inside a batch is::

    length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
    keyLength varint | key | valueLength varint | value | headerCount varint |
    (headerKeyLength varint | headerKey utf-8 | headerValueLength varint | value)*

Varints are zigzag-encoded base-128 (protobuf ``sint``); a length of -1 means null, which is
how a null key or a tombstone (null value) stays distinct from an empty one.

Speed is the point of this module (it bounds ``send_batch`` and ``poll`` throughput in pure
Python): encoding looks small integers up in a precomputed table of varint bytes and joins all
parts of a batch once; decoding reads one-byte varints inline and only calls a function for
the rare multi-byte ones. The compiled core (``_native.pyx``) replaces the per-record loops
where it is built; these stay the reference it is tested against (``LOGMQ_PURE=1``).
"""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from logmq.codec.batch import (
    COMPRESSION_MASK,
    CONTROL_MASK,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_MASK,
    BatchHeader,
    crc32c,
    parse_header,
    validate_batch,
)
from logmq.codec.compression import codec_id, compress, decompress
from logmq.codec.purity import pure_forced
from logmq.codec.walk import walk_records
from logmq.errors import ConfigError, CorruptRecordError

__all__ = [
    "Header",
    "RawRecord",
    "encode_batch",
    "decode_batch",
    "iter_records",
    "decode_records_into",
    "record_keys",
    "encode_varint",
    "decode_varint",
    "walk_records",
    "implementation",
    "codec_id",
    "compress",
    "decompress",
]

Header = tuple[str, bytes | None]
#: (offset, timestamp_ms, key, value, headers)
RawRecord = tuple[int, int, bytes | None, bytes | None, list[Header]]

_HEADER = struct.Struct(">qiibIhiqqqhii")
_AFTER_CRC = struct.Struct(">hiqqqhii")  # attributes .. recordCount (bytes 21..61)
_PREFIX = struct.Struct(">qiib")  # baseOffset, batchLength, leaderEpoch, magic
_CRC = struct.Struct(">I")

_TABLE_SIZE = 1 << 15


def _zigzag_bytes(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    z &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


#: _UNZIGZAG[z] is the signed value of zigzag-encoded z, for one- and two-byte varints.
_UNZIGZAG: list[int] = [(z >> 1) ^ -(z & 1) for z in range(1 << 14)]

#: _V[n] is the zigzag varint of n for 0 <= n < _TABLE_SIZE.
_V: list[bytes] = [_zigzag_bytes(i) for i in range(_TABLE_SIZE)]
_NULL = _zigzag_bytes(-1)
#: _VLEN[n] == len(_V[n]): the encoded size of a small varint without a call to len().
_VLEN: list[int] = [len(b) for b in _V]


def encode_varint(n: int) -> bytes:
    """Zigzag varint bytes of ``n`` (signed, up to 64 bits)."""
    if 0 <= n < _TABLE_SIZE:
        return _V[n]
    return _zigzag_bytes(n)


def decode_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """(value, next position) of the zigzag varint at ``pos``."""
    shift = 0
    result = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise CorruptRecordError("varint runs past the end of the buffer")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 63:
            raise CorruptRecordError("varint longer than 10 bytes")
    return (result >> 1) ^ -(result & 1), pos


def _var(n: int) -> bytes:
    return _V[n] if 0 <= n < _TABLE_SIZE else _zigzag_bytes(n)


def _encode_headers(headers: Sequence[Header] | None) -> bytes:
    if not headers:
        return b"\x00"
    parts = [_var(len(headers))]
    for k, v in headers:
        kb = k.encode() if isinstance(k, str) else bytes(k)
        parts.append(_var(len(kb)))
        parts.append(kb)
        if v is None:
            parts.append(_NULL)
        else:
            parts.append(_var(len(v)))
            parts.append(v)
    return b"".join(parts)


def _encode_simple(records: Sequence[Sequence[Any]], extend: Callable[..., None]) -> int:
    """Fast path: one timestamp, consecutive offsets, no headers, lengths below the table size.

    Returns how many records it encoded; it stops at the first record it cannot handle and
    leaves the rest to the general loop.
    """
    V = _V
    VL = _VLEN
    limit = _TABLE_SIZE - 32
    i = 0
    try:
        for k, v in records:  # a record with headers fails to unpack: general loop
            if k is None or v is None:
                return i
            kl = len(k)
            vl = len(v)
            if kl + vl >= limit:
                return i
            extend((V[kl + vl + 3 + VL[i] + VL[kl] + VL[vl]], b"\x00\x00", V[i], V[kl], k,
                    V[vl], v, b"\x00"))
            i += 1
    except ValueError:
        return i
    return i


def _encode_payload(
    records: Sequence[Sequence[Any]],
    timestamps: Sequence[int] | None,
    base_ts: int,
    offset_deltas: Sequence[int] | None,
) -> bytes:
    """The records section of a batch (uncompressed): the pure reference of the native one."""
    n = len(records)
    V = _V
    TS = _TABLE_SIZE
    NULL = _NULL
    parts: list[bytes] = []
    extend = parts.extend
    if timestamps is None and offset_deltas is None and n < TS:
        done = _encode_simple(records, extend)
    else:
        done = 0
    for i in range(done, n):
        rec = records[i]
        k = rec[0]
        v = rec[1]
        od = i if offset_deltas is None else offset_deltas[i]
        oi = V[od] if 0 <= od < TS else _zigzag_bytes(od)
        if timestamps is None:
            ti = b"\x00"
        else:
            d = timestamps[i] - base_ts
            ti = V[d] if 0 <= d < TS else _zigzag_bytes(d)
        if k is None:
            ki = NULL
            kl = 0
            k = b""
        else:
            kl = len(k)
            ki = V[kl] if kl < TS else _zigzag_bytes(kl)
        if v is None:
            vi = NULL
            vl = 0
            v = b""
        else:
            vl = len(v)
            vi = V[vl] if vl < TS else _zigzag_bytes(vl)
        hb = b"\x00" if len(rec) < 3 or not rec[2] else _encode_headers(rec[2])
        body = 1 + len(ti) + len(oi) + len(ki) + kl + len(vi) + vl + len(hb)
        extend((V[body] if body < TS else _zigzag_bytes(body), b"\x00", ti, oi, ki, k, vi, v,
                hb))
    return b"".join(parts)


def encode_batch(
    records: Sequence[Sequence[Any]],
    *,
    base_offset: int = 0,
    timestamp: int | None = None,
    timestamps: Sequence[int] | None = None,
    offset_deltas: Sequence[int] | None = None,
    compression: int | str = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    leader_epoch: int = -1,
    transactional: bool = False,
    control: bool = False,
    timestamp_type: int = 0,
) -> bytes:
    """Encode ``(key, value)`` / ``(key, value, headers)`` records as one v2 batch.

    ``timestamp`` gives every record the same time (the fast path); ``timestamps`` one per
    record; neither means now. ``offset_deltas`` lets the compactor keep original offsets
    (with gaps). ``leader_epoch`` defaults to -1 as Kafka producers send it.
    """
    n = len(records)
    if n == 0:
        raise ConfigError("cannot encode an empty batch")
    if timestamps is not None:
        if len(timestamps) != n:
            raise ConfigError("timestamps must have one entry per record")
        base_ts = timestamps[0]  # Kafka's baseTimestamp is the first record's
        max_ts = max(timestamps)
        if base_ts == max_ts == min(timestamps):
            timestamp, timestamps = base_ts, None
    else:
        if timestamp is None:
            timestamp = int(time.time() * 1000)
        base_ts = max_ts = timestamp
    if offset_deltas is not None and len(offset_deltas) != n:
        raise ConfigError("offset_deltas must have one entry per record")
    codec = codec_id(compression)
    attributes = codec | (TIMESTAMP_TYPE_MASK if timestamp_type else 0)
    if transactional:
        attributes |= TRANSACTIONAL_MASK
    if control:
        attributes |= CONTROL_MASK
    last_delta = (n - 1) if offset_deltas is None else offset_deltas[-1]
    tail = _AFTER_CRC.pack(attributes, last_delta, base_ts, max_ts, producer_id, producer_epoch,
                           base_sequence, n)
    if not codec:
        return _encode_whole(records, timestamps, base_ts, offset_deltas, base_offset,
                             leader_epoch, tail)
    payload = compress(codec, _encode_payload(records, timestamps, base_ts, offset_deltas))
    return _frame(payload, base_offset, leader_epoch, tail)


def _frame(payload: bytes, base_offset: int, leader_epoch: int, tail: bytes) -> bytes:
    crc = crc32c(payload, crc32c(tail))
    head = _PREFIX.pack(base_offset, HEADER_SIZE - LOG_OVERHEAD + len(payload), leader_epoch,
                        MAGIC)
    return b"".join((head, _CRC.pack(crc), tail, payload))


def _encode_whole(records: Sequence[Sequence[Any]], timestamps: Sequence[int] | None,
                  base_ts: int, offset_deltas: Sequence[int] | None, base_offset: int,
                  leader_epoch: int, tail: bytes) -> bytes:
    """An uncompressed batch: header + records. The native one writes both into one buffer
    (a 1 MiB batch is then allocated and copied once, not twice)."""
    payload = _encode_payload(records, timestamps, base_ts, offset_deltas)
    return _frame(payload, base_offset, leader_epoch, tail)


def _records_payload(buf: bytes | bytearray | memoryview, pos: int, h: BatchHeader) -> bytes:
    end = pos + h.size
    raw = buf[pos + HEADER_SIZE : end]
    codec = h.attributes & COMPRESSION_MASK
    if codec:
        return decompress(codec, memoryview(raw))
    return raw if isinstance(raw, bytes) else bytes(raw)


def _records_view(buf: bytes | bytearray | memoryview, pos: int, h: BatchHeader) -> Any:
    """Like :func:`_records_payload` without copying an uncompressed section (native decode
    reads any buffer; the pure decoder needs ``bytes`` because it slices keys out of it)."""
    raw: memoryview = memoryview(buf)[pos + HEADER_SIZE : pos + h.size]
    codec = h.attributes & COMPRESSION_MASK
    return decompress(codec, raw) if codec else raw


def _decode_payload(
    data: bytes,
    h: BatchHeader,
    out: list,
    min_offset: int,
    max_records: int | None,
    make: Callable[..., Any] | None,
    cls: type | None = None,
    topic: str | None = None,
    partition: int | None = None,
) -> int:
    """Decode records of one batch into ``out``; returns how many were appended.

    With ``cls`` (a tuple subclass such as ``logmq.Record``) items are built inline as
    ``cls((topic, partition, offset, timestamp, key, value, headers))``: no call per record.
    """
    base = h.base_offset
    base_ts = h.base_timestamp
    count = h.record_count
    limit = count if max_records is None else max_records
    added = 0
    parsed = 0
    p = 0
    n = len(data)
    dv = decode_varint
    ZZ = _UNZIGZAG
    append = out.append
    new = tuple.__new__
    try:
        for _ in range(count):
            if added >= limit:
                break
            # length
            b = data[p]
            if b < 0x80:
                length = ZZ[b]
                p += 1
            else:
                b2 = data[p + 1]
                if b2 < 0x80:
                    length = ZZ[(b & 0x7F) | (b2 << 7)]
                    p += 2
                else:
                    length, p = dv(data, p)
            end = p + length
            if length < 4 or end > n:
                raise CorruptRecordError("record length runs past the end of the batch")
            p += 1  # attributes
            b = data[p]
            if b < 0x80:
                tsd = ZZ[b]
                p += 1
            else:
                b2 = data[p + 1]
                if b2 < 0x80:
                    tsd = ZZ[(b & 0x7F) | (b2 << 7)]
                    p += 2
                else:
                    tsd, p = dv(data, p)
            b = data[p]
            if b < 0x80:
                od = ZZ[b]
                p += 1
            else:
                b2 = data[p + 1]
                if b2 < 0x80:
                    od = ZZ[(b & 0x7F) | (b2 << 7)]
                    p += 2
                else:
                    od, p = dv(data, p)
            b = data[p]
            if b < 0x80:
                kl = ZZ[b]
                p += 1
            else:
                b2 = data[p + 1]
                if b2 < 0x80:
                    kl = ZZ[(b & 0x7F) | (b2 << 7)]
                    p += 2
                else:
                    kl, p = dv(data, p)
            if kl < 0:
                if kl != -1:
                    raise CorruptRecordError("negative key length")
                key = None
            else:
                key = data[p : p + kl]
                p += kl
            b = data[p]
            if b < 0x80:
                vl = ZZ[b]
                p += 1
            else:
                b2 = data[p + 1]
                if b2 < 0x80:
                    vl = ZZ[(b & 0x7F) | (b2 << 7)]
                    p += 2
                else:
                    vl, p = dv(data, p)
            if vl < 0:
                if vl != -1:
                    raise CorruptRecordError("negative value length")
                value = None
            else:
                value = data[p : p + vl]
                p += vl
            b = data[p]
            if b == 0:
                headers: list[Header] = []
                p += 1
            else:
                hc, p = dv(data, p)
                if hc < 0 or hc > length:
                    raise CorruptRecordError("bad header count")
                headers = []
                for _h in range(hc):
                    hkl, p = dv(data, p)
                    if hkl < 0 or p + hkl > end:
                        raise CorruptRecordError("bad header key length")
                    hk = data[p : p + hkl].decode()
                    p += hkl
                    hvl, p = dv(data, p)
                    if hvl < 0:
                        hv = None
                    else:
                        hv = data[p : p + hvl]
                        p += hvl
                    headers.append((hk, hv))
            if p != end:
                raise CorruptRecordError("record fields do not add up to its length")
            parsed += 1
            off = base + od
            if off < min_offset:
                continue
            if cls is not None:
                append(new(cls, (topic, partition, off, base_ts + tsd, key, value, headers)))
            elif make is None:
                append((off, base_ts + tsd, key, value, headers))
            else:
                append(make(off, base_ts + tsd, key, value, headers))
            added += 1
    except IndexError:
        raise CorruptRecordError("record runs past the end of the batch") from None
    except UnicodeDecodeError:
        raise CorruptRecordError("header key is not UTF-8") from None
    if parsed == count and p != n:
        raise CorruptRecordError("trailing bytes after the last record")
    return added


def decode_batch(
    buf: bytes | bytearray | memoryview, pos: int = 0, *, validate: bool = True
) -> tuple[BatchHeader, list[RawRecord]]:
    """Header and records of the batch at ``pos`` (CRC checked unless ``validate=False``)."""
    h = validate_batch(buf, pos) if validate else parse_header(buf, pos)
    if pos + h.size > len(buf):
        raise CorruptRecordError("truncated batch", position=pos)
    out: list[RawRecord] = []
    if h.attributes & CONTROL_MASK:
        return h, out
    _decode_payload(_records_payload(buf, pos, h), h, out, 0, None, None)
    if len(out) != h.record_count:
        raise CorruptRecordError("record count does not match the header", position=pos)
    return h, out


def iter_records(
    buf: bytes | bytearray | memoryview, *, min_offset: int = 0, validate: bool = False
) -> Iterator[RawRecord]:
    """Records of concatenated batches, skipping control batches and offsets < min_offset.

    A truncated batch at the end (as a size-limited read returns) is ignored.
    """
    pos = 0
    n = len(buf)
    while n - pos >= LOG_OVERHEAD:
        length = int.from_bytes(buf[pos + 8 : pos + 12], "big", signed=True)
        if pos + LOG_OVERHEAD + length > n:
            return
        h = validate_batch(buf, pos) if validate else parse_header(buf, pos)
        if h.next_offset > min_offset and not h.attributes & CONTROL_MASK:
            out: list[RawRecord] = []
            _decode_payload(_records_payload(buf, pos, h), h, out, min_offset, None, None)
            yield from out
        pos += h.size


def decode_records_into(
    buf: bytes | bytearray | memoryview,
    out: list,
    min_offset: int = 0,
    max_records: int | None = None,
    make: Callable[..., Any] | None = None,
    *,
    record_cls: type | None = None,
    topic: str | None = None,
    partition: int | None = None,
) -> int:
    """Bulk decode for consumers: append records of whole batches in ``buf`` to ``out``.

    ``make(offset, timestamp, key, value, headers)`` builds each item (default: a RawRecord
    tuple). Stops after ``max_records``. Returns the bytes of whole batches fully consumed, so
    the caller can resume after them; a trailing partial batch is left alone.
    """
    pos = 0
    n = len(buf)
    left = max_records
    while n - pos >= HEADER_SIZE:
        h = parse_header(buf, pos)
        if pos + h.size > n:
            break
        if h.next_offset > min_offset and not h.attributes & CONTROL_MASK:
            got = _decode_payload(_records_payload(buf, pos, h), h, out, min_offset, left, make,
                                  record_cls, topic, partition)
            if left is not None:
                left -= got
                if left <= 0:
                    return pos  # possibly cut inside this batch: resume from it
        pos += h.size
    return pos


def record_keys(buf: bytes | bytearray | memoryview, pos: int = 0) -> list[bytes | None]:
    """Keys of the batch at ``pos`` (for compaction and key-required checks)."""
    _, recs = decode_batch(buf, pos, validate=False)
    return [r[2] for r in recs]


# ---------------------------------------------------------------- implementation selection
# The compiled core (logmq/codec/_native.pyx) replaces the per-record loops by rebinding these
# names once, here, so no call pays for a branch; LOGMQ_PURE=1 keeps the pure reference.
_py_encode_payload = _encode_payload
_py_encode_whole = _encode_whole
_py_decode_payload = _decode_payload
_py_records_payload = _records_payload
_py_encode_varint = encode_varint
_py_decode_varint = decode_varint
implementation = "python"


def _select() -> None:
    global _encode_payload, _encode_whole, _decode_payload, _records_payload, encode_varint
    global decode_varint, implementation
    if pure_forced():
        return
    try:
        from logmq.codec import _native
    except ImportError:
        return
    _native.bind(sys.modules[__name__])
    _encode_payload = _native.encode_payload
    _encode_whole = _native.encode_whole
    _decode_payload = _native.decode_payload
    _records_payload = _records_view
    encode_varint = _native.encode_varint
    decode_varint = _native.decode_varint
    implementation = "native"


_select()
