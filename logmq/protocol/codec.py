"""Schema-driven encode/decode of Kafka requests and responses: pure functions, no I/O.

For each (message, version) the field list in ``_schemas`` is compiled once into a pair of
closures, so encoding a response is a walk over precomputed steps rather than a schema
interpretation per request. Both encodings are supported: classic (int16/int32 length
prefixes) and flexible (unsigned-varint "compact" lengths plus tagged fields).

Bodies are dicts keyed by snake_case field names. On encode, fields missing from the dict take
their default, and fields the version does not have are ignored, so handlers can write one
dict for every version. On decode, only the version's fields are present. Any malformed input
raises :class:`~logmq.errors.ProtocolError`, never a bare ``struct.error`` or ``IndexError``.
"""

from __future__ import annotations

import struct
import threading
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from logmq.errors import ProtocolError, UnsupportedVersionError
from logmq.protocol._schemas import SCHEMAS as _SCHEMAS

__all__ = [
    "RequestHeader",
    "Request",
    "SUPPORTED_VERSIONS",
    "API_NAMES",
    "decode_request",
    "encode_request",
    "encode_response",
    "encode_response_chunks",
    "decode_response",
    "encode_refusal",
    "peek_header",
    "encode_struct",
    "decode_struct",
]

#: What the server advertises (and decodes): the versions whose fields the handlers honour.
SUPPORTED_VERSIONS: dict[int, tuple[int, int]] = {
    0: (3, 8),  # Produce
    1: (4, 11),  # Fetch
    2: (1, 10),  # ListOffsets (v7 max-timestamp, v8 earliest-local, v9 latest-tiered)
    3: (0, 8),  # Metadata
    8: (2, 7),  # OffsetCommit
    9: (1, 5),  # OffsetFetch
    10: (0, 2),  # FindCoordinator
    11: (0, 5),  # JoinGroup
    12: (0, 3),  # Heartbeat
    13: (0, 3),  # LeaveGroup
    14: (0, 3),  # SyncGroup
    15: (0, 4),  # DescribeGroups
    16: (0, 2),  # ListGroups
    18: (0, 2),  # ApiVersions
    19: (2, 4),  # CreateTopics (Kafka 4 removed v0-1, KIP-896)
    20: (1, 3),  # DeleteTopics (v0 removed)
    21: (0, 1),  # DeleteRecords
    22: (0, 1),  # InitProducerId
    32: (1, 3),  # DescribeConfigs (v0 removed)
    # the admin surface (logmq/server/admin.py)
    33: (0, 2),  # AlterConfigs
    35: (1, 4),  # DescribeLogDirs (v0 removed)
    37: (0, 3),  # CreatePartitions
    42: (0, 2),  # DeleteGroups
    43: (0, 2),  # ElectLeaders
    44: (0, 1),  # IncrementalAlterConfigs
    47: (0, 0),  # OffsetDelete
    61: (0, 0),  # DescribeProducers
    75: (0, 0),  # DescribeTopicPartitions
    # transactions (logmq/server/txn.py; Kafka's transaction version 1, no KIP-890 v2)
    24: (0, 3), 25: (0, 3), 26: (0, 4), 27: (1, 1), 28: (0, 3), 65: (0, 0), 66: (0, 2),
}

SCHEMAS: dict[str, Any] = _SCHEMAS  # generated plain data; typed once here

API_NAMES: dict[int, str] = {
    s["api_key"]: name[: -len("Request")]
    for name, s in SCHEMAS.items()
    if name.endswith("Request")
}

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_F64 = struct.Struct(">d")
_BOOL = struct.Struct(">?")
_FIXED = {"int8": _I8, "int16": _I16, "int32": _I32, "int64": _I64, "uint16": _U16,
          "uint32": _U32, "float64": _F64}
_ZERO = {"int8": 0, "int16": 0, "int32": 0, "int64": 0, "uint16": 0, "uint32": 0,
         "float64": 0.0, "bool": False, "string": "", "bytes": b"", "records": None,
         "uuid": b"\x00" * 16}

Enc = Callable[[Any, list], None]
_MISSING = object()
Dec = Callable[[bytes, int], tuple[Any, int]]


