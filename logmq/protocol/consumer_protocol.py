"""Kafka's consumer protocol bytes: the subscription and assignment inside group messages.

JoinGroup carries each member's subscription as opaque ``metadata`` bytes and SyncGroup the
leader's ``assignment`` bytes; the coordinator never looks inside. Consumers (embedded ones
and Kafka clients alike) encode them as ConsumerProtocolSubscription / Assignment: an int16
version, then the struct in that version's classic (non-flexible) encoding. Decoders read the
fields they know and ignore what newer versions append, as Kafka's own do.
"""

from __future__ import annotations

import struct
from typing import Any

from logmq.errors import ProtocolError

__all__ = ["encode_subscription", "decode_subscription", "encode_assignment",
           "decode_assignment"]

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ProtocolError("consumer protocol data is truncated")
        b = self.buf[self.pos : self.pos + n]
        self.pos += n
        return b

    def i16(self) -> int:
        return _I16.unpack(self._take(2))[0]

    def i32(self) -> int:
        return _I32.unpack(self._take(4))[0]

    def string(self, nullable: bool = False) -> str | None:
        n = self.i16()
        if n < 0:
            if nullable:
                return None
            raise ProtocolError("null string where a string is required")
        try:
            return self._take(n).decode()
        except UnicodeDecodeError:
            raise ProtocolError("string is not UTF-8") from None

    def nbytes(self) -> bytes | None:
        n = self.i32()
        return None if n < 0 else self._take(n)

    def count(self) -> int:
        n = self.i32()
        if n < -1 or n > len(self.buf):
            raise ProtocolError(f"bad array length {n}")
        return max(n, 0)

    def at_end(self) -> bool:
        return self.pos >= len(self.buf)


def _string(s: str | None) -> bytes:
    if s is None:
        return _I16.pack(-1)
    b = s.encode()
    return _I16.pack(len(b)) + b


def _bytes(b: bytes | None) -> bytes:
    return _I32.pack(-1) if b is None else _I32.pack(len(b)) + b


def _partitions(parts: dict[str, list[int]]) -> bytes:
    out = [_I32.pack(len(parts))]
    for topic, ps in parts.items():
        out.append(_string(topic))
        out.append(_I32.pack(len(ps)))
        out.extend(_I32.pack(p) for p in ps)
    return b"".join(out)


def _read_partitions(r: _Reader) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for _ in range(r.count()):
        topic = r.string()
        assert topic is not None
        out[topic] = [r.i32() for _ in range(r.count())]
    return out


def encode_subscription(topics: list[str], user_data: bytes | None = None,
                        owned_partitions: dict[str, list[int]] | None = None,
                        version: int = 1, generation_id: int = -1,
                        rack_id: str | None = None) -> bytes:
    if not 0 <= version <= 3:
        raise ProtocolError(f"subscription version {version} is not 0-3")
    out = [_I16.pack(version), _I32.pack(len(topics))]
    out.extend(_string(t) for t in topics)
    out.append(_bytes(user_data))
    if version >= 1:
        out.append(_partitions(owned_partitions or {}))
    if version >= 2:
        out.append(_I32.pack(generation_id))
    if version >= 3:
        out.append(_string(rack_id))
    return b"".join(out)


def decode_subscription(data: bytes | None) -> dict[str, Any]:
    """Fields: version, topics, user_data, owned_partitions, generation_id, rack_id."""
    out: dict[str, Any] = {"version": 0, "topics": [], "user_data": None,
                           "owned_partitions": {}, "generation_id": -1, "rack_id": None}
    if not data:
        return out
    r = _Reader(bytes(data))
    v = out["version"] = r.i16()
    if v < 0:
        raise ProtocolError(f"bad subscription version {v}")
    out["topics"] = [r.string() for _ in range(r.count())]
    out["user_data"] = r.nbytes()
    if v >= 1 and not r.at_end():
        out["owned_partitions"] = _read_partitions(r)
    if v >= 2 and not r.at_end():
        out["generation_id"] = r.i32()
    if v >= 3 and not r.at_end():
        out["rack_id"] = r.string(nullable=True)
    return out


def encode_assignment(partitions: dict[str, list[int]], user_data: bytes | None = None,
                      version: int = 0) -> bytes:
    if not 0 <= version <= 3:
        raise ProtocolError(f"assignment version {version} is not 0-3")
    return _I16.pack(version) + _partitions(partitions) + _bytes(user_data)


def decode_assignment(data: bytes | None) -> dict[str, Any]:
    """Fields: version, partitions ({topic: [partition, ...]}), user_data."""
    if not data:
        return {"version": 0, "partitions": {}, "user_data": None}
    r = _Reader(bytes(data))
    v = r.i16()
    if v < 0:
        raise ProtocolError(f"bad assignment version {v}")
    parts = _read_partitions(r)
    user = r.nbytes() if not r.at_end() else None
    return {"version": v, "partitions": parts, "user_data": user}
