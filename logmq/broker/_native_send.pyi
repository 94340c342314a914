"""Stub of the compiled send fast path (logmq/broker/_native_send.pyx)."""

from typing import Any

def send_fast(prod: Any, fast: tuple, topic: str, key: Any, value: Any,
              future: Any) -> Any: ...
