"""Encryption at rest, storage side: which partitions seal, sealing appends, and re-sealing.

The cipher and the format are :mod:`logmq.codec.seal`; this module is the one place the
storage layer touches them. :class:`~logmq.storage.log.PartitionLog` asks :func:`sealer_for`
for its topic config's sealer (None for a plain topic), seals each append's batches with
:func:`seal_buffers` once offsets are assigned, and opens what it reads through its
``LogSlice``. The cleaner calls :func:`reseal_partition` so that after a key rotation (or
after encryption was turned on for a topic that had plain batches) every closed segment ends
up under the active key, using the compactor's crash-safe ``.cleaned`` + swap machinery.

Progress is kept in ``seal-checkpoint`` in the partition directory (``<key id> <offset>``:
every batch below the offset is sealed under that key); losing it only costs a re-scan.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from logmq.codec.batch import BatchHeader, parse_header
from logmq.codec.seal import KeyRing, Sealer
from logmq.config import TopicConfig
from logmq.errors import ConfigError
from logmq.storage.files import SEAL_CHECKPOINT
from logmq.storage.fsutil import write_file_atomically

__all__ = ["sealer_for", "seal_buffers", "check_encryption_change", "pin_encryption",
           "reseal_partition",
           "read_seal_checkpoint", "SEAL_CHECKPOINT"]

log = logging.getLogger("logmq.storage")


def sealer_for(config: TopicConfig, ring: KeyRing | None, where: str) -> Sealer | None:
    """The partition's sealer, or None when its topic is not encrypted."""
    if config.encryption == "none":
        return None
    return Sealer(ring, config.encryption_key_id or None, where)


def seal_buffers(sealer: Sealer, buffers: Sequence[bytes | memoryview],
                 headers: Sequence[BatchHeader]) -> tuple[list[bytes | memoryview],
                                                          list[BatchHeader]]:
    """Seal an append's batches: ``buffers`` holds two pieces per batch (the assigned base
    offset, the rest of the batch), as :meth:`PartitionLog._append_locked` builds them.
    Control batches (transaction markers, no user data) are left plain."""
    out: list[bytes | memoryview] = []
    hs: list[BatchHeader] = []
    for i, h in enumerate(headers):
        if h.is_control:  # transaction markers hold no user data: stay plain for the txn code
            out += (buffers[2 * i], buffers[2 * i + 1])
            hs.append(h)
            continue
        sealed = sealer.seal(b"".join((buffers[2 * i], buffers[2 * i + 1])))
        out.append(sealed)
        hs.append(parse_header(sealed))
    return out, hs


def check_encryption_change(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Refuse turning encryption off: its sealed batches would then be read as plain ones.

    (Turning it on is fine: plain batches stay readable and the cleaner re-seals them.)
    """
    if old.get("encryption", "none") != "none" and new.get("encryption", "none") == "none":
        raise ConfigError(f"topic {name!r} is encrypted (encryption={old['encryption']}); "
                          "encryption cannot be turned off: mirror it to a plain topic instead")


def pin_encryption(defaults: Mapping[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A topic created under a broker-wide ``encryption`` default keeps it as its own
    override: a later restart without that default must not read its sealed batches as
    plain ones (and mirroring then copies the setting with the topic's overrides)."""
    enc = defaults.get("encryption", "none")
    if enc != "none" and "encryption" not in overrides:
        return {**overrides, "encryption": enc}
    return overrides


# ---------------------------------------------------------------------- re-sealing
def read_seal_checkpoint(directory: str) -> tuple[str, int]:
    """(key id, offset): every batch below offset is sealed under key id; ("", 0) unknown."""
    try:
        with open(os.path.join(directory, SEAL_CHECKPOINT), "rb") as f:
            kid, off = f.read().decode("ascii").split()
        return kid, int(off)
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return "", 0


def _write_seal_checkpoint(directory: str, kid: str, offset: int) -> None:
    write_file_atomically(os.path.join(directory, SEAL_CHECKPOINT),
                          f"{kid} {offset}\n".encode("ascii"))


def reseal_partition(plog: Any, throttle: Any = None) -> dict[str, int]:
    """Rewrite the closed segments of ``plog`` holding batches not under the active key.

    Scans each closed segment above the checkpoint once per active key; a segment that needs
    it is rewritten whole (every batch opened and sealed afresh under the active key) into
    ``.cleaned`` files and swapped in with :meth:`PartitionLog.replace_segments`, which is
    crash safe (a kill at any point leaves either the old or the new segment). Returns
    ``{"segments_scanned", "segments_resealed", "batches_resealed"}``. An unknown key id in
    a batch raises EncryptionKeyError: the operator removed a key that is still needed.
    """
    from logmq.storage import compactor

    stats = {"segments_scanned": 0, "segments_resealed": 0, "batches_resealed": 0}
    sealer = plog.sealer
    if sealer is None or sealer.ring is None:
        return stats
    kid = sealer.key_id
    directory = plog.directory
    ck_kid, ck_off = read_seal_checkpoint(directory)
    done = ck_off if ck_kid == kid else 0
    segs = plog.segments
    if len(segs) < 2:
        return stats
    iv = plog.config.index_interval_bytes
    for seg, nxt in zip(segs[:-1], segs[1:], strict=True):
        end = nxt.base_offset
        if end <= done:
            continue
        stats["segments_scanned"] += 1
        if not any(sealer.needs_reseal(buf, pos, h) and not h.is_control
                   for buf, pos, h, _ in compactor.iter_segment_batches(seg, seg.size, throttle)):
            done = end
            _write_seal_checkpoint(directory, kid, done)
            continue
        base = seg.base_offset
        compactor.discard_cleaned(directory, [base])
        writer = compactor._CleanedWriter(directory, base, iv)
        n = 0
        try:
            for buf, pos, h, _ in compactor.iter_segment_batches(seg, seg.size, throttle):
                if sealer.needs_reseal(buf, pos, h) and not h.is_control:
                    data = sealer.reseal(buf, pos, h)
                    h = parse_header(data)
                    n += 1
                else:
                    data = bytes(buf[pos : pos + h.size])
                writer.append(data, h)
                if throttle is not None:
                    throttle.account(written=len(data))
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        compactor.crash_point("cleaned-written")  # fault injection, as compaction has it
        if plog.replace_segments([seg], [base]) is None:
            compactor.discard_cleaned(directory, [base])
            return stats  # the log changed under us (retention, compaction): next pass
        log.info("partition %s-%d: re-sealed segment %d (%d batches) under key %r",
                 plog.topic, plog.partition, base, n, kid)
        stats["segments_resealed"] += 1
        stats["batches_resealed"] += n
        done = end
        _write_seal_checkpoint(directory, kid, done)
    return stats
