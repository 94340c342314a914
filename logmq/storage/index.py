"""Sparse, fixed-width index files of one segment: offset -> position and timestamp -> offset.

Both files are append-only arrays of big-endian entries, so a torn write can only damage the
last entry, a truncated file is detected by its length, and the whole file loads with one
``read`` plus a byteswap. Offsets are stored relative to the segment's base offset (u32),
which is why a segment never spans more than 2**32 offsets.

Entries are added at most once per ``index.interval.bytes`` of log, so a lookup is a binary
search that lands on a batch at or before the target, followed by a short forward scan of batch
headers (at most one interval of bytes).
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from bisect import bisect_right
from collections.abc import Callable

from logmq.errors import CorruptRecordError
from logmq.storage.fsutil import fsync_fd, unlink_quiet, write_file_atomically

__all__ = ["OffsetIndex", "TimeIndex"]

_OFFSET_ENTRY = struct.Struct(">II")
_TIME_ENTRY = struct.Struct(">qI")
_LITTLE = sys.byteorder == "little"


def _load_u32_pairs(data: bytes) -> tuple[array, array]:
    flat = array("I")
    flat.frombytes(data)
    if _LITTLE:
        flat.byteswap()
    return flat[0::2], flat[1::2]


class _IndexFile:
    """What both index files share: loading, pending entries appended on flush, rewrites."""

    ENTRY_SIZE: int
    KIND: str  # for error messages

    def __init__(self, path: str, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self._pending: list[bytes] = []

    def _read_entries(self) -> bytes:
        """The file's bytes (none if missing), refused when not a whole number of entries."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        if len(data) % self.ENTRY_SIZE:
            raise CorruptRecordError(
                f"{self.KIND} length {len(data)} is not a multiple of {self.ENTRY_SIZE}",
                path=self.path,
            )
        return data

    #: called when the file turns out damaged on its (lazy) load; it must rebuild the entries
    #: from the log (the segment sets it). Without it the damage is raised.
    rebuild: Callable[[], None] | None = None

    def _load(self) -> None:
        raise NotImplementedError

    def _load_or_rebuild(self) -> None:
        try:
            self._load()
        except CorruptRecordError:
            if self.rebuild is None:
                raise
            self.rebuild()

    def flush(self, fsync: bool = False) -> None:
        """Append pending entries. A failed write is cut back off the file and the entries
        stay pending (tried again on the next flush), so a full disk cannot leave a torn
        entry that later entries would land behind."""
        if not self._pending:
            return
        data = b"".join(self._pending)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            start = os.fstat(fd).st_size
            try:
                done = 0
                while done < len(data):
                    done += os.write(fd, data[done:])
            except OSError:
                os.ftruncate(fd, start)
                raise
            self._pending.clear()
            if fsync:
                fsync_fd(fd, self.path)
        finally:
            os.close(fd)

    def _entries_bytes(self) -> bytes:
        raise NotImplementedError

    def _rewrite(self) -> None:
        data = self._entries_bytes()
        write_file_atomically(self.path, data, fsync=False)  # rebuildable: no fsync
        self._pending.clear()

    def save(self) -> None:
        """Write every entry anew (after a rebuild)."""
        self._rewrite()

    def delete(self) -> None:
        unlink_quiet(self.path)


