"""The produce validator's per-record pass over an uncompressed records section.

Kafka's broker (LogValidator) refuses a batch whose records do not parse exactly; logmq's
server does the same before appending a client's bytes, so that no consumer can later trip
over them. This walk checks framing, varints, lengths, offset deltas and header keys without
building any record object, and reports the first fault with its byte position. The compiled
core has the same walk (``_native.walk_records``), bound here unless ``LOGMQ_PURE=1``.
"""

from __future__ import annotations

from typing import Any

from logmq.codec.purity import pure_forced
from logmq.errors import CorruptRecordError

__all__ = ["walk_records"]


def _walk_varint(data: Any, p: int, end: int, wide: bool, what: str, i: int) -> tuple[int, int]:
    """Strict varint for the validator: at most 5 bytes and 32 bits (10 and 64 if ``wide``)."""
    start = p
    most = 10 if wide else 5
    result = 0
    shift = 0
    while True:
        if p >= end:
            raise CorruptRecordError(f"record {i}: {what} runs past the end of the record",
                                     position=start)
        if p - start >= most:
            raise CorruptRecordError(f"record {i}: {what} varint is longer than {most} bytes",
                                     position=start)
        b = data[p]
        p += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    if result >> (64 if wide else 32):
        raise CorruptRecordError(f"record {i}: {what} is out of range", position=start)
    return (result >> 1) ^ -(result & 1), p


def _walk_length(data: Any, p: int, end: int, what: str, i: int) -> tuple[int, int]:
    """A key/header value length: -1 (null) or a length within the record; returns new pos."""
    start = p
    ln, p = _walk_varint(data, p, end, False, f"{what} length", i)
    if ln < -1:
        raise CorruptRecordError(f"record {i}: negative {what} length", position=start)
    if ln > end - p:
        raise CorruptRecordError(f"record {i}: {what} runs past the end of the record",
                                 position=start)
    return ln, p + max(ln, 0)


def _py_walk_records(data: bytes | bytearray | memoryview, base_timestamp: int,
                     record_count: int) -> tuple[int, int, int]:
    """Check every record of an uncompressed records section; ``(count, min_ts, max_ts)``.

    The produce validator's per-record pass (Kafka's LogValidator checks the same): framing
    and varints (no longer than Java's readers accept, in range), lengths inside their record,
    offset deltas exactly 0..n-1, UTF-8 header keys, no bytes left over. ``position`` in the
    error is the byte offset in ``data`` of the faulty field. Empty gives ``(0, -1, -1)``.
    """
    if record_count < 0:
        raise CorruptRecordError(f"negative record count {record_count}", position=0)
    n = len(data)
    p = 0
    lo = hi = -1
    for i in range(record_count):
        start = p
        length, p = _walk_varint(data, p, n, False, "length", i)
        if length < 6 or length > n - p:
            raise CorruptRecordError(f"record {i}: length {length} does not fit the "
                                     f"{n - p} bytes left", position=start)
        end = p + length
        p += 1  # attributes: unused in v2 records, as Kafka treats them
        fld = p
        tsd, p = _walk_varint(data, p, end, True, "timestamp delta", i)
        ts = base_timestamp + tsd
        if not -(1 << 63) <= ts < (1 << 63):
            raise CorruptRecordError(f"record {i}: timestamp out of range", position=fld)
        if i == 0:
            lo = hi = ts
        elif ts < lo:
            lo = ts
        elif ts > hi:
            hi = ts
        fld = p
        od, p = _walk_varint(data, p, end, False, "offset delta", i)
        if od != i:
            raise CorruptRecordError(f"record {i}: offset delta {od}, expected {i}",
                                     position=fld)
        _, p = _walk_length(data, p, end, "key", i)
        _, p = _walk_length(data, p, end, "value", i)
        fld = p
        hc, p = _walk_varint(data, p, end, False, "header count", i)
        if hc < 0 or hc > end - p:
            raise CorruptRecordError(f"record {i}: bad header count {hc}", position=fld)
        for _ in range(hc):
            fld = p
            hkl, p = _walk_varint(data, p, end, False, "header key length", i)
            if hkl < 0 or hkl > end - p:
                raise CorruptRecordError(f"record {i}: bad header key length", position=fld)
            try:
                bytes(data[p : p + hkl]).decode()
            except UnicodeDecodeError:
                raise CorruptRecordError(f"record {i}: header key is not UTF-8",
                                         position=p) from None
            p += hkl
            _, p = _walk_length(data, p, end, "header value", i)
        if p != end:
            raise CorruptRecordError(f"record {i}: fields end before the record does",
                                     position=p)
    if p != n:
        raise CorruptRecordError("trailing bytes after the last record", position=p)
    return record_count, lo, hi


def _native_module() -> Any:
    if not pure_forced():
        try:
            from logmq.codec import _native
        except ImportError:
            return None
        return _native
    return None


_N = _native_module()
if _N is not None:
    _N._fallbacks["walk_records"] = _py_walk_records
#: ``walk_records(data, base_timestamp, record_count) -> (count, min_ts, max_ts)``
walk_records: Any = _py_walk_records if _N is None else _N.walk_records
#: The compiled twin of ``logmq.codec.validate.walk_records(data, count, contiguous,
#: last_delta)`` (same results and errors), or None when the pure code is in use: the
#: validator binds ``_walk = native_produce_walk or walk_records``.
native_produce_walk: Any = None if _N is None else _N.walk_produce
