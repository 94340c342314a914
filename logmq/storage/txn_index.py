"""Aborted-transaction index and the last stable offset of a partition.

A read_committed consumer must drop the records of aborted transactions. Kafka hands it, with
each Fetch, the list of aborted transactions (producer id, first offset) overlapping the
fetched range; the client then drops that producer's records from the first offset up to the
producer's ABORT marker. That list comes from a per-segment ``<base>.txnindex`` file, in
Kafka's format: 34-byte entries ``int16 version (0), int64 producerId, int64 firstOffset,
int64 lastOffset (the marker's offset), int64 lastStableOffset (when the abort completed)``.
An entry lives in the file of the segment holding its marker.

Recovery sits next to the format: entries are appended (not fsynced) when an ABORT marker is
written and fsynced before the partition's producer snapshot is, so everything at or below
the snapshot's offset is on disk; after a crash the loader replays the batches after the
snapshot and re-adds the entries of the markers it meets (an entry already present is not
added twice). A torn trailing entry, entries whose marker the recovery cut off, and files of
segments that no longer exist are dropped on load.

The last stable offset (LSO) is the first offset of the oldest open transaction in the
partition (the high watermark when none is open); read_committed Fetch and ListOffsets stop
there (:mod:`logmq.storage.txn_ops` has the partition-level operations).
"""

from __future__ import annotations

import os
import struct
from bisect import bisect_right
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from logmq.codec.batch import BatchHeader
from logmq.codec.control import ABORT, decode_marker
from logmq.storage.fsutil import fsync_path, write_file_atomically

if TYPE_CHECKING:
    from logmq.storage.producer_state import ProducerStateTable

__all__ = ["AbortedTxn", "TxnIndex", "TXN_INDEX_SUFFIX", "close_transaction", "marker_kind"]

TXN_INDEX_SUFFIX = ".txnindex"
_ENTRY = struct.Struct(">hqqqq")


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


def _path(directory: str, base: int) -> str:
    return os.path.join(directory, f"{base:020d}{TXN_INDEX_SUFFIX}")


class TxnIndex:
    """The aborted transactions of one partition, per segment base (memory + files)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.by_base: dict[int, list[AbortedTxn]] = {}
        self._dirty: set[int] = set()

    # ------------------------------------------------------------------ load / recovery
    def load(self, bases: list[int], end: int) -> None:
        """Read every segment's file; drop torn entries, entries at or past ``end`` (the log
        end after recovery) and the files of segments that are gone."""
        self.by_base = {}
        wanted = set(bases)
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            names = []
        for name in names:
            if not name.endswith(TXN_INDEX_SUFFIX):
                continue
            try:
                base = int(name[: -len(TXN_INDEX_SUFFIX)])
            except ValueError:
                continue
            path = os.path.join(self.directory, name)
            if base not in wanted:
                os.unlink(path)
                continue
            with open(path, "rb") as f:
                raw = f.read()
            whole = len(raw) - len(raw) % _ENTRY.size
            entries = [AbortedTxn(*_ENTRY.unpack_from(raw, p)[1:])
                       for p in range(0, whole, _ENTRY.size)]
            kept = [e for e in entries if e.last_offset < end]
            if kept:
                self.by_base[base] = kept
            if len(kept) != len(entries) or whole != len(raw):
                self._rewrite(base)

    def _rewrite(self, base: int) -> None:
        entries = self.by_base.get(base, [])
        path = _path(self.directory, base)
        if not entries:
            if os.path.exists(path):
                os.unlink(path)
            return
        write_file_atomically(path, b"".join(_ENTRY.pack(0, *e) for e in entries))

    # ------------------------------------------------------------------ updates
    def add(self, base: int, entry: AbortedTxn) -> None:
        """Record an aborted transaction whose marker is in segment ``base`` (idempotent)."""
        entries = self.by_base.setdefault(base, [])
        if any(e.producer_id == entry.producer_id and e.last_offset == entry.last_offset
               for e in entries):
            return
        entries.append(entry)
        with open(_path(self.directory, base), "ab") as f:
            f.write(_ENTRY.pack(0, *entry))
        self._dirty.add(base)

    def sync(self) -> None:
        """fsync the files appended to since the last sync (before a producer snapshot)."""
        for base in list(self._dirty):
            try:
                fsync_path(_path(self.directory, base))
            except FileNotFoundError:
                continue
        self._dirty.clear()

    def retain(self, bases: Iterable[int], log_start: int) -> None:
        """Follow segment changes (retention, compaction, truncation): every entry moves to
        the file of the segment that now holds its marker; entries below ``log_start`` go."""
        bases = sorted(bases)
        moved: dict[int, list[AbortedTxn]] = {}
        for entries in self.by_base.values():
            for e in entries:
                if e.last_offset < log_start or not bases:
                    continue
                b = bases[max(0, bisect_right(bases, e.last_offset) - 1)]
                moved.setdefault(b, []).append(e)
        if moved == self.by_base:
            return
        old = set(self.by_base)
        self.by_base = {b: sorted(v, key=lambda e: e.last_offset) for b, v in moved.items()}
        for b in old | set(moved):
            self._rewrite(b)

    def truncate(self, offset: int) -> None:
        for base in list(self.by_base):
            kept = [e for e in self.by_base[base] if e.last_offset < offset]
            if len(kept) != len(self.by_base[base]):
                self.by_base[base] = kept
                self._rewrite(base)

    # ------------------------------------------------------------------ reads
    def collect(self, start: int, upper: int) -> list[AbortedTxn]:
        """Aborted transactions with data in ``[start, upper)``: marker at or after ``start``
        and first offset before ``upper``."""
        bases = sorted(self.by_base)
        # an entry lives in the segment of its marker: earlier segments hold markers < start
        i = max(0, bisect_right(bases, start) - 1)
        out: list[AbortedTxn] = []
        for base in bases[i:]:
            done = False
            for e in self.by_base[base]:
                if e.last_offset >= start and e.first_offset < upper:
                    out.append(e)
                # when this abort completed, nothing before its LSO was still open: a later
                # entry can only reach below ``upper`` if that LSO is below it (as Kafka)
                done = done or e.last_stable_offset >= upper
            if done:
                break
        out.sort(key=lambda e: e.first_offset)
        return out


# ---------------------------------------------------------------------- markers
def close_transaction(ps: ProducerStateTable, index: TxnIndex, bases: list[int], end: int,
                      pid: int, epoch: int, commit: bool, offset: int,
                      coordinator_epoch: int = 0) -> None:
    """Apply a COMMIT/ABORT marker at ``offset`` to the producer state and the index (for an
    abort); ``end`` is the log end after the marker. Shared by the append path and recovery."""
    first = ps.end_txn(pid, epoch, offset, coordinator_epoch)
    if not commit:
        unstable = ps.first_unstable_offset()
        lso = end if unstable is None else min(unstable, end)
        seg_base = bases[max(0, bisect_right(bases, offset) - 1)]
        index.add(seg_base, AbortedTxn(pid, first, offset, lso))


def marker_kind(data: bytes, h: BatchHeader) -> tuple[bool, int]:
    """(whether the control batch ``data`` is a COMMIT marker, its coordinator epoch)."""
    kind, coordinator_epoch = decode_marker(data, 0, h)
    return kind != ABORT, coordinator_epoch