class RequestHeader(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


class Request(NamedTuple):
    header: RequestHeader
    body: dict


# ---------------------------------------------------------------------- varints
def _write_uvarint(n: int, out: list) -> None:
    if n < 0x80:
        out.append(bytes((n,)))
        return
    b = bytearray()
    while n >= 0x80:
        b.append((n & 0x7F) | 0x80)
        n >>= 7
    b.append(n)
    out.append(bytes(b))


def _read_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = 0
    result = 0
    while True:
        if pos >= len(buf):
            raise ProtocolError("unsigned varint runs past the end")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 35:
            raise ProtocolError("unsigned varint too long")


def _skip_tagged(buf: bytes, pos: int) -> int:
    """Skip a header's tagged-field section (none of which logmq uses)."""
    n, pos = _read_uvarint(buf, pos)
    for _ in range(n):
        _tag, pos = _read_uvarint(buf, pos)
        size, pos = _read_uvarint(buf, pos)
        pos += size
    return pos


def _in(v: int, rng: tuple[int, int] | None) -> bool:
    return rng is not None and rng[0] <= v <= rng[1]


# ---------------------------------------------------------------------- primitives
def _take(buf: bytes, pos: int, n: int) -> tuple[bytes, int]:
    end = pos + n
    if n < 0 or end > len(buf):
        raise ProtocolError(f"field of {n} bytes runs past the end of the frame")
    return buf[pos:end], end


def _read_length(buf: bytes, pos: int, compact: bool, st: struct.Struct, what: str,
                 nullable: bool) -> tuple[int | None, int]:
    """A length prefix: compact (uvarint of n+1, 0 = null) or classic (signed, -1 = null).

    Returns (None, pos) for a null where the field allows it, else (n, pos).
    """
    if compact:
        n, pos = _read_uvarint(buf, pos)
        n -= 1
    else:
        if pos + st.size > len(buf):
            raise ProtocolError(f"{what} length runs past the end of the frame")
        n = st.unpack_from(buf, pos)[0]
        pos += st.size
    if n < 0:
        if n == -1 and nullable:
            return None, pos
        raise ProtocolError(f"null or negative-length {what} where not allowed")
    return n, pos


def _write_length(n: int | None, out: list, compact: bool, st: struct.Struct) -> None:
    """The matching prefix; ``None`` writes null."""
    if compact:
        _write_uvarint(0 if n is None else n + 1, out)
    else:
        out.append(st.pack(-1 if n is None else n))


def _fixed(st: struct.Struct) -> tuple[Enc, Dec]:
    pack, unpack, size = st.pack, st.unpack_from, st.size

    def enc(v: Any, out: list) -> None:
        out.append(pack(v))

    def dec(buf: bytes, pos: int) -> tuple[Any, int]:
        if pos + size > len(buf):
            raise ProtocolError("fixed-width field runs past the end of the frame")
        return unpack(buf, pos)[0], pos + size

    return enc, dec


def _bool() -> tuple[Enc, Dec]:
    def enc(v: Any, out: list) -> None:
        out.append(b"\x01" if v else b"\x00")

    def dec(buf: bytes, pos: int) -> tuple[Any, int]:
        if pos >= len(buf):
            raise ProtocolError("bool runs past the end of the frame")
        return buf[pos] != 0, pos + 1

    return enc, dec


def _uuid() -> tuple[Enc, Dec]:
    def enc(v: Any, out: list) -> None:
        raw = v.bytes if isinstance(v, uuid.UUID) else bytes(v or b"\x00" * 16)
        if len(raw) != 16:
            raise ProtocolError("uuid must be 16 bytes")
        out.append(raw)

    def dec(buf: bytes, pos: int) -> tuple[Any, int]:
        return _take(buf, pos, 16)

    return enc, dec


def _string(nullable: bool, compact: bool) -> tuple[Enc, Dec]:
    def enc(v: Any, out: list) -> None:
        if v is None:
            if nullable:
                _write_length(None, out, compact, _I16)
                return
            v = ""
        raw = v.encode() if isinstance(v, str) else bytes(v)
        if not compact and len(raw) > 32767:
            raise ProtocolError("string longer than 32767 bytes")
        _write_length(len(raw), out, compact, _I16)
        out.append(raw)

    def dec(buf: bytes, pos: int) -> tuple[Any, int]:
        n, pos = _read_length(buf, pos, compact, _I16, "string", nullable)
        if n is None:
            return None, pos
        raw, pos = _take(buf, pos, n)
        try:
            return raw.decode(), pos
        except UnicodeDecodeError:
            raise ProtocolError("string is not valid UTF-8") from None

    return enc, dec


def _bytes(nullable: bool, compact: bool, records: bool = False) -> tuple[Enc, Dec]:
    def enc(v: Any, out: list) -> None:
        if v is None:
            if nullable or records:
                _write_length(None, out, compact, _I32)
                return
            v = b""
        _write_length(len(v), out, compact, _I32)
        if records and not isinstance(v, bytes | bytearray | memoryview):
            out.append(v)  # an opaque chunk (segment slice) the caller sends itself
        else:
            out.append(v if isinstance(v, bytes) else bytes(v))

    def dec(buf: bytes, pos: int) -> tuple[Any, int]:
        n, pos = _read_length(buf, pos, compact, _I32, "bytes", nullable or records)
        if n is None:
            return None, pos
        return _take(buf, pos, n)

    return enc, dec


# ---------------------------------------------------------------------- compiled structs
#: Array elements the request being decoded on this thread may still carry (None: no bound).
_budget = threading.local()
_cache: dict[tuple[int, int, bool], tuple[Enc, Dec]] = {}


def _field_codec(ftype: str, sub: list | None, version: int, nullable: bool,
                 compact: bool) -> tuple[Enc, Dec]:
    if ftype.startswith("[]"):
        etype = ftype[2:]
        eenc, edec = _field_codec(etype, sub, version, False, compact)

        def enc(v: Any, out: list) -> None:
            if v is None:
                if nullable:
                    _write_length(None, out, compact, _I32)
                    return
                v = ()
            _write_length(len(v), out, compact, _I32)
            for item in v:
                eenc(item, out)

        def dec(buf: bytes, pos: int) -> tuple[Any, int]:
            n, pos = _read_length(buf, pos, compact, _I32, "array", nullable)
            if n is None:
                return None, pos
            if n > len(buf) - pos:
                raise ProtocolError(f"array of {n} elements cannot fit in the frame")
            left = getattr(_budget, "left", None)
            if left is not None:
                if n > left:
                    raise ProtocolError("request carries more array elements than the "
                                        f"server allows ({_budget.limit})")
                _budget.left = left - n
            items = []
            for _ in range(n):
                item, pos = edec(buf, pos)
                items.append(item)
            return items, pos

        return enc, dec
    if ftype == "struct":
        assert sub is not None
        senc, sdec = _compile(sub, version, compact)
        if not nullable:
            return senc, sdec
        return _nullable_struct(senc, sdec)
    if ftype in _FIXED:
        return _fixed(_FIXED[ftype])
    if ftype == "bool":
        return _bool()
    if ftype == "string":
        return _string(nullable, compact)
    if ftype == "bytes":
        return _bytes(nullable, compact)
    if ftype == "records":
        return _bytes(True, compact, records=True)
    if ftype == "uuid":
        return _uuid()
    raise ProtocolError(f"unknown schema type {ftype}")


def _nullable_struct(senc: Enc, sdec: Dec) -> tuple[Enc, Dec]:
    """A nullable struct field: an int8 marker (-1 null, 1 present) before the struct."""
    def enc(v: Any, out: list) -> None:
        if v is None:
            out.append(b"\xff")
        else:
            out.append(b"\x01")
            senc(v, out)

    def dec(buf: bytes, pos: int) -> tuple[Any, int]:
        marker = _I8.unpack_from(buf, pos)[0]
        if marker < 0:
            return None, pos + 1
        return sdec(buf, pos + 1)

    return enc, dec


def _default(ftype: str, default: Any, nullable: bool) -> Any:
    if default is not None:
        return default
    if nullable:
        return None
    if ftype.startswith("[]"):
        return []
    if ftype == "struct":
        return {}
    return _ZERO[ftype]


def _compile(fields: list, version: int, compact: bool) -> tuple[Enc, Dec]:
    key = (id(fields), version, compact)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    plain: list[tuple[str, Enc, Dec, Any, bool]] = []
    tagged: dict[int, tuple[str, Enc, Dec, Any, bool]] = {}
    for name, ftype, versions, nullable_v, tag, tagged_v, default, sub in fields:
        if tag is not None:
            if not compact or not _in(version, tagged_v):
                continue
        elif not _in(version, versions):
            continue
        nullable = _in(version, nullable_v)
        enc, dec = _field_codec(ftype, sub, version, nullable, compact)
        entry = (name, enc, dec, _default(ftype, default, nullable), nullable)
        if tag is not None:
            tagged[tag] = entry
        else:
            plain.append(entry)
    tags_sorted = sorted(tagged.items())

    def enc_struct(v: Any, out: list) -> None:
        get = v.get if v else {}.get
        for name, enc, _dec, dflt, nullable in plain:
            val = get(name, _MISSING)
            if val is _MISSING or (val is None and not nullable):
                val = dflt
            enc(val, out)
        if compact:
            present = []
            for tag, (name, enc, _dec, dflt, _n) in tags_sorted:
                val = get(name, dflt)
                if val is not None and val != dflt:
                    part: list = []
                    enc(val, part)
                    data = b"".join(part)
                    present.append((tag, data))
            _write_uvarint(len(present), out)
            for tag, data in present:
                _write_uvarint(tag, out)
                _write_uvarint(len(data), out)
                out.append(data)

    def dec_struct(buf: bytes, pos: int) -> tuple[Any, int]:
        d: dict[str, Any] = {}
        for name, _enc, dec, _dflt, _n in plain:
            d[name], pos = dec(buf, pos)
        if compact:
            n, pos = _read_uvarint(buf, pos)
            for _ in range(n):
                tag, pos = _read_uvarint(buf, pos)
                size, pos = _read_uvarint(buf, pos)
                end = pos + size
                if end > len(buf):
                    raise ProtocolError("tagged field runs past the end of the frame")
                entry = tagged.get(tag)
                if entry is not None:
                    val, p2 = entry[2](buf[:end], pos)
                    if p2 != end:
                        raise ProtocolError(f"tagged field {tag} has the wrong size")
                    d[entry[0]] = val
                pos = end
            for _tag, (name, _e, _d, dflt, _n) in tags_sorted:
                d.setdefault(name, dflt)
        return d, pos

    _cache[key] = (enc_struct, dec_struct)
    return enc_struct, dec_struct


def _schema(api_key: int, kind: str) -> dict:
    name = API_NAMES.get(api_key)
    if name is None:
        raise UnsupportedVersionError(f"unknown api key {api_key}")
    return SCHEMAS[name + kind]


def _codec(api_key: int, version: int, kind: str) -> tuple[Enc, Dec, bool]:
    s = _schema(api_key, kind)
    lo, hi = s["valid"]
    if not lo <= version <= hi:
        raise UnsupportedVersionError(f"{API_NAMES[api_key]} v{version} is not supported")
    flexible = s["flexible"] is not None and version >= s["flexible"]
    enc, dec = _compile(s["fields"], version, flexible)
    return enc, dec, flexible


def encode_struct(name: str, version: int, body: dict) -> bytes:
    """Encode a named schema (e.g. ConsumerProtocolSubscription) without any header."""
    s = SCHEMAS[name]
    enc, _ = _compile(s["fields"], version, False)
    out: list = []
    enc(body, out)
    return b"".join(out)


def decode_struct(name: str, version: int, data: bytes) -> dict:
    s = SCHEMAS[name]
    _, dec = _compile(s["fields"], version, False)
    try:
        body, _ = dec(bytes(data), 0)
    except ProtocolError:
        raise
    except (struct.error, IndexError, ValueError, OverflowError, MemoryError) as e:
        raise ProtocolError(f"malformed {name}: {e}") from None
    return body


# ---------------------------------------------------------------------- headers and frames
def peek_header(frame: bytes | memoryview) -> RequestHeader:
    """Decode the request header's fixed part (enough to answer even an unknown API)."""
    buf = bytes(frame[:4096]) if isinstance(frame, memoryview) else frame
    if len(buf) < 10:
        raise ProtocolError("request shorter than its header")
    api_key, version, corr = struct.unpack_from(">hhi", buf, 0)
    client_id, _ = _string(True, False)[1](buf, 8)
    return RequestHeader(api_key, version, corr, client_id)


def _request_flexible(api_key: int, version: int) -> bool:
    s = _schema(api_key, "Request")
    return s["flexible"] is not None and version >= s["flexible"]


def decode_request(frame: bytes | memoryview, max_elements: int | None = None) -> Request:
    """Decode a whole request frame (without its 4-byte size prefix).

    ``max_elements`` bounds the array elements of all arrays in the request together, so a
    small frame of empty entries cannot expand into millions of dicts.
    """
    if max_elements is None:
        return _decode_request(frame)
    _budget.left = _budget.limit = max_elements
    try:
        return _decode_request(frame)
    finally:
        _budget.left = None


def _decode_request(frame: bytes | memoryview) -> Request:
    buf = bytes(frame)
    header = peek_header(buf)
    lo_hi = SUPPORTED_VERSIONS.get(header.api_key)
    if lo_hi is None or not lo_hi[0] <= header.api_version <= lo_hi[1]:
        raise UnsupportedVersionError(
            f"api {header.api_key} v{header.api_version} is not supported")
    try:
        _, dec, flexible = _codec(header.api_key, header.api_version, "Request")
        pos = 8
        cid_len = _I16.unpack_from(buf, pos)[0]
        pos += 2 + max(cid_len, 0)
        if flexible:  # request header v2: tagged fields after the client id
            pos = _skip_tagged(buf, pos)
        body, pos = dec(buf, pos)
    except ProtocolError:
        raise
    except (struct.error, IndexError, ValueError, OverflowError, MemoryError) as e:
        raise ProtocolError(f"malformed request: {e}") from None
    if pos != len(buf):
        raise ProtocolError(f"{len(buf) - pos} unexpected bytes after the request body")
    return Request(header, body)


def encode_request(api_key: int, api_version: int, correlation_id: int,
                   client_id: str | None, body: dict) -> bytes:
    """A whole request frame, size prefix included (for clients, tests and tools)."""
    enc, _, flexible = _codec(api_key, api_version, "Request")
    out: list = [struct.pack(">hhi", api_key, api_version, correlation_id)]
    _string(True, False)[0](client_id, out)
    if flexible:
        out.append(b"\x00")
    enc(body, out)
    data = b"".join(out)
    return _I32.pack(len(data)) + data


def _response_parts(api_key: int, api_version: int, correlation_id: int, body: dict) -> list:
    enc, _, flexible = _codec(api_key, api_version, "Response")
    out: list = [_I32.pack(correlation_id)]
    if flexible and api_key != 18:  # ApiVersions responses always use header v0
        out.append(b"\x00")
    enc(body, out)
    return out


def encode_response_chunks(api_key: int, api_version: int, correlation_id: int,
                           body: dict) -> list:
    """The response frame as a list: bytes, and opaque ``records`` objects left in place.

    Consecutive bytes are joined, so a fetch response is header bytes, then for each
    partition its slice object, then more bytes. The size prefix counts ``len()`` of every
    element.
    """
    parts = _response_parts(api_key, api_version, correlation_id, body)
    chunks: list = []
    run: list[bytes] = []
    total = 0
    for p in parts:
        total += len(p)
        if isinstance(p, bytes):
            run.append(p)
        else:
            if run:
                chunks.append(b"".join(run))
                run = []
            chunks.append(p)
    if run:
        chunks.append(b"".join(run))
    head = _I32.pack(total)
    if chunks and isinstance(chunks[0], bytes):
        chunks[0] = head + chunks[0]
    else:
        chunks.insert(0, head)
    return chunks


def encode_response(api_key: int, api_version: int, correlation_id: int, body: dict) -> bytes:
    """A whole response frame with its size prefix (all ``records`` must be bytes)."""
    parts = _response_parts(api_key, api_version, correlation_id, body)
    data = b"".join(p if isinstance(p, bytes) else bytes(p.read()) for p in parts)
    return _I32.pack(len(data)) + data


_RESPONSES: dict[int, str] = {s["api_key"]: n for n, s in SCHEMAS.items()
                              if n.endswith("Response") and s["api_key"] is not None}


def encode_refusal(api_key: int, api_version: int, correlation_id: int,
                   error_code: int) -> bytes | None:
    """A whole response frame carrying only a top-level ``error_code`` (every other field
    default, arrays empty), for an API or version the server does not serve. None when that
    response has no top-level error code in that version, or its layout is unknown."""
    name = _RESPONSES.get(api_key)
    if name is None:
        return None
    s = SCHEMAS[name]
    lo, hi = s["valid"]
    if not lo <= api_version <= hi or not any(
            f[0] == "error_code" and f[2] is not None and _in(api_version, f[2])
            for f in s["fields"]):
        return None
    flexible = s["flexible"] is not None and api_version >= s["flexible"]
    enc, _ = _compile(s["fields"], api_version, flexible)
    out: list = [_I32.pack(correlation_id)]
    if flexible and api_key != 18:
        out.append(b"\x00")
    enc({"error_code": error_code}, out)
    data = b"".join(out)
    return _I32.pack(len(data)) + data


def decode_response(api_key: int, api_version: int,
                    frame: bytes | memoryview) -> tuple[int, dict]:
    """(correlation id, body) of a response frame without its size prefix."""
    buf = bytes(frame)
    try:
        _, dec, flexible = _codec(api_key, api_version, "Response")
        if len(buf) < 4:
            raise ProtocolError("response shorter than its header")
        corr = _I32.unpack_from(buf, 0)[0]
        pos = 4
        if flexible and api_key != 18:
            pos = _skip_tagged(buf, pos)
        body, pos = dec(buf, pos)
    except ProtocolError:
        raise
    except (struct.error, IndexError, ValueError, OverflowError, MemoryError) as e:
        raise ProtocolError(f"malformed response: {e}") from None
    if pos != len(buf):
        raise ProtocolError(f"{len(buf) - pos} unexpected bytes after the response body")
    return corr, body
