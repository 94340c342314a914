"""Sans-I/O framing: bytes in, whole Kafka frames out.

A Kafka frame is an int32 size and that many bytes. The buffer checks the size as soon as
its 4 bytes arrive, so a client announcing a gigantic or negative frame is refused before the
server reads (or allocates) the body.
"""

from __future__ import annotations

import struct

from logmq.errors import ProtocolError

__all__ = ["FrameBuffer"]

_SIZE = struct.Struct(">i")


class FrameBuffer:
    """Accumulates received bytes; :meth:`next_frame` returns each complete frame once."""

    def __init__(self, max_frame_size: int = 100 * 1024 * 1024) -> None:
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos and self._pos >= len(self._buf) // 2:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data
        self._check()

    def _check(self) -> None:
        if len(self._buf) - self._pos >= 4:
            size = _SIZE.unpack_from(self._buf, self._pos)[0]
            if size < 0 or size > self.max_frame_size:
                raise ProtocolError(
                    f"frame size {size} is outside 0..{self.max_frame_size} bytes")

    def next_frame(self) -> bytes | None:
        avail = len(self._buf) - self._pos
        if avail < 4:
            return None
        size = _SIZE.unpack_from(self._buf, self._pos)[0]
        if size < 0 or size > self.max_frame_size:
            raise ProtocolError(f"frame size {size} is outside 0..{self.max_frame_size} bytes")
        if avail < 4 + size:
            return None
        start = self._pos + 4
        frame = bytes(self._buf[start : start + size])
        self._pos = start + size
        if self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        else:
            self._check()
        return frame

    @property
    def pending_size(self) -> int | None:
        """Size of the frame being received, once its size prefix is in (else None)."""
        if len(self._buf) - self._pos < 4:
            return None
        return int(_SIZE.unpack_from(self._buf, self._pos)[0])

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos
