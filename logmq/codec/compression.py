"""Per-batch compression codecs, by Kafka's attribute ids.

gzip is always available (stdlib). lz4 (LZ4 frame format, as Kafka uses since KIP-57), zstd
and snappy need optional packages; a batch using one that is not installed raises
:class:`~logmq.errors.UnsupportedCompressionError` naming the package to install, rather than
failing obscurely. Decompression is capped so a small malicious batch cannot expand without
bound.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

from logmq.errors import ConfigError, CorruptRecordError, UnsupportedCompressionError

__all__ = ["NONE", "GZIP", "SNAPPY", "LZ4", "ZSTD", "codec_id", "compress", "decompress",
           "MAX_DECOMPRESSED"]

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4
_NAMES = {"none": NONE, "gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD}
_PACKAGES = {SNAPPY: "cramjam", LZ4: "lz4", ZSTD: "zstandard"}
#: Largest decompressed batch accepted (Kafka's own default limits are far below this).
MAX_DECOMPRESSED = 256 << 20
_XERIAL_MAGIC = b"\x82SNAPPY\x00"


def codec_id(codec: int | str | None) -> int:
    """Kafka's id for a codec given by name or id; ConfigError for anything else."""
    if codec is None:
        return NONE
    if isinstance(codec, int) and not isinstance(codec, bool):
        if codec in _NAMES.values():
            return codec
    elif isinstance(codec, str) and codec.lower() in _NAMES:
        return _NAMES[codec.lower()]
    raise ConfigError(f"unknown compression {codec!r}: use none, gzip, snappy, lz4 or zstd")


def _missing(codec: int) -> UnsupportedCompressionError:
    pkg = _PACKAGES[codec]
    return UnsupportedCompressionError(
        f"compression codec {codec} needs the '{pkg}' package (pip install {pkg})")


def compress(codec: int, data: bytes) -> bytes:
    if codec == NONE:
        return data
    if codec == GZIP:
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        return c.compress(data) + c.flush()
    if codec == LZ4:
        try:
            import lz4.frame
        except ImportError:
            raise _missing(codec) from None
        return lz4.frame.compress(data)
    if codec == ZSTD:
        try:
            import zstandard
        except ImportError:
            raise _missing(codec) from None
        return zstandard.ZstdCompressor().compress(data)
    if codec == SNAPPY:
        try:
            import cramjam
        except ImportError:
            raise _missing(codec) from None
        raw = bytes(cramjam.snappy.compress_raw(data))
        # xerial framing, which the Java client and librdkafka expect
        return _XERIAL_MAGIC + struct.pack(">ii", 1, 1) + struct.pack(">i", len(raw)) + raw
    raise ConfigError(f"unknown compression codec {codec}")


def _bounded_zlib(data: bytes, wbits: int, limit: int) -> bytes:
    d = zlib.decompressobj(wbits)
    out = d.decompress(data, limit + 1)
    if len(out) > limit or d.unconsumed_tail:
        raise CorruptRecordError("decompressed batch exceeds the size limit")
    return out


def _snappy_raw(cramjam: Any, block: bytes, limit: int) -> bytes:
    """Decompress one raw snappy block after checking the length its preamble declares.

    The preamble (a uvarint) is the uncompressed size; a decoder allocates it up front, so a
    few bytes could otherwise ask for gigabytes.
    """
    size = shift = pos = 0
    while True:
        if pos >= len(block) or shift > 28:
            raise CorruptRecordError("snappy block has a malformed length preamble")
        b = block[pos]
        pos += 1
        size |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    if size > limit:
        raise CorruptRecordError("decompressed batch exceeds the size limit")
    return bytes(cramjam.snappy.decompress_raw(block))


def decompress(codec: int, data: bytes | bytearray | memoryview, limit: int = MAX_DECOMPRESSED) -> bytes:
    """Uncompressed payload of a batch, refusing (CorruptRecordError) more than ``limit`` bytes."""
    try:
        if codec == GZIP:
            return _bounded_zlib(bytes(data), 47, limit)  # gzip or zlib header, auto-detected
        if codec == LZ4:
            try:
                import lz4.frame
            except ImportError:
                raise _missing(codec) from None
            dctx = lz4.frame.LZ4FrameDecompressor()
            out = dctx.decompress(bytes(data), max_length=limit + 1)
            if len(out) > limit:
                raise CorruptRecordError("decompressed batch exceeds the size limit")
            return out
        if codec == ZSTD:
            try:
                import zstandard
            except ImportError:
                raise _missing(codec) from None
            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bytes(data)))
            out = reader.read(limit + 1)
            if len(out) > limit:
                raise CorruptRecordError("decompressed batch exceeds the size limit")
            return out
        if codec == SNAPPY:
            try:
                import cramjam
            except ImportError:
                raise _missing(codec) from None
            raw = bytes(data)
            if raw.startswith(_XERIAL_MAGIC):
                pos = 16
                chunks = []
                left = limit
                while pos < len(raw):
                    (n,) = struct.unpack_from(">i", raw, pos)
                    pos += 4
                    if n < 0 or pos + n > len(raw):
                        raise CorruptRecordError("xerial snappy chunk runs past the batch")
                    chunk = _snappy_raw(cramjam, raw[pos : pos + n], left)
                    left -= len(chunk)
                    chunks.append(chunk)
                    pos += n
                return b"".join(chunks)
            return _snappy_raw(cramjam, raw, limit)
        if codec == NONE:
            return bytes(data)
    except (UnsupportedCompressionError, CorruptRecordError):
        raise
    except Exception as e:  # every codec library has its own error types
        raise CorruptRecordError(f"cannot decompress batch (codec {codec}): {e}") from None
    raise CorruptRecordError(f"unknown compression codec {codec} in batch attributes")
