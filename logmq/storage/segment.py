"""One segment of a partition: a ``.log`` file of RecordBatch v2 bytes and its two indexes.

The file names carry the segment's base offset as 20 zero-padded digits, so ``ls`` order is
offset order and a directory listing alone tells which segment holds an offset.

Invariants kept here:
- the ``.log`` holds whole, valid batches back to back with increasing offsets, up to
  ``size``; bytes past ``size`` (a torn write) are cut by :meth:`recover` before use;
- the offset index has an entry at most every ``index_interval_bytes``; both indexes can be
  rebuilt from the log at any time, so they are never the only copy of anything.
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Iterator, Sequence

from logmq.codec.batch import HEADER_SIZE, BatchHeader, parse_header, validate_batch
from logmq.errors import CorruptRecordError
from logmq.storage.files import INDEX_SUFFIX, LOG_SUFFIX, TIMEINDEX_SUFFIX
from logmq.storage.index import OffsetIndex, TimeIndex

__all__ = ["LogSegment", "segment_name", "LOG_SUFFIX", "INDEX_SUFFIX", "TIMEINDEX_SUFFIX"]



def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


class LogSegment:
    """A ``.log`` file plus ``.index`` and ``.timeindex``, all named by ``base_offset``.

    Writes go straight to the file descriptor (``os.writev``, no user-space buffer): once
    :meth:`append` returns, the bytes are in the OS page cache and survive a process crash;
    :meth:`flush` (fsync) makes them survive a power loss.
    """

    def __init__(self, directory: str, base_offset: int, index_interval_bytes: int = 4096) -> None:
        self.directory = directory
        self.base_offset = base_offset
        stem = os.path.join(directory, segment_name(base_offset))
        self.log_path = stem + LOG_SUFFIX
        self.index = OffsetIndex(stem + INDEX_SUFFIX, base_offset)
        self.time_index = TimeIndex(stem + TIMEINDEX_SUFFIX, base_offset)
        self.index_interval_bytes = index_interval_bytes
        self._fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = os.fstat(self._fd).st_size
        self.next_offset = base_offset
        self._max_ts: int | None = None  # loaded lazily from the time index for closed segments
        self.offset_of_max_timestamp = base_offset
        self.created_ms = int(time.time() * 1000)
        self._bytes_since_index = 0
        self._dirty = False
        self._closed = False

    @property
    def max_timestamp(self) -> int:
        """Largest record timestamp in the segment (-1 when empty); drives time retention."""
        if self._max_ts is None:
            last = self.time_index.last_entry()
            if last is None:
                self._max_ts = -1
            else:
                self._max_ts, self.offset_of_max_timestamp = last
        return self._max_ts

    @max_timestamp.setter
    def max_timestamp(self, value: int) -> None:
        self._max_ts = value

    # ------------------------------------------------------------------ state on open
    def load_clean(self) -> None:
        """Restore in-memory state of a cleanly closed segment without reading all of it.

        Cost: one index load plus a scan of at most one index interval of batch headers.
        """
        try:
            self.index.check(self.size)
        except CorruptRecordError:
            self.recover()  # indexes are derived data: rebuild them from the log
            return
        self._max_ts = None
        if self.size:
            self.created_ms = self._header_at(0).base_timestamp
            _, pos = self.index.last_entry()
            nxt = self.base_offset
            while pos < self.size:
                h = self._header_at(pos)
                nxt = h.next_offset
                pos += h.size
            if pos != self.size:
                raise CorruptRecordError("batch runs past the end of the segment", path=self.log_path)
            self.next_offset = nxt

    def recover(self) -> int:
        """Validate every batch, rebuild both indexes, cut a torn or corrupt tail.

        Returns the number of bytes truncated. Batches must have valid CRCs and offsets that
        increase; the first batch that breaks either ends the valid part of the segment.
        """
        self.index.reset()
        self.time_index.reset()
        self._bytes_since_index = 0
        self.max_timestamp = -1
        self.offset_of_max_timestamp = self.base_offset
        nxt = self.base_offset
        valid = 0
        size = os.fstat(self._fd).st_size
        if size:
            with mmap.mmap(self._fd, size, access=mmap.ACCESS_READ) as m:
                view = memoryview(m)
                try:
                    while valid < size:
                        try:
                            h = validate_batch(view, valid)
                        except CorruptRecordError:
                            break
                        if h.base_offset < nxt:
                            break
                        self._track(h, valid)
                        nxt = h.next_offset
                        valid += h.size
                    if valid:
                        self.created_ms = parse_header(view, 0).base_timestamp
                finally:
                    view.release()
        truncated = size - valid
        if truncated:
            os.ftruncate(self._fd, valid)
        self.size = valid
        self.next_offset = nxt
        self.index.save()
        self.close_time_index_entry()
        self.time_index.save()
        self._dirty = True
        return truncated

    # ------------------------------------------------------------------ writes
    def _track(self, h: BatchHeader, position: int) -> None:
        if self._bytes_since_index >= self.index_interval_bytes or position == 0:
            self.index.append(h.base_offset, position)
            if self.max_timestamp >= 0:
                self.time_index.append(self.max_timestamp, self.offset_of_max_timestamp)
            self._bytes_since_index = 0
        self._bytes_since_index += h.size
        if h.max_timestamp > self.max_timestamp:
            self.max_timestamp = h.max_timestamp
            self.offset_of_max_timestamp = h.last_offset

    def append(self, buffers: Sequence[bytes | memoryview], batches: Sequence[BatchHeader]) -> None:
        """Write already offset-assigned batches; ``batches`` are their headers in order.

        ``buffers`` concatenated are exactly the batches' bytes (they may split a batch, as
        when the first 8 bytes carry a freshly assigned base offset).
        """
        if self.size == 0:
            self.created_ms = int(time.time() * 1000)
        total = 0
        for b in buffers:
            total += len(b)
        written = os.writev(self._fd, buffers)
        while written < total:  # writev may be partial for very large writes
            rest = b"".join(bytes(b) for b in buffers)[written:]
            written += os.write(self._fd, rest)
        pos = self.size
        for h in batches:
            self._track(h, pos)
            pos += h.size
        self.size = pos
        self.next_offset = batches[-1].next_offset
        self._dirty = True

    def close_time_index_entry(self) -> None:
        """Make the time index's last entry carry the segment's max timestamp (on roll/close)."""
        if self.max_timestamp >= 0:
            self.time_index.append(self.max_timestamp, self.offset_of_max_timestamp)

    def flush(self, fsync: bool = True) -> None:
        if self._closed:
            return
        if fsync and self._dirty:
            os.fdatasync(self._fd)
        self.index.flush(fsync=fsync)
        self.time_index.flush(fsync=fsync)
        self._dirty = False

    def truncate_to(self, offset: int) -> None:
        """Remove every batch whose base offset is >= ``offset``."""
        found = self.translate(offset)
        if found is None:
            return
        pos, h = found
        if h.base_offset < offset:
            pos += h.size  # the batch holding ``offset`` starts before it: keep it whole
        os.ftruncate(self._fd, pos)
        self.size = pos
        self.index.truncate_to(offset)
        self.time_index.truncate_to(offset)
        self.recover()

    # ------------------------------------------------------------------ reads
    def fileno(self) -> int:
        return self._fd

    def _header_at(self, pos: int) -> BatchHeader:
        data = os.pread(self._fd, HEADER_SIZE, pos)
        try:
            return parse_header(data)
        except CorruptRecordError as e:
            raise CorruptRecordError(str(e), path=self.log_path, position=pos) from None

    def translate(self, offset: int, limit: int | None = None) -> tuple[int, BatchHeader] | None:
        """(position, header) of the first batch whose last offset is >= ``offset``.

        Starts from the offset index's entry at or before ``offset`` and walks batch headers,
        so it reads at most about one index interval. ``None`` means no such batch below
        ``limit`` (the readable size, default all).
        """
        end = self.size if limit is None else limit
        _, pos = self.index.lookup(offset)
        while pos < end:
            h = self._header_at(pos)
            if h.last_offset >= offset:
                return pos, h
            pos += h.size
        return None

    def read(self, position: int, length: int) -> bytes:
        return os.pread(self._fd, length, position)

    def iter_headers(self, start: int = 0, limit: int | None = None
                     ) -> Iterator[tuple[int, BatchHeader]]:
        end = self.size if limit is None else limit
        pos = start
        while pos < end:
            h = self._header_at(pos)
            yield pos, h
            pos += h.size

    def find_by_timestamp(self, timestamp: int) -> int | None:
        """Offset of the first record with timestamp >= ``timestamp``, or None if none here."""
        if self.max_timestamp < timestamp:
            return None
        from logmq.codec.records import decode_batch

        start = self.time_index.lookup(timestamp)
        found = self.translate(start)
        if found is None:
            return None
        for pos, h in self.iter_headers(found[0]):
            if h.max_timestamp >= timestamp:
                _, records = decode_batch(self.read(pos, h.size), 0)
                for rec in records:
                    if rec[1] >= timestamp:
                        return rec[0]
        return None

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if self._closed:
            return
        self.close_time_index_entry()
        self.flush(fsync=True)
        self._closed = True
        os.close(self._fd)

    def delete(self) -> None:
        """Unlink the files; the descriptor stays open until every reader has dropped it."""
        for p in (self.log_path, self.index.path, self.time_index.path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._closed = True

    def __repr__(self) -> str:
        return f"LogSegment({self.log_path!r}, size={self.size}, next_offset={self.next_offset})"