class OffsetIndex(_IndexFile):
    """Maps relative offsets to byte positions in the segment's ``.log`` file.

    Invariant: relative offsets and positions are both strictly increasing. Entries live in
    memory (two compact arrays, 8 bytes per entry) and are appended to the file as they are
    added; the file is rewritten whole only by :meth:`rebuild_from` and :meth:`truncate_to`.
    """

    ENTRY_SIZE = _OFFSET_ENTRY.size
    KIND = "index"

    def __init__(self, path: str, base_offset: int) -> None:
        super().__init__(path, base_offset)
        self._rel: array | None = None
        self._pos: array | None = None

    def _load(self) -> None:
        rel, pos = _load_u32_pairs(self._read_entries())
        for i in range(1, len(rel)):
            if rel[i] <= rel[i - 1] or pos[i] <= pos[i - 1]:
                raise CorruptRecordError(
                    f"index entries out of order at entry {i}", path=self.path,
                    position=i * self.ENTRY_SIZE,
                )
        self._rel, self._pos = rel, pos

    def _arrays(self) -> tuple[array, array]:
        if self._rel is None:
            self._load_or_rebuild()
        assert self._rel is not None and self._pos is not None
        return self._rel, self._pos

    def check(self, log_size: int) -> None:
        """Sanity check against the log file: raises CorruptRecordError if unusable."""
        _, pos = self._arrays()
        if len(pos) and pos[-1] >= log_size:
            raise CorruptRecordError(
                f"index points past the end of the log ({pos[-1]} >= {log_size})", path=self.path
            )

    def __len__(self) -> int:
        return len(self._arrays()[0])

    def append(self, offset: int, position: int) -> None:
        rel_a, pos_a = self._arrays()
        rel = offset - self.base_offset
        if len(rel_a) and (rel <= rel_a[-1] or position <= pos_a[-1]):
            return
        rel_a.append(rel)
        pos_a.append(position)
        self._pending.append(_OFFSET_ENTRY.pack(rel, position))

    def lookup(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the last entry at or before ``offset``, or (base, 0)."""
        rel_a, pos_a = self._arrays()
        i = bisect_right(rel_a, offset - self.base_offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + rel_a[i], pos_a[i]

    def last_entry(self) -> tuple[int, int]:
        rel_a, pos_a = self._arrays()
        if not rel_a:
            return self.base_offset, 0
        return self.base_offset + rel_a[-1], pos_a[-1]

    def truncate_to(self, offset: int) -> None:
        """Drop entries for offsets >= ``offset`` (the log was truncated there)."""
        rel_a, pos_a = self._arrays()
        keep = bisect_right(rel_a, offset - self.base_offset - 1)
        if keep == len(rel_a):
            return
        del rel_a[keep:]
        del pos_a[keep:]
        self._rewrite()

    def reset(self) -> None:
        self._rel, self._pos = array("I"), array("I")
        self._pending.clear()

    def _entries_bytes(self) -> bytes:
        rel_a, pos_a = self._arrays()
        return b"".join(_OFFSET_ENTRY.pack(r, p) for r, p in zip(rel_a, pos_a, strict=True))


class TimeIndex(_IndexFile):
    """Maps timestamps to the offset of the batch holding that timestamp.

    Invariant: timestamps strictly increase, so an entry is only added when a batch raises the
    segment's maximum timestamp. The last entry always carries the segment's max timestamp
    once the segment is closed (added on roll and on clean shutdown), which is how a reopened
    segment knows its max timestamp without reading the log.
    """

    ENTRY_SIZE = _TIME_ENTRY.size
    KIND = "time index"

    def __init__(self, path: str, base_offset: int) -> None:
        super().__init__(path, base_offset)
        self._ts: list[int] | None = None
        self._rel: list[int] | None = None

    def _load(self) -> None:
        data = self._read_entries()
        ts: list[int] = []
        rel: list[int] = []
        for t, r in _TIME_ENTRY.iter_unpack(data):
            if ts and (t <= ts[-1] or r < rel[-1]):
                raise CorruptRecordError("time index entries out of order", path=self.path)
            ts.append(t)
            rel.append(r)
        self._ts, self._rel = ts, rel

    def _lists(self) -> tuple[list[int], list[int]]:
        if self._ts is None:
            self._load_or_rebuild()
        assert self._ts is not None and self._rel is not None
        return self._ts, self._rel

    def __len__(self) -> int:
        return len(self._lists()[0])

    def append(self, timestamp: int, offset: int) -> None:
        ts, rel = self._lists()
        r = offset - self.base_offset
        if ts and (timestamp <= ts[-1] or r < rel[-1]):
            return
        ts.append(timestamp)
        rel.append(r)
        self._pending.append(_TIME_ENTRY.pack(timestamp, r))

    def last_entry(self) -> tuple[int, int] | None:
        ts, rel = self._lists()
        if not ts:
            return None
        return ts[-1], self.base_offset + rel[-1]

    def lookup(self, timestamp: int) -> int:
        """Offset to start scanning from for the first record with a timestamp >= ``timestamp``.

        That is the offset of the last entry whose timestamp is below the target (records from
        there on may reach it), or the segment base when no entry is below it.
        """
        ts, rel = self._lists()
        from bisect import bisect_left

        i = bisect_left(ts, timestamp) - 1
        if i < 0:
            return self.base_offset
        return self.base_offset + rel[i]

    def truncate_to(self, offset: int) -> None:
        ts, rel = self._lists()
        keep = len(rel)
        while keep and self.base_offset + rel[keep - 1] >= offset:
            keep -= 1
        if keep == len(rel):
            return
        del ts[keep:]
        del rel[keep:]
        self._rewrite()

    def reset(self) -> None:
        self._ts, self._rel = [], []
        self._pending.clear()

    def _entries_bytes(self) -> bytes:
        ts, rel = self._lists()
        return b"".join(_TIME_ENTRY.pack(t, r) for t, r in zip(ts, rel, strict=True))
