"""Turning user keys, values and headers into the bytes a record holds (one place)."""

from __future__ import annotations

from typing import Any

__all__ = ["_to_bytes", "_norm_headers"]


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
