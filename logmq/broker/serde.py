"""Turning user keys, values and headers into the bytes a record holds (one place)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["_to_bytes", "_norm_headers", "serialize_kv", "Serializer"]

Serializer = Callable[[Any], bytes | None]


def _to_bytes(v: Any, what: str) -> bytes | None:
    if v is None or isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, bytearray | memoryview):
        return bytes(v)
    raise TypeError(f"{what} must be bytes, str or None (or set a {what}_serializer), "
                    f"got {type(v).__name__}")


def _norm_headers(headers: Any) -> list[tuple[str, bytes | None]] | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    return [(str(k), _to_bytes(v, "header value")) for k, v in items]


def serialize_kv(kser: Serializer | None, vser: Serializer | None, key: Any,
                 value: Any) -> tuple[bytes | None, bytes | None]:
    """A record's key and value as bytes: through the producer's serializers if set, then
    str/bytearray/memoryview to bytes (the one copy of this rule every send path uses)."""
    k = kser(key) if kser is not None else key
    if k.__class__ is not bytes and k is not None:
        k = _to_bytes(k, "key")
    v = vser(value) if vser is not None else value
    if v.__class__ is not bytes and v is not None:
        v = _to_bytes(v, "value")
    return k, v
