"""One segment of a partition: a ``.log`` file of RecordBatch v2 bytes and its two indexes.

The file names carry the segment's base offset as 20 zero-padded digits, so ``ls`` order is
offset order and a directory listing alone tells which segment holds an offset.

Invariants kept here:
- the ``.log`` holds whole, valid batches back to back with increasing offsets, up to
  ``size``; bytes past ``size`` (a torn write) are cut by :meth:`recover` before use;
- the offset index has an entry at most every ``index_interval_bytes``; both indexes can be
  rebuilt from the log at any time, so they are never the only copy of anything;
- an append is all or nothing: a failed or short write is cut off again before the error is
  raised, so a full disk never leaves a torn batch for later appends to land behind.

The ``.log`` descriptor comes from the process-wide LRU in :mod:`logmq.storage.handles`, not
from the segment: a segment costs no descriptor while nobody reads or writes it.
"""

from __future__ import annotations

import logging
import mmap
import os
import time
import weakref
from collections.abc import Iterator, Sequence

from logmq.codec.batch import HEADER_SIZE, BatchHeader, parse_header, validate_batch
from logmq.codec.seal import Sealer
from logmq.errors import CorruptRecordError, DiskFullError, LogDirFailedError
from logmq.storage.files import INDEX_SUFFIX, LOG_SUFFIX, TIMEINDEX_SUFFIX
from logmq.storage.fsutil import fsync_fd, write_error
from logmq.storage.handles import CACHE, FileHandle
from logmq.storage.index import OffsetIndex, TimeIndex

__all__ = ["LogSegment", "segment_name", "LOG_SUFFIX", "INDEX_SUFFIX", "TIMEINDEX_SUFFIX", "WHOLE"]

log = logging.getLogger("logmq.storage")
#: ``recover(intact_below=WHOLE)``: every batch of the segment must be valid
WHOLE = 2**63


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


