"""Per-batch compression codecs, by Kafka's attribute ids.

gzip is always available (stdlib). lz4 (LZ4 frame format, as Kafka uses since KIP-57), zstd
and snappy need optional packages; a batch using one that is not installed raises
:class:`~logmq.errors.UnsupportedCompressionError` naming the package to install, rather than
failing obscurely. Decompression is capped so a small malicious batch cannot expand without
bound.
"""

from __future__ import annotations

import struct
import zlib

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


def _bounded_zlib(data: bytes, wbits: int) -> bytes:
    d = zlib.decompressobj(wbits)
    out = d.decompress(data, MAX_DECOMPRESSED + 1)
    if len(out) > MAX_DECOMPRESSED or d.unconsumed_tail:
        raise CorruptRecordError("decompressed batch exceeds the size limit")
    return out


def decompress(codec: int, data: bytes | bytearray | memoryview) -> bytes:
    try:
        if codec == GZIP:
            return _bounded_zlib(bytes(data), 47)  # gzip or zlib header, auto-detected
        if codec == LZ4:
            try:
                import lz4.frame
            except ImportError:
                raise _missing(codec) from None
            dctx = lz4.frame.LZ4FrameDecompressor()
            out = dctx.decompress(bytes(data), max_length=MAX_DECOMPRESSED + 1)
            if len(out) > MAX_DECOMPRESSED:
                raise CorruptRecordError("decompressed batch exceeds the size limit")
            return out
        if codec == ZSTD:
            try:
                import zstandard
            except ImportError:
                raise _missing(codec) from None
            d = zstandard.ZstdDecompressor().decompressobj()
            out = d.decompress(bytes(data))
            if len(out) > MAX_DECOMPRESSED:
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
                while pos < len(raw):
                    (n,) = struct.unpack_from(">i", raw, pos)
                    pos += 4
                    chunks.append(bytes(cramjam.snappy.decompress_raw(raw[pos : pos + n])))
                    pos += n
                return b"".join(chunks)
            return bytes(cramjam.snappy.decompress_raw(raw))
        if codec == NONE:
            return bytes(data)
    except (UnsupportedCompressionError, CorruptRecordError):
        raise
    except Exception as e:  # every codec library has its own error types
        raise CorruptRecordError(f"cannot decompress batch (codec {codec}): {e}") from None
    raise CorruptRecordError(f"unknown compression codec {codec} in batch attributes")
