"""Encryption at rest: one stored RecordBatch v2's records section sealed with AES-256-GCM.

Only the records section is sealed. The 61-byte header stays readable, so offsets, indexes,
recovery, retention, producer-id state and ``logmq verify`` work without any key, and the
CRC-32C is recomputed over the sealed bytes so integrity is still checked without the key.
The full format and the threat model are in docs/encryption.md; in short::

    header (61 bytes, as Kafka's)  attributes |= SEALED_MASK, batchLength and crc recomputed
    records section:
      u8   envelope version (1)
      u8   key id length n (1..255)
      n    key id (ASCII)
      12   nonce (fresh from os.urandom for every seal)
      ...  ciphertext of the original records section (compressed as the header says)
      16   GCM tag

The associated data binds the ciphertext to the header fields that never change once a batch
is stored (base offset, magic, attributes, lastOffsetDelta, timestamps, producer fields,
record count) and to the envelope prefix: a header edited on disk, or a sealed section moved
to another offset, fails to open instead of decrypting to records under the wrong offsets.
The leader epoch, batchLength and CRC are left out (derived or not meaningful here).

Sealing happens after offsets are assigned, which is why the base offset can be authenticated;
compaction keeps base offsets, and when it re-encodes a thinned batch it seals the new batch
afresh (new nonce). Opening returns the original plaintext batch with its CRC recomputed, so
what a client fetches is an ordinary batch.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import struct
import threading
import time
import tomllib
from collections.abc import Mapping
from typing import Any

from logmq.codec.batch import (
    CRC_START,
    HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    crc32c,
    parse_header,
)
from logmq.errors import ConfigError, CorruptRecordError, EncryptionKeyError

__all__ = [
    "SEALED_MASK",
    "ALGORITHM",
    "KEY_ENV",
    "KeyRing",
    "Sealer",
    "is_sealed",
    "sealed_key_id",
    "check_sealed_framing",
    "new_key",
]

#: attribute bit 14 marks a sealed batch (Kafka defines bits 0-6; the produce validator
#: refuses undefined bits from clients, so only the broker can set it)
SEALED_MASK = 0x4000
ALGORITHM = "aes-256-gcm"
#: ``id:BASE64[,id:BASE64...]``; the first key listed is the active one
KEY_ENV = "LOGMQ_ENCRYPTION_KEYS"
ENVELOPE_VERSION = 1
NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32
_AAD_PREFIX = b"logmq-seal/1"
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_log = logging.getLogger("logmq.storage")

_INTO = False  # cryptography >= 46 has encrypt_into / decrypt_into (set by _load_crypto)

#: cryptography's InvalidTag once a key ring is made (lazy: a data directory without
#: encrypted topics never imports cryptography)
_INVALID_TAG: tuple[type[BaseException], ...] = ()


def _load_crypto() -> Any:
    global _INTO, _INVALID_TAG
    try:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:  # pragma: no cover - CI installs it
        raise ConfigError("encryption at rest needs the 'cryptography' package: "
                          "pip install 'logmq[encryption]'") from None
    _INTO = hasattr(AESGCM, "encrypt_into") and hasattr(AESGCM, "decrypt_into")
    _INVALID_TAG = (InvalidTag,)
    return AESGCM
#: a partition's key errors are logged at most once per this many seconds (clients retry)
_LOG_EVERY_S = 60.0


def new_key() -> str:
    """A fresh random 256-bit key, base64-encoded as key files and ``LOGMQ_ENCRYPTION_KEYS``
    hold it."""
    return base64.b64encode(os.urandom(KEY_SIZE)).decode()


def is_sealed(h: BatchHeader) -> bool:
    return bool(h.attributes & SEALED_MASK)


def _envelope(buf: bytes | bytearray | memoryview, pos: int, h: BatchHeader
              ) -> tuple[str, int]:
    """(key id, position of the nonce) of the sealed batch at ``pos``; checks the framing."""
    start = pos + HEADER_SIZE
    end = pos + h.size
    if end - start < 2 + NONCE_SIZE + TAG_SIZE or end > len(buf):
        raise CorruptRecordError("sealed batch too short for its envelope", position=pos)
    version, n = buf[start], buf[start + 1]
    if version != ENVELOPE_VERSION:
        raise CorruptRecordError(f"unknown sealed-batch envelope version {version}",
                                 position=pos)
    if n == 0 or end - start < 2 + n + NONCE_SIZE + TAG_SIZE:
        raise CorruptRecordError(f"sealed batch with a bad key id length {n}", position=pos)
    try:
        kid = bytes(buf[start + 2 : start + 2 + n]).decode("ascii")
    except UnicodeDecodeError:
        raise CorruptRecordError("sealed batch with a non-ASCII key id", position=pos) from None
    return kid, start + 2 + n


def sealed_key_id(buf: bytes | bytearray | memoryview, pos: int = 0,
                  h: BatchHeader | None = None) -> str | None:
    """The key id a stored batch is sealed under, None for a plain batch."""
    h = parse_header(buf, pos) if h is None else h
    if not is_sealed(h):
        return None
    return _envelope(buf, pos, h)[0]


def check_sealed_framing(buf: bytes | bytearray | memoryview, pos: int, h: BatchHeader) -> str:
    """What ``logmq verify`` can check of a sealed batch without its key; returns the key id."""
    return _envelope(buf, pos, h)[0]


def _aad(buf: bytes | bytearray | memoryview, pos: int, envelope: bytes) -> bytes:
    # base offset, magic, attributes..recordCount, envelope prefix (see the module docstring)
    return b"".join((_AAD_PREFIX, bytes(buf[pos : pos + 8]), bytes(buf[pos + 16 : pos + 17]),
                     bytes(buf[pos + CRC_START : pos + HEADER_SIZE]), envelope))


def _decode_key(kid: str, raw: Any, where: str) -> bytes:
    if not isinstance(raw, str):
        raise ConfigError(f"{where}: key {kid!r} must be a base64 string")
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: key {kid!r} is not valid base64") from None
    if len(key) != KEY_SIZE:
        raise ConfigError(f"{where}: key {kid!r} is {len(key)} bytes, AES-256 needs {KEY_SIZE}")
    return key


def _check_kid(kid: str, where: str) -> None:
    if not kid or len(kid) > 255 or not kid.isascii() or not kid.isprintable() or "," in kid:
        raise ConfigError(f"{where}: key id {kid!r} must be 1-255 printable ASCII characters "
                          "without a comma")


class KeyRing:
    """Key id -> 256-bit key, and the active id new batches are sealed under.

    Rotation: add a key, make it active (the file's ``active`` or first in the variable),
    keep the old ones until the cleaner has re-sealed every segment (``logmq`` logs and
    counts what it re-sealed); a batch whose key is gone raises EncryptionKeyError.
    """

    def __init__(self, keys: Mapping[str, bytes], active: str | None = None) -> None:
        AESGCM = _load_crypto()
        if not keys:
            raise ConfigError("an encryption key ring needs at least one key")
        for kid, key in keys.items():
            _check_kid(kid, "key ring")
            if len(key) != KEY_SIZE:
                raise ConfigError(f"key {kid!r} is {len(key)} bytes, AES-256 needs {KEY_SIZE}")
        self.active = active if active is not None else next(iter(keys))
        if self.active not in keys:
            raise ConfigError(f"active key {self.active!r} is not in the key ring")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    def cipher(self, kid: str) -> Any:
        c = self._ciphers.get(kid)
        if c is None:
            raise EncryptionKeyError(f"no encryption key with id {kid!r} (the key ring holds "
                                     f"{', '.join(sorted(self._ciphers))})", key_id=kid)
        return c

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> KeyRing:
        """JSON or TOML (by the ``.toml`` suffix): ``{"active": ID, "keys": {ID: BASE64}}``."""
        where = os.fspath(path)
        try:
            with open(path, "rb") as f:
                raw = f.read()
            doc = (tomllib.loads(raw.decode()) if where.endswith(".toml")
                   else json.loads(raw.decode()))
        except OSError as e:
            raise ConfigError(f"{where}: cannot read the encryption key file: "
                              f"{e.strerror or e}") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise ConfigError(f"{where}: not a valid encryption key file: {e}") from None
        try:
            if os.stat(path).st_mode & 0o077:  # the keys are the whole protection
                _log.warning("encryption key file %s can be read by other users: chmod 600 it",
                             where)
        except OSError:
            pass
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, dict) or not keys:
            raise ConfigError(f"{where}: expected {{\"active\": ID, \"keys\": {{ID: BASE64}}}}")
        parsed = {}
        for kid, v in keys.items():
            _check_kid(kid, where)
            parsed[kid] = _decode_key(kid, v, where)
        active = doc.get("active")
        if active is not None and not isinstance(active, str):
            raise ConfigError(f"{where}: active must be a key id")
        if active is not None and active not in parsed:
            raise ConfigError(f"{where}: active key {active!r} is not among the keys")
        return cls(parsed, active)

    @classmethod
    def from_env_value(cls, value: str, where: str = KEY_ENV) -> KeyRing:
        keys: dict[str, bytes] = {}
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            kid, sep, b64 = item.partition(":")
            if not sep:
                raise ConfigError(f"{where}: expected ID:BASE64[,ID:BASE64...]")
            _check_kid(kid, where)
            keys[kid] = _decode_key(kid, b64, where)
        return cls(keys)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None,
             env: Mapping[str, str] | None = None) -> KeyRing | None:
        """The key file at ``path`` if set, else ``LOGMQ_ENCRYPTION_KEYS`` of ``env``, else
        None (no encryption possible: sealed topics refuse appends and reads)."""
        if path is not None:
            return cls.from_file(path)
        value = (env or {}).get(KEY_ENV)
        if value:
            return cls.from_env_value(value)
        return None


_TLS = threading.local()
#: scratch buffers larger than this are not kept between reads
_SCRATCH_MAX = 16 << 20


def _scratch(n: int, which: int) -> bytearray:
    """A per-thread buffer of at least ``n`` bytes (two of them: the raw read, the output).
    Reusing them keeps a sealed fetch from faulting in fresh pages on every read."""
    bufs = getattr(_TLS, "bufs", None)
    if bufs is None:
        bufs = _TLS.bufs = [bytearray(), bytearray()]
    buf: bytearray = bufs[which]
    if len(buf) < n:
        buf = bytearray(max(n, 1 << 20))
        if n <= _SCRATCH_MAX:
            bufs[which] = buf
    return buf


class Sealer:
    """Seals and opens the batches of one partition; ``key_id`` is what new batches get."""

    def __init__(self, ring: KeyRing | None, key_id: str | None, where: str) -> None:
        self.ring = ring
        self.where = where
        self._key_id = key_id
        self._logged = -_LOG_EVERY_S
        self._ciphers: dict[str, Any] = {}
        self._sealing: dict[str, tuple[Any, bytes]] = {}

    def _fail(self, e: EncryptionKeyError) -> EncryptionKeyError:
        """Log (rate-limited: a Kafka client retries KAFKA_STORAGE_ERROR) and return ``e``."""
        now = time.monotonic()
        if now - self._logged >= _LOG_EVERY_S:
            self._logged = now
            _log.error("encryption at rest: %s", e)
        return e

    def _cipher(self, kid: str) -> Any:
        try:
            c = self._ring().cipher(kid)
        except EncryptionKeyError as e:
            raise self._fail(e) from None
        self._ciphers[kid] = c
        return c

    @property
    def key_id(self) -> str:
        """The id new batches are sealed under (the topic's, else the ring's active one)."""
        if self.ring is None:
            raise self._fail(EncryptionKeyError(
                f"{self.where} is encrypted but no encryption key is configured "
                f"(encryption_key_file or {KEY_ENV})"))
        return self._key_id or self.ring.active

    def _ring(self) -> KeyRing:
        if self.ring is None:
            raise self._fail(EncryptionKeyError(
                f"{self.where} holds sealed batches but no encryption key is configured "
                f"(encryption_key_file or {KEY_ENV})"))
        return self.ring

    @property
    def overhead(self) -> int:
        """Bytes sealing adds to each batch."""
        return 2 + len(self.key_id) + NONCE_SIZE + TAG_SIZE

    def seal(self, batch: bytes | bytearray | memoryview) -> bytes:
        """The sealed form of one whole, offset-assigned plain batch."""
        kid = self.key_id
        cipher, env = self._sealing.get(kid) or self._sealing_for(kid)
        view = memoryview(batch)
        rec = view[HEADER_SIZE:]
        ne = HEADER_SIZE + len(env)
        total = ne + NONCE_SIZE + len(rec) + TAG_SIZE
        out = bytearray(total)
        out[:HEADER_SIZE] = view[:HEADER_SIZE]
        _U16.pack_into(out, 21, _U16.unpack_from(out, 21)[0] | SEALED_MASK)
        out[HEADER_SIZE:ne] = env
        nonce = os.urandom(NONCE_SIZE)
        out[ne : ne + NONCE_SIZE] = nonce
        aad = _aad(out, 0, env)
        if _INTO:
            cipher.encrypt_into(nonce, rec, aad, memoryview(out)[ne + NONCE_SIZE :])
        else:  # pragma: no cover - cryptography < 46
            out[ne + NONCE_SIZE :] = cipher.encrypt(nonce, bytes(rec), aad)
        _I32.pack_into(out, 8, total - LOG_OVERHEAD)
        _U32.pack_into(out, 17, crc32c(memoryview(out)[CRC_START:]))
        return bytes(out)

    def _sealing_for(self, kid: str) -> tuple[Any, bytes]:
        kb = kid.encode("ascii")
        entry = (self._cipher(kid), bytes((ENVELOPE_VERSION, len(kb))) + kb)
        self._sealing[kid] = entry
        return entry

    def open(self, buf: bytes | bytearray | memoryview, pos: int = 0,
             h: BatchHeader | None = None) -> bytes:
        """The plain batch (CRC recomputed) of the batch at ``pos``; a plain one is copied."""
        h = parse_header(buf, pos) if h is None else h
        if not is_sealed(h):
            return bytes(memoryview(buf)[pos : pos + h.size])
        return b"".join(self._open_parts(memoryview(buf), pos, h))

    def _open_into(self, view: memoryview, pos: int, h: BatchHeader, out: memoryview,
                   o: int) -> int:
        """Open the sealed batch at ``pos`` of ``view`` into ``out`` at ``o``; its size."""
        kid, npos = _envelope(view, pos, h)
        cipher = self._ciphers.get(kid) or self._cipher(kid)
        aad = _aad(view, pos, bytes(view[pos + HEADER_SIZE : npos]))
        nonce = bytes(view[npos : npos + NONCE_SIZE])
        sealed = view[npos + NONCE_SIZE : pos + h.size]
        size = HEADER_SIZE + len(sealed) - TAG_SIZE
        out[o : o + HEADER_SIZE] = view[pos : pos + HEADER_SIZE]
        try:
            if _INTO:  # cryptography >= 46: straight into the output, no copy
                cipher.decrypt_into(nonce, sealed, aad, out[o + HEADER_SIZE : o + size])
            else:  # pragma: no cover - older cryptography
                out[o + HEADER_SIZE : o + size] = cipher.decrypt(nonce, bytes(sealed), aad)
        except _INVALID_TAG:
            raise self._fail(EncryptionKeyError(
                f"batch at offset {h.base_offset} of {self.where} does not open with key "
                f"{kid!r}: a wrong key under that id, or the file was altered",
                key_id=kid)) from None
        _U16.pack_into(out, o + 21, h.attributes & ~SEALED_MASK)
        _I32.pack_into(out, o + 8, size - LOG_OVERHEAD)
        _U32.pack_into(out, o + 17, crc32c(out[o + CRC_START : o + size]))
        return size

    def _open_parts(self, view: memoryview, pos: int, h: BatchHeader) -> tuple[bytes, bytes]:
        """(header, records) of the opened batch at ``pos``: the caller joins them, once for
        a whole fetch (one large allocation, as a plain read makes, instead of several)."""
        kid, npos = _envelope(view, pos, h)
        cipher = self._ciphers.get(kid) or self._cipher(kid)
        aad = _aad(view, pos, bytes(view[pos + HEADER_SIZE : npos]))
        try:
            plain = cipher.decrypt(bytes(view[npos : npos + NONCE_SIZE]),
                                   view[npos + NONCE_SIZE : pos + h.size], aad)
        except _INVALID_TAG:
            raise self._fail(EncryptionKeyError(
                f"batch at offset {h.base_offset} of {self.where} does not open with key "
                f"{kid!r}: a wrong key under that id, or the file was altered",
                key_id=kid)) from None
        hdr = bytearray(view[pos : pos + HEADER_SIZE])
        _U16.pack_into(hdr, 21, h.attributes & ~SEALED_MASK)
        _I32.pack_into(hdr, 8, HEADER_SIZE + len(plain) - LOG_OVERHEAD)
        _U32.pack_into(hdr, 17, crc32c(plain, crc32c(memoryview(hdr)[CRC_START:])))
        return bytes(hdr), plain

    def open_all(self, data: bytes | bytearray | memoryview) -> bytes:
        """Every batch of ``data`` opened; a truncated trailing batch (a fetch that ends
        inside one) is kept if plain and dropped if sealed (it cannot be authenticated)."""
        view = memoryview(data)
        n = len(view)
        out = _scratch(n, 1)
        ov = memoryview(out)
        o = pos = 0
        while pos < n:
            if n - pos < HEADER_SIZE:
                ov[o : o + n - pos] = view[pos:]
                o += n - pos
                break
            h = parse_header(view, pos)
            if pos + h.size > n:
                if not is_sealed(h):
                    ov[o : o + n - pos] = view[pos:]
                    o += n - pos
                break
            if is_sealed(h):
                o += self._open_into(view, pos, h, ov, o)
            else:
                ov[o : o + h.size] = view[pos : pos + h.size]
                o += h.size
            pos += h.size
        result = bytes(ov[:o])  # the one allocation a plain read makes too
        ov.release()
        return result

    def read_open(self, fd: int, length: int, position: int) -> bytes:
        """pread ``length`` bytes at ``position`` of ``fd`` and open them (into per-thread
        scratch buffers, so a sealed read allocates only its result, as a plain one does)."""
        raw = _scratch(length, 0)
        rv = memoryview(raw)[:length]
        try:
            got = os.preadv(fd, [rv], position)
            return self.open_all(rv[:got])
        finally:
            rv.release()

    def needs_reseal(self, buf: bytes | bytearray | memoryview, pos: int, h: BatchHeader
                     ) -> bool:
        """Whether the batch is not (yet) sealed under the key new batches get."""
        return sealed_key_id(buf, pos, h) != self.key_id

    def reseal(self, buf: bytes | bytearray | memoryview, pos: int, h: BatchHeader) -> bytes:
        """The batch at ``pos`` sealed under the current key (opened first if sealed)."""
        return self.seal(self.open(buf, pos, h))