class LogSegment:
    """A ``.log`` file plus ``.index`` and ``.timeindex``, all named by ``base_offset``.

    Writes go straight to the file descriptor (``os.writev``, no user-space buffer): once
    :meth:`append` returns, the bytes are in the OS page cache and survive a process crash;
    :meth:`flush` (fsync) makes them survive a power loss.

    Use :meth:`handle` (not a cached ``fileno``) and keep the returned object while using its
    descriptor: the LRU may close the segment's own reference at any time.
    """

    def __init__(self, directory: str, base_offset: int, index_interval_bytes: int = 4096) -> None:
        self.directory = directory
        self.base_offset = base_offset
        stem = os.path.join(directory, segment_name(base_offset))
        self.log_path = stem + LOG_SUFFIX
        self.index = OffsetIndex(stem + INDEX_SUFFIX, base_offset)
        self.time_index = TimeIndex(stem + TIMEINDEX_SUFFIX, base_offset)
        self.index_interval_bytes = index_interval_bytes
        self._handle: FileHandle | None = None
        try:
            self.size = os.stat(self.log_path).st_size
        except FileNotFoundError:
            fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            os.close(fd)
            self.size = 0
        self.next_offset = base_offset
        self._max_ts: int | None = None  # loaded lazily from the time index for closed segments
        self.offset_of_max_timestamp = base_offset
        self.created_ms = int(time.time() * 1000)
        self._bytes_since_index = 0
        self._dirty = False
        self._closed = False
        #: set when an index file could not be written or synced: the indexes on disk are
        #: not to be trusted, so the partition must not be closed as clean
        self.index_failed = False
        rebuild = weakref.WeakMethod(self._rebuild_indexes)  # no cycle: refcounting frees us
        self.index.rebuild = self.time_index.rebuild = lambda: rebuild()()  # type: ignore[misc]
        #: (first byte, end byte, records) of what the last :meth:`recover` cut, if anything
        self.last_cut: tuple[int, int, int] | None = None

    def _rebuild_indexes(self) -> None:
        log.warning("index files of %s are damaged: rebuilding them from the log",
                    self.log_path)
        self.recover(intact_below=WHOLE)

    # ------------------------------------------------------------------ descriptors
    def _open_fd(self) -> int:
        # no O_CREAT: reopening a path that was deleted or replaced must fail, not create
        return os.open(self.log_path, os.O_RDWR | os.O_APPEND)

    def handle(self) -> FileHandle:
        """The open ``.log`` descriptor, from the LRU; hold the object while using ``fd``."""
        return CACHE.get(self, self._open_fd)

    def pin(self) -> None:
        """Keep the descriptor open for as long as this object lives (before unlink/replace),
        so readers still holding the segment read the bytes they located."""
        self.handle()
        CACHE.pin(self)

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
            # indexes are derived data: rebuild them from the log, which after a clean close
            # must be whole (damage in it is raised, not cut)
            self.recover(intact_below=WHOLE)
            return
        self._max_ts = None
        if self.size:
            self.created_ms = self._header_at(0).base_timestamp
            _, pos = self.index.last_entry()
            nxt = self.base_offset
            try:
                while pos < self.size:
                    h = self._header_at(pos)
                    nxt = h.next_offset
                    pos += h.size
                if pos != self.size:
                    raise CorruptRecordError("batch runs past the end of the segment",
                                             path=self.log_path, position=pos)
            except CorruptRecordError:
                # a damaged index entry or a damaged log: rebuilding tells which (it raises
                # for the log, which after a clean close must be whole)
                self.recover(intact_below=WHOLE)
                return
            self.next_offset = nxt

    def recover(self, intact_below: int = 0) -> int:
        """Validate every batch, rebuild both indexes, cut a torn or corrupt tail.

        Returns the number of bytes truncated (:attr:`last_cut` says which bytes and about
        how many records). Batches must have valid CRCs and offsets that increase; the first
        batch that breaks either ends the valid part of the segment.

        ``intact_below`` is an offset whose batches were synced before a checkpoint said so:
        if the valid part ends before it, that is damage, not a torn write, and
        CorruptRecordError (naming the byte) is raised with nothing cut. Use a huge value to
        rebuild the indexes of a segment that must be intact as a whole.
        """
        self.index.reset()
        self.time_index.reset()
        self._bytes_since_index = 0
        self.max_timestamp = -1
        self.offset_of_max_timestamp = self.base_offset
        nxt = self.base_offset
        valid = 0
        fh = self.handle()
        size = os.fstat(fh.fd).st_size
        if size:
            with mmap.mmap(fh.fd, size, access=mmap.ACCESS_READ) as m:
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
        if nxt < intact_below and (truncated or intact_below < WHOLE):
            what = "invalid batch" if truncated else "the segment ends"
            raise CorruptRecordError(
                f"{what} at offset {nxt}, below offset {intact_below} which was already "
                "synced (damage, not a torn write)", path=self.log_path, position=valid)
        self.last_cut = (valid, size, self._count_records(fh, valid, size)) if truncated else None
        if truncated:
            os.ftruncate(fh.fd, valid)
        self.size = valid
        self.next_offset = nxt
        self.close_time_index_entry()
        try:
            self.index.save()
            self.time_index.save()
        except DiskFullError as e:
            # The indexes are rebuilt in memory and nothing in them is lost by not writing
            # them: a log recovered on a full disk still opens, so its data can be read and
            # space freed through it (delete records or topics); the next open rebuilds them.
            self.index_failed = True
            log.warning("indexes of %s not written (%s); the log is open, and they are "
                        "rebuilt on the next open", self.log_path, e)
        self._dirty = True
        return truncated

    @staticmethod
    def _count_records(fh: FileHandle, start: int, end: int) -> int:
        """Records the batch headers in [start, end) claim (as far as the framing holds):
        what a cut loses, for the warning that reports it."""
        n, pos = 0, start
        while pos + HEADER_SIZE <= end:
            try:
                h = parse_header(os.pread(fh.fd, HEADER_SIZE, pos))
            except CorruptRecordError:
                break
            if h.size <= 0 or h.last_offset_delta < 0:
                break
            n += h.record_count if h.record_count > 0 else h.last_offset_delta + 1
            pos += h.size
        return n

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
        total = 0
        for b in buffers:
            total += len(b)
        fh = self.handle()
        start = self.size
        try:
            written = os.writev(fh.fd, buffers)
            while written < total:  # writev may be partial (large writes, nearly full disk)
                rest = b"".join(bytes(b) for b in buffers)[written:]
                n = os.write(fh.fd, rest)
                if n <= 0:
                    raise OSError(28, os.strerror(28))
                written += n
        except OSError as e:
            self._cut_back(fh, start, e)
            raise write_error(e, self.log_path, f"append of {total} bytes at byte {start}"
                              ) from None
        if start == 0:
            self.created_ms = int(time.time() * 1000)
        pos = start
        for h in batches:
            self._track(h, pos)
            pos += h.size
        self.size = pos
        self.next_offset = batches[-1].next_offset
        self._dirty = True

    def _cut_back(self, fh: FileHandle, size: int, cause: OSError) -> None:
        """Undo a failed write: the file must end at ``size`` again before anyone appends."""
        try:
            os.ftruncate(fh.fd, size)
        except OSError as e:
            raise LogDirFailedError(
                f"could not cut a failed append ({cause.strerror}) back to byte {size}: "
                f"{e.strerror}", path=self.log_path, errno=e.errno) from None

    def close_time_index_entry(self) -> None:
        """Make the time index's last entry carry the segment's max timestamp (on roll/close)."""
        if self.max_timestamp >= 0:
            self.time_index.append(self.max_timestamp, self.offset_of_max_timestamp)

    def flush(self, fsync: bool = True, *, strict_index: bool = True) -> None:
        """fdatasync the log, then write (and sync) pending index entries.

        A failed log sync raises LogDirFailedError. Index files hold nothing that cannot be
        rebuilt, so with ``strict_index=False`` (the per-append path of fsync='always': the
        batch is durable by then and must be acknowledged) an index failure is logged and
        remembered in :attr:`index_failed` (the partition then does not close as clean, and
        the next open rebuilds the indexes) instead of raised.
        """
        if self._closed:
            return
        if fsync and self._dirty:
            fsync_fd(self.handle().fd, self.log_path, data_only=True)
        self._dirty = False
        try:
            self.index.flush(fsync=fsync)
            self.time_index.flush(fsync=fsync)
        except OSError as e:
            self.index_failed = True
            if strict_index:
                raise write_error(e, self.index.path, "index write") from None
            log.warning("index of %s not written (%s); it is rebuilt on the next open",
                        self.log_path, e)

    def truncate_to(self, offset: int) -> None:
        """Remove every batch whose base offset is >= ``offset``."""
        found = self.translate(offset)
        if found is None:
            return
        pos, h = found
        if h.base_offset < offset:
            pos += h.size  # the batch holding ``offset`` starts before it: keep it whole
        os.ftruncate(self.handle().fd, pos)
        self.size = pos
        self.index.truncate_to(offset)
        self.time_index.truncate_to(offset)
        self.recover()

    # ------------------------------------------------------------------ reads
    def fileno(self) -> int:
        """The descriptor now; prefer :meth:`handle` (the LRU may close this one later)."""
        return self.handle().fd

    def _header_at(self, pos: int) -> BatchHeader:
        data = os.pread(self.handle().fd, HEADER_SIZE, pos)
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
        return os.pread(self.handle().fd, length, position)

    def iter_headers(self, start: int = 0, limit: int | None = None
                     ) -> Iterator[tuple[int, BatchHeader]]:
        end = self.size if limit is None else limit
        pos = start
        while pos < end:
            h = self._header_at(pos)
            yield pos, h
            pos += h.size

    def find_by_timestamp(self, timestamp: int, sealer: Sealer | None = None) -> int | None:
        """Offset of the first record with timestamp >= ``timestamp``, or None if none here.
        ``sealer`` opens the batches of an encrypted topic."""
        if self.max_timestamp < timestamp:
            return None
        from logmq.codec.records import decode_batch

        start = self.time_index.lookup(timestamp)
        found = self.translate(start)
        if found is None:
            return None
        for pos, h in self.iter_headers(found[0]):
            if h.max_timestamp >= timestamp:
                data = self.read(pos, h.size)
                _, records = decode_batch(data if sealer is None else sealer.open(data), 0)
                for rec in records:
                    if rec[1] >= timestamp:
                        return rec[0]
        return None

    # ------------------------------------------------------------------ lifecycle
    def close(self, *, sync: bool = True, force: bool = False) -> None:
        """Flush (with ``sync``) and release the descriptor; the descriptor is released even
        when the flush fails (the error is raised after). ``force`` closes it at once even
        if something (a traceback's frame) still references the handle: for failed opens."""
        if self._closed:
            return
        try:
            if sync:
                self.close_time_index_entry()
                self.flush(fsync=True)
        finally:
            self._closed = True
            h = self._handle
            CACHE.forget(self)
            if force and h is not None:
                h.close()

    def delete(self) -> None:
        """Unlink the files; the descriptor stays open until every reader has dropped it."""
        try:
            self.pin()
        except OSError:
            pass
        for p in (self.log_path, self.index.path, self.time_index.path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass

    def __repr__(self) -> str:
        return f"LogSegment({self.log_path!r}, size={self.size}, next_offset={self.next_offset})"
