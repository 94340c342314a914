"""A partition's log: an ordered directory of segments, with appends, reads and crash recovery.

Directory ``<topic>-<partition>/`` holds ``<20-digit base>.log/.index/.timeindex`` files and a
``checkpoint`` file (recovery point and log start offset). Recovery is the open half of
this class, with its rules: :mod:`logmq.storage.loader`.

Write failures (see :mod:`logmq.storage.fsutil`): an append that fails is cut back off the
segment before :class:`~logmq.errors.DiskFullError` is raised, so the log stays consistent
and takes appends again once space is freed. A failed fsync takes the partition offline
(:class:`~logmq.errors.LogDirFailedError` for every append and read) until it is reopened:
after a failed fsync the kernel may have dropped the dirty pages, so neither the write nor
anything later is acknowledged, and reopening recovers from what the disk really holds.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import uuid
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import NamedTuple

from logmq.codec.batch import BatchHeader, iter_batches, parse_header
from logmq.codec.seal import KeyRing, Sealer
from logmq.config import FSYNC_MODES
from logmq.config import TopicConfig as LogConfig
from logmq.errors import (
    BrokerClosedError,
    ConcurrencyError,
    CorruptRecordError,
    DuplicateSequenceError,
    InvalidTimestampError,
    LogDirFailedError,
    OffsetOutOfRangeError,
    OutOfOrderSequenceError,
    RecordTooLargeError,
    UnknownTopicError,
)
from logmq.storage.fsutil import fsync_path as _fsync_dir
from logmq.storage.fsutil import write_error
from logmq.storage.handles import FileHandle
from logmq.storage.loader import LogLoader
from logmq.storage.producer_state import ProducerStateTable
from logmq.storage.sealing import seal_buffers, sealer_for
from logmq.storage.segment import LogSegment
from logmq.storage.txn_index import TxnIndex

__all__ = ["LogConfig", "PartitionLog", "LogSlice", "FSYNC_MODES"]

_MAX_REL_OFFSET = 2**32 - 1
_MAX_POSITION = 2**31 - 1
_PACK_OFFSET = struct.Struct(">q").pack
#: a partition directory being deleted is renamed to ``<name>.<hex>-delete`` first, so a
#: crash mid-delete leaves a name no one mistakes for a partition whose metadata was lost
DELETE_SUFFIX = "-delete"
_PLAIN = Sealer(None, None, "")  # opens plain batches only: a copy
log = logging.getLogger("logmq.storage")


class LogSlice(NamedTuple):
    """A byte range of one segment file: what a fetch sends, without copying it first.

    Holding the slice keeps the segment's descriptor open even if retention deletes the file,
    so ``os.sendfile(sock, slice.fileno, slice.position, slice.length)`` stays valid.
    """

    segment: LogSegment
    position: int
    length: int
    #: the log end offset when the read was made; an empty slice (length 0) means the offsets
    #: from the one asked for up to ``end`` hold no records (a compaction gap): skip to ``end``
    end: int = -1
    #: the descriptor the slice was located with, held so ``fileno`` stays valid (and keeps
    #: naming the same file) while the slice lives, whatever the descriptor LRU does
    handle: FileHandle | None = None
    #: an encrypted topic's: :meth:`read` opens sealed batches (so never sendfile the bytes)
    sealer: Sealer | None = None

    @property
    def fileno(self) -> int:
        if self.handle is not None:
            return self.handle.fd
        return self.segment.fileno()

    def read_raw(self) -> bytes:  # the stored bytes, sealed batches sealed
        if self.handle is not None:
            return os.pread(self.handle.fd, self.length, self.position)
        return self.segment.read(self.position, self.length)

    def read(self) -> bytes:
        """The batches, opened if sealed: plain RecordBatch v2 bytes a client can decode."""
        s = self.sealer
        return self.read_raw() if s is None else s.read_open(self.fileno, self.length, self.position)

    def __len__(self) -> int:
        return self.length


class PartitionLog(LogLoader):
    """Appends and reads of one partition; thread-safe (one lock, held only for metadata)."""

    def __init__(
        self,
        directory: str,
        topic: str,
        partition: int,
        config: LogConfig | None = None,
        *,
        clean: bool = False,
        repair: bool = False,
        keyring: KeyRing | None = None,
    ) -> None:
        self.directory = directory
        self.keyring = keyring  # encryption at rest: the sealer follows config (see sealer)
        self._sealer_of: tuple[LogConfig | None, KeyRing | None, Sealer | None] = (None,) * 3
        self.repair = repair
        self.topic = topic
        self.partition = partition
        self.config = config or LogConfig()
        self._lock = threading.RLock()
        self._closed = False
        self.on_append: Callable[[PartitionLog], None] | None = None
        self._unflushed_messages = 0
        self._last_flush = time.monotonic()
        self.recovered_bytes_truncated = 0
        #: set once an fsync failed: the partition is offline until reopened
        self.failed: LogDirFailedError | None = None
        #: since open, for metrics (logmq.ops): appended batch bytes and offsets, bytes read
        self.bytes_appended = self.records_appended = self.bytes_read = 0
        #: the checkpoint file's content, so closing an unchanged partition writes nothing
        #: (a data directory of many idle partitions closes without an fsync per partition)
        self._on_disk: tuple[int, int] | None = None
        self._no_producers_below = 0
        os.makedirs(directory, exist_ok=True)
        self.recovery_point, self.log_start_offset = self._read_checkpoint()
        self._segments: list[LogSegment] = []
        self._bases: list[int] = []
        self.producer_state = ProducerStateTable(directory)
        self.txn_index = TxnIndex(directory)
        try:
            self._load(clean)
            self._load_producer_state()
        except BaseException:
            for seg in self._segments:  # release descriptors: the caller may retry the open
                seg.close(sync=False, force=True)
            self._closed = True
            raise

    # ------------------------------------------------------------------ properties
    @property
    def next_offset(self) -> int:
        """The log end offset: the offset the next appended record gets."""
        return self.active_segment.next_offset

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def segments(self) -> list[LogSegment]:
        """A snapshot of the segments, oldest first."""
        with self._lock:
            return list(self._segments)

    @property
    def active_segment(self) -> LogSegment:
        segs = self._segments
        if not segs:  # deleted under a request that still held it (DeleteRecords racing it)
            raise UnknownTopicError(self.topic)
        return segs[-1]

    @property
    def sealer(self) -> Sealer | None:
        """The encrypted topic's sealer (None if plain); follows ``config`` and ``keyring``."""
        cfg, ring, sealer = self._sealer_of
        if cfg is not self.config or ring is not self.keyring:
            sealer = sealer_for(self.config, self.keyring, f"{self.topic}-{self.partition}")
            self._sealer_of = (self.config, self.keyring, sealer)
        return sealer

    def open_batch(self, data: bytes | bytearray | memoryview, pos: int = 0) -> bytes:
        """The plain bytes of the stored batch at ``pos`` of ``data`` (opened if sealed)."""
        return (self.sealer or _PLAIN).open(data, pos)

    # ------------------------------------------------------------------ append
    def append(
        self,
        data: bytes | bytearray | memoryview,
        *,
        validate: bool = True,
        expected_offset: int | None = None,
        headers: Sequence[tuple[int, BatchHeader]] | None = None,
    ) -> tuple[int, int]:
        """Append one or more encoded batches, assigning offsets; return (first, last) offset.

        ``validate`` checks framing and CRC of every batch (always on for bytes from outside);
        a batch that fails leaves the log untouched. ``expected_offset`` makes the append
        conditional on the current end offset (optimistic concurrency for event sourcing).
        """
        if headers is None:
            headers = iter_batches(data, validate=validate)
        if not headers:
            raise CorruptRecordError("no record batch in the data")
        limit = self.config.max_message_bytes
        for _, h in headers:
            if h.size > limit:
                raise RecordTooLargeError(
                    f"batch of {h.size} bytes exceeds max.message.bytes={limit}"
                )
            if h.base_timestamp < -1 or h.max_timestamp < -1:
                raise InvalidTimestampError(
                    f"negative record timestamp ({min(h.base_timestamp, h.max_timestamp)}) in "
                    f"the batch for {self.topic}-{self.partition}; -1 alone means none")
        view = memoryview(data)
        with self._lock:
            self._check_usable()
            try:
                result = self._append_locked(view, headers, expected_offset)
            except LogDirFailedError as e:
                self._fail(e)
                raise
            except OSError as e:
                raise write_error(e, self.directory, "append") from None
        first, last, appended = result
        cb = self.on_append
        if appended and cb is not None:
            cb(self)
        return first, last

    def _check_usable(self) -> None:
        if self._closed:
            raise BrokerClosedError(f"log {self.topic}-{self.partition} is closed")
        if self.failed is not None:
            raise LogDirFailedError(
                f"partition {self.topic}-{self.partition} is offline since an fsync failed "
                f"({self.failed.args[0]}); reopen the data directory to recover it",
                path=self.failed.path, errno=self.failed.errno)

    def _fail(self, e: LogDirFailedError) -> None:
        if self.failed is None:
            self.failed = e
            log.error("partition %s-%d is offline: %s", self.topic, self.partition, e)

    def _append_locked(self, view: memoryview, headers: Sequence[tuple[int, BatchHeader]],
                       expected_offset: int | None) -> tuple[int, int, bool]:
        """The append proper: (first, last, appended); not appended for a deduplicated retry."""
        nxt = self.next_offset
        if expected_offset is not None and expected_offset != nxt:
            raise ConcurrencyError(expected_offset, nxt)
        dup = self._check_sequences(headers)
        if dup is not None:
            return dup[0], dup[1], False
        total_size = len(view)
        sealer = self.sealer  # encryption at rest: batches are sealed once offsets are known
        if sealer is not None:
            total_size += sealer.overhead * sum(not h.is_control for _, h in headers)
        span = headers[-1][1].last_offset_delta + 1
        for _, h in headers[:-1]:
            span += h.last_offset_delta + 1
        self._maybe_roll(total_size, span)
        buffers: list[bytes | memoryview] = []
        assigned: list[BatchHeader] = []
        off = nxt
        for pos, h in headers:
            buffers.append(_PACK_OFFSET(off))
            buffers.append(view[pos + 8 : pos + h.size])
            assigned.append(h._replace(base_offset=off))
            off += h.last_offset_delta + 1
        if sealer is not None:
            buffers, assigned = seal_buffers(sealer, buffers, assigned)
        self._segments[-1].append(buffers, assigned)
        for h in assigned:
            if h.producer_id >= 0:
                self.producer_state.update(h, h.base_offset)
        self._unflushed_messages += off - nxt
        self.bytes_appended += total_size
        self.records_appended += off - nxt
        self._maybe_flush()
        return nxt, off - 1, True

    def _check_sequences(self, headers: Sequence[tuple[int, BatchHeader]]
                         ) -> tuple[int, int] | None:
        """Idempotence: (first, last) of the earlier copy when the request is a retry.

        Batches of one producer within one request must continue each other's sequences.
        """
        seen: dict[int, int] = {}
        for _, h in headers:
            pid = h.producer_id
            if pid < 0 or h.base_sequence < 0:
                continue
            prev = seen.get(pid)
            if prev is None:
                dup = self.producer_state.check(h)
                if dup is not None:
                    if len(headers) == 1:
                        return dup, dup + h.last_offset_delta
                    raise DuplicateSequenceError(
                        f"producer {pid}: a batch of this request was already appended")
            elif h.base_sequence != prev + 1:
                raise OutOfOrderSequenceError(
                    f"producer {pid}: batches in one request skip sequence numbers")
            seen[pid] = h.base_sequence + h.last_offset_delta
        return None

    def _maybe_roll(self, incoming: int, span: int) -> None:
        active = self._segments[-1]
        if active.size == 0:
            return
        cfg = self.config
        if (
            active.size + incoming > cfg.segment_bytes
            or active.size + incoming > _MAX_POSITION
            or active.next_offset + span - active.base_offset > _MAX_REL_OFFSET
            or int(time.time() * 1000) - active.created_ms >= cfg.segment_ms
        ):
            self._roll()

    def roll(self) -> None:
        """Close the active segment and start a new one (no-op when the active one is empty)."""
        with self._lock:
            if self._segments[-1].size:
                self._roll()

    def _roll(self) -> None:
        old = self._segments[-1]
        old.close_time_index_entry()
        old.flush(fsync=True)
        new = LogSegment(self.directory, old.next_offset, self.config.index_interval_bytes)
        new.next_offset = old.next_offset
        _fsync_dir(self.directory)
        self._segments.append(new)
        self._bases.append(new.base_offset)
        self.recovery_point = old.next_offset
        self._unflushed_messages = 0
        self._write_checkpoint()
        self._snapshot_producers()

    def _maybe_flush(self) -> None:
        mode = self.config.fsync
        if mode == "always":
            # the batch is durable once the log is synced: an index failure must not make
            # the append look failed (a retry would duplicate it)
            self._segments[-1].flush(fsync=True, strict_index=False)
            self._unflushed_messages = 0
        elif mode == "interval":
            fm = self.config.flush_messages
            if fm is not None and self._unflushed_messages >= fm:
                self._flush_locked()

    def flush(self, checkpoint: bool = True) -> None:
        """fsync everything appended so far; with ``checkpoint``, advance the recovery point."""
        with self._lock:
            if self._closed:
                return
            self._check_usable()
            self._flush_locked(checkpoint)

    def _flush_locked(self, checkpoint: bool = False) -> None:
        try:
            self._segments[-1].flush(fsync=True)
            self._unflushed_messages = 0
            self._last_flush = time.monotonic()
            if checkpoint and self.recovery_point != self.next_offset:
                nxt = self.next_offset
                self._write_checkpoint_at(nxt)
                self.recovery_point = nxt
                self._snapshot_producers()
        except LogDirFailedError as e:
            self._fail(e)
            raise

    def flush_if_due(self, now: float | None = None) -> None:
        """Called by the broker's flusher thread for fsync='interval'."""
        if self.config.fsync != "interval":
            return
        now = time.monotonic() if now is None else now
        if now - self._last_flush >= self.config.flush_ms / 1000:
            with self._lock:
                if not self._closed and self.failed is None and self._segments[-1]._dirty:
                    self._flush_locked()
                else:
                    self._last_flush = now

    # ------------------------------------------------------------------ reads
    def _check_range(self, offset: int) -> None:
        if offset < self.log_start_offset or offset > self.next_offset:
            raise OffsetOutOfRangeError(
                self.topic, self.partition, offset, self.log_start_offset, self.next_offset
            )

    def read(self, offset: int, max_bytes: int, *, whole_batches: bool = False) -> LogSlice | None:
        """Locate the bytes from the batch holding ``offset``; None when at the end of the log.

        At least one whole batch is returned even if it exceeds ``max_bytes`` (so a consumer
        always makes progress). Without ``whole_batches`` the slice may end inside a batch, as
        Kafka's fetch does; readers ignore a truncated trailing batch.
        """
        with self._lock:
            self._check_usable()
            self._check_range(offset)
            segments = self._segments
            end = segments[-1].next_offset
            if offset == end:
                return None
            i = max(0, bisect_right(self._bases, offset) - 1)
            limits = [s.size for s in segments[i:]]
            segments = segments[i:]
        for seg, limit in zip(segments, limits, strict=True):
            found = seg.translate(offset, limit)
            if found is None:
                continue  # offset falls in a compaction gap at the end of this segment
            pos, h = found
            length = min(max_bytes, limit - pos)
            if length < h.size:
                length = min(h.size, limit - pos)
            elif whole_batches:
                end_pos = pos
                for p, hh in seg.iter_headers(pos, limit):
                    if p + hh.size - pos > length:
                        break
                    end_pos = p + hh.size
                length = end_pos - pos
            self.bytes_read += length  # unlocked: a rare lost update is fine for a metric
            return LogSlice(seg, pos, length, end, seg.handle(), self.sealer)
        return LogSlice(segments[-1], 0, 0, end)

    def read_bytes(self, offset: int, max_bytes: int, *, whole_batches: bool = True) -> bytes:
        sl = self.read(offset, max_bytes, whole_batches=whole_batches)
        if sl is None:
            return b""
        data = sl.read_raw()
        if len(data) != sl.length:
            raise CorruptRecordError(
                "segment shorter than expected", path=sl.segment.log_path, position=sl.position
            )
        return data if sl.sealer is None else sl.sealer.open_all(data)

    def offset_for_timestamp(self, timestamp: int) -> int | None:
        """Earliest offset whose record timestamp is >= ``timestamp``; None if there is none."""
        for seg in self.segments:
            if seg.max_timestamp < timestamp:
                continue
            found = seg.find_by_timestamp(timestamp, self.sealer)
            if found is not None and found >= self.log_start_offset:
                return found
            if found is not None:
                return self.log_start_offset
        return None

    # ------------------------------------------------------------------ retention and truncation
    def delete_records(self, before_offset: int) -> int:
        """Advance the log start offset to ``before_offset`` and drop segments wholly below it."""
        with self._lock:
            if before_offset > self.next_offset or before_offset < 0:
                raise OffsetOutOfRangeError(
                    self.topic, self.partition, before_offset, self.log_start_offset,
                    self.next_offset,
                )
            if before_offset <= self.log_start_offset:
                return self.log_start_offset
            self.log_start_offset = before_offset
            self._write_checkpoint()
            self._drop_segments_below(before_offset)
            return self.log_start_offset

    def _drop_segments_below(self, offset: int) -> None:
        while len(self._segments) > 1 and self._segments[1].base_offset <= offset:
            seg = self._segments.pop(0)
            self._bases.pop(0)
            seg.delete()
        self.txn_index.retain(self._bases, self.log_start_offset)

    def delete_oldest_segment(self, expected: LogSegment | None = None) -> LogSegment | None:
        """Remove the oldest closed segment (never the active one); advance the log start.

        With ``expected``, only that segment is removed, and only if it still is the oldest:
        the cleaner decides from a snapshot, and a concurrent ``delete_records`` must not make
        it delete a younger segment that its retention check never looked at.
        """
        with self._lock:
            if len(self._segments) < 2:
                return None
            if expected is not None and self._segments[0] is not expected:
                return None
            seg = self._segments.pop(0)
            self._bases.pop(0)
            self.log_start_offset = max(self.log_start_offset, self._segments[0].base_offset)
            self._write_checkpoint()
            seg.delete()
            self.txn_index.retain(self._bases, self.log_start_offset)
            return seg

    def replace_segments(
        self, old: Sequence[LogSegment], new_bases: Sequence[int]
    ) -> list[LogSegment] | None:
        """Swap cleaned segments in for ``old``: commit, install, then update the segment list.

        ``new_bases`` name ``<base>.*.cleaned`` files the compactor wrote and fsynced. All of
        it runs under the log's lock, so the check that ``old`` is still a run of closed
        segments of this log (retention or ``delete_records`` may have dropped some while
        the cleaner worked), the on-disk commit and the in-memory swap are one step as far
        as appends and reads are concerned; the lock is held for a few renames and fsyncs,
        not for the rewrite itself. Returns the new segments, or None (nothing swapped; the
        caller discards its ``.cleaned`` files) when the log closed or ``old`` changed.

        Readers that already hold an old segment keep reading it: its descriptor stays open
        (the file is only unlinked or renamed over) and its indexes are loaded into memory
        here, before their files are replaced.
        """
        from logmq.storage import compactor

        old_bases = [s.base_offset for s in old]
        with self._lock:
            if self._closed or not old:
                return None
            i = bisect_right(self._bases, old_bases[0]) - 1
            n = len(old)
            if (
                i < 0
                or i + n >= len(self._segments)  # the active segment is never replaced
                or any(a is not b for a, b in zip(self._segments[i : i + n], old, strict=True))
            ):
                return None
            for s in old:
                len(s.index)  # load lazily read index files now: their paths get new content
                len(s.time_index)
                _ = s.max_timestamp
                s.pin()  # and keep the old .log open: the LRU must not reopen the new file
            compactor.commit_swap(self.directory, old_bases, new_bases)
            compactor.install_swap(self.directory, old_bases, new_bases)
            iv = self.config.index_interval_bytes
            new: list[LogSegment] = []
            for b in new_bases:
                seg = LogSegment(self.directory, b, iv)
                try:
                    seg.load_clean()
                except CorruptRecordError:
                    seg.recover()  # never expected: the files were just written and fsynced
                new.append(seg)
            self._segments[i : i + n] = new
            self._bases = [s.base_offset for s in self._segments]
            if self.log_start_offset < self._segments[0].base_offset:
                self.log_start_offset = self._segments[0].base_offset
                self._write_checkpoint()
            self.txn_index.retain(self._bases, self.log_start_offset)
            return new

    def truncate_to(self, offset: int) -> None:
        """Remove everything at and after ``offset`` (used by tests and replication-style repair)."""
        with self._lock:
            if offset < self.next_offset:
                log.warning("partition %s-%d: truncating offsets %d-%d (%d records) on request",
                            self.topic, self.partition, offset, self.next_offset - 1,
                            self.next_offset - offset)
            while len(self._segments) > 1 and self._segments[-1].base_offset >= offset:
                seg = self._segments.pop()
                self._bases.pop()
                seg.delete()
            self._segments[-1].truncate_to(offset)
            self.recovery_point = min(self.recovery_point, self.next_offset)
            self._write_checkpoint()
            self.producer_state.truncate(offset)
            self.txn_index.truncate(offset)
            self._snapshot_producers()

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """fsync and checkpoint: a directory closed this way needs no recovery on reopen.

        Never raises for the disk: every descriptor is released whatever fails, and a failed
        partition (or a flush that fails now) keeps its old checkpoint, so the next open
        recovers it from what the disk holds rather than trusting the clean marker.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            ok = self.failed is None
            for s in self._segments:
                try:
                    s.close(sync=ok)
                except OSError as e:
                    ok = False
                    log.error("partition %s-%d: close could not flush %s (%s); it will be "
                              "recovered on the next open", self.topic, self.partition,
                              s.log_path, e)
            if ok and any(s.index_failed for s in self._segments):
                ok = False
            if not ok:
                return
            try:
                self.recovery_point = self.next_offset
                if self._on_disk != (self.recovery_point, self.log_start_offset):
                    self._write_checkpoint()
                if self.producer_state.snapshot_offset != self.next_offset:
                    self._snapshot_producers()
            except OSError as e:
                log.error("partition %s-%d: close could not write its checkpoint (%s); it will "
                          "be recovered on the next open", self.topic, self.partition, e)

    def release(self) -> None:
        """Drop every descriptor without flushing or checkpointing (a failed open)."""
        with self._lock:
            self._closed = True
            for s in self._segments:
                s.close(sync=False, force=True)

    def delete(self) -> None:
        """Close and remove the partition's directory (topic deletion).

        The directory is renamed to ``<dir>.<hex>-delete`` (and the rename synced) before
        anything is removed: a crash mid-delete then leaves a name that the next open deletes,
        never a partition directory that looks like one whose metadata was lost.
        """
        import shutil

        with self._lock:
            self._closed = True
            for s in self._segments:
                s.delete()
            self._segments = []
        doomed = f"{self.directory}.{uuid.uuid4().hex}{DELETE_SUFFIX}"
        try:
            os.rename(self.directory, doomed)
            _fsync_dir(os.path.dirname(self.directory) or ".")
        except OSError:
            doomed = self.directory
        shutil.rmtree(doomed, ignore_errors=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def header_at(self, segment: LogSegment, position: int) -> BatchHeader:
        return parse_header(segment.read(position, 61))
