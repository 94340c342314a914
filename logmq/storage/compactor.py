"""Compaction mechanics: rewrite closed segments keeping the latest record per key, and swap
the rewritten files in so that a crash at any instant leaves a log with the same content.

Policy (when to clean, which partitions, throttling) lives in :mod:`logmq.broker.cleaner`;
this module only knows files and batches.

What a cleaning pass over one partition does (Kafka's log-cleaner semantics):

1. Build a key -> latest offset map over the *dirty* section: the closed segments from the
   cleaner checkpoint (first dirty offset) up to the first uncleanable segment (the active
   one, or the first closed one holding a record younger than ``min.compaction.lag.ms``).
   The section before the checkpoint was cleaned already, so its keys are unique within it;
   a record there only has to go if the map holds a later offset for its key.
2. Split the closed segments below the uncleanable bound into groups of consecutive segments
   whose total size fits in ``segment.bytes`` (a cleaned group becomes one segment, named by
   the group's first base offset, so many small cleaned segments do not pile up).
3. Rewrite each group: a record is kept iff its offset is at least ``map.get(key, offset)``;
   a kept tombstone (value None) goes once its timestamp is older than
   ``delete.retention.ms``; a record with a null key goes (Kafka refuses those at produce
   time on compacted topics; logmq's producer does not check, so the cleaner drops them).
   Offsets, keys, values, headers, timestamps are preserved; a batch whose records all stay
   is copied byte for byte, a thinned batch is re-encoded (same base offset, lastOffsetDelta,
   codec, producer id/epoch/base sequence; the remaining records keep their offset deltas,
   so gaps are allowed), an emptied batch disappears. Control batches are copied as they
   are. Every batch read is CRC-checked, so a rewrite never launders a corrupt batch.
   Unlike Kafka, which starts a tombstone's ``delete.retention.ms`` when its segment is
   first cleaned, logmq measures it from the tombstone's own timestamp (simpler, stateless).

The swap protocol (the part that must survive ``kill -9`` anywhere):

* the group's output is written as ``<base>.log.cleaned`` + ``.index.cleaned`` +
  ``.timeindex.cleaned`` and fsynced; a crash now leaves only ``.cleaned`` files, which
  recovery deletes (the originals are untouched);
* COMMIT: the file ``swap-replaces`` (``old: b1 b2 ...`` / ``new: b1``) is written to a
  ``.tmp`` name, fsynced, renamed over, and the directory fsynced. The rename is atomic, so
  after a crash the swap either did not happen or must be finished;
* INSTALL (idempotent, so recovery simply runs it again): every ``X.cleaned`` that still
  exists is renamed over ``X``; the replaced segments' files that no new segment reuses are
  unlinked; the directory is fsynced; ``swap-replaces`` is unlinked and the directory fsynced.

While ``swap-replaces`` exists, the directory's segment files alone may be inconsistent
(a cleaned segment next to originals it replaces), which is why :class:`PartitionLog` runs
:func:`finish_interrupted_swap` before it lists segments. In-process, the in-memory segment
list is swapped under the log's lock right after the install; readers holding the old
:class:`LogSegment` objects keep reading the unlinked files through their open descriptors.

Fault injection: set ``LOGMQ_CRASH_POINT`` to one of :data:`CRASH_POINTS` and the process
SIGKILLs itself at that step (tests run this in a subprocess). The variable is read only on
the cleaner's path, never on appends or reads.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from logmq.codec.batch import (
    LOG_OVERHEAD,
    TIMESTAMP_TYPE_MASK,
    BatchHeader,
    crc32c,
    parse_header,
    validate_batch,
)
from logmq.codec.records import RawRecord
from logmq.codec.seal import Sealer
from logmq.storage.faults import CRASH_POINT_ENV, CRASH_POINTS, crash_point
from logmq.storage.files import CLEANED_SUFFIX, SEGMENT_SUFFIXES, SWAP_FILE
from logmq.storage.fsutil import fsync_path as _fsync_file
from logmq.storage.fsutil import unlink_quiet as _unlink
from logmq.storage.index import OffsetIndex, TimeIndex
from logmq.storage.segment import (
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIMEINDEX_SUFFIX,
    LogSegment,
)
from logmq.storage.swap import (
    cleaned_path,
    commit_swap,
    finish_interrupted_swap,
    install_swap,
    read_swap_file,
)

__all__ = [
    "CLEANED_SUFFIX",
    "SWAP_FILE",
    "CRASH_POINT_ENV",
    "CRASH_POINTS",
    "CleaningAborted",
    "GroupResult",
    "Throttle",
    "build_offset_map",
    "clean_group",
    "group_segments",
    "commit_swap",
    "install_swap",
    "finish_interrupted_swap",
    "discard_cleaned",
    "crash_point",
    "cleaned_path",
    "read_swap_file",
]

_READ_CHUNK = 4 << 20
_WRITE_CHUNK = 1 << 20
_MAX_REL_OFFSET = 2**32 - 1
_MAX_POSITION = 2**31 - 1


class CleaningAborted(Exception):
    """The pass was interrupted (cleaner stopping, log closed or changed under it)."""




class Throttle:
    """Caps the cleaner's I/O rate and lets it be interrupted between batches.

    The cleaner calls :meth:`account` after each chunk of work; when it is ahead of
    ``bytes_per_sec`` it sleeps on ``stop_event`` (so a ``stop()`` cuts the sleep short), and
    when the event is set it raises :class:`CleaningAborted`. This is a rate timer, not
    synchronization: nothing waits for another thread's progress here.
    """

    def __init__(
        self,
        bytes_per_sec: float | None,
        stop_event: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bytes_per_sec = bytes_per_sec
        self._stop = stop_event if stop_event is not None else threading.Event()
        self._clock = clock
        self._start = self._last_yield = clock()
        self._bytes = 0
        self.bytes_read = 0
        self.bytes_written = 0

    def check(self) -> None:
        """Called between batches: raise if stopping, and now and then let others run.

        The cleaner is CPU-bound Python; without a voluntary GIL release, a producer thread
        that released the GIL for a write waits a whole switch interval (5 ms) to get it
        back, at every append (the "convoy" effect); yielding every millisecond keeps
        producers at a multiple of the throughput they would otherwise get.
        """
        if self._stop.is_set():
            raise CleaningAborted("cleaner stopping")
        now = self._clock()
        if now - self._last_yield >= 0.001:
            time.sleep(0)
            self._last_yield = now

    def account(self, read: int = 0, written: int = 0) -> None:
        self.bytes_read += read
        self.bytes_written += written
        self._bytes += read + written
        self.check()
        rate = self.bytes_per_sec
        if rate:
            ahead = self._bytes / rate - (self._clock() - self._start)
            if ahead > 0.001:
                if self._stop.wait(ahead):
                    raise CleaningAborted("cleaner stopping")
            elif ahead < -1.0:  # long idle gap: do not let a burst "catch up" unthrottled
                self._start = self._clock() - self._bytes / rate - 1.0


# ---------------------------------------------------------------------- reading segments
def iter_segment_batches(
    seg: LogSegment, limit: int, throttle: Throttle | None = None
) -> Iterator[tuple[bytes, int, BatchHeader, int]]:
    """(buffer, position in buffer, header, position in file) of each batch below ``limit``.

    Reads the file in large chunks (the cleaner is sequential; one pread per batch would cost
    a system call per small batch). A batch larger than a chunk gets a buffer of its own.
    """
    pos = 0
    while pos < limit:
        want = min(_READ_CHUNK, limit - pos)
        buf = seg.read(pos, want)
        if not buf:
            raise CleaningAborted(f"{seg.log_path} shorter than expected")
        if throttle is not None:
            throttle.account(read=len(buf))
        p = 0
        n = len(buf)
        while p + LOG_OVERHEAD <= n:
            h = parse_header(buf, p) if n - p >= 61 else None
            if h is None or p + h.size > n:
                break
            yield buf, p, h, pos + p
            p += h.size
        if p == 0:  # a single batch bigger than the chunk
            h = parse_header(seg.read(pos, 61))
            big = seg.read(pos, h.size)
            if throttle is not None:
                throttle.account(read=len(big))
            yield big, 0, h, pos
            p = h.size
        pos += p


def _decode(buf: bytes, pos: int, sealer: Sealer | None = None
            ) -> tuple[BatchHeader, list[RawRecord]]:
    """Decode with the CRC checked: closed segments below the recovery point were never
    re-validated at open, and a rewrite must not turn a rotten batch into one with a fresh,
    valid CRC. A bad batch stops the partition's pass with CorruptRecordError instead.
    An encrypted topic's batch is CRC-checked sealed, then opened (``sealer``)."""
    from logmq.codec.records import decode_batch

    if sealer is not None:
        validate_batch(buf, pos)
        buf, pos = sealer.open(buf, pos), 0
    return decode_batch(buf, pos, validate=True)


#: How many records' (offset, key) pairs :func:`build_offset_map` keeps per pass so that the
#: rewrite can drop or copy whole batches without decoding them a second time.
SUMMARY_RECORDS_LIMIT = 2_000_000

#: Per batch of the dirty section, keyed by (segment base, file position): its records'
#: offsets, keys, and (index, timestamp) of its tombstones.
BatchSummaries = dict[tuple[int, int], tuple[list[int], list[bytes | None], list[tuple[int, int]]]]


def build_offset_map(
    segments: Sequence[LogSegment],
    throttle: Throttle | None = None,
    summaries: BatchSummaries | None = None,
    sealer: Sealer | None = None,
    aborted: Callable[[BatchHeader], bool] | None = None,
) -> dict[bytes, int]:
    """key -> offset of its latest record in ``segments`` (null keys and control batches skipped).

    ``aborted`` tells batches of aborted transactions: they are skipped too (an aborted
    write must not make compaction drop the committed value it never replaced).

    With ``summaries``, also remembers each batch's offsets and keys (up to
    :data:`SUMMARY_RECORDS_LIMIT` records), so :func:`clean_group` can decide whether a dirty
    batch goes whole or stays whole without decoding it again: decoding is most of the
    cleaner's CPU time, and after many updates most dirty batches go whole.
    """
    latest: dict[bytes, int] = {}
    budget = SUMMARY_RECORDS_LIMIT if summaries is not None else 0
    for seg in segments:
        for buf, pos, h, fpos in iter_segment_batches(seg, seg.size, throttle):
            if throttle is not None:
                throttle.check()
            if h.is_control or h.record_count == 0 or (aborted is not None and aborted(h)):
                continue
            _, records = _decode(buf, pos, sealer)
            for rec in records:
                k = rec[2]
                if k is not None:
                    latest[k] = rec[0]
            if budget >= len(records):
                budget -= len(records)
                assert summaries is not None
                summaries[(seg.base_offset, fpos)] = (
                    [r[0] for r in records],
                    [r[2] for r in records],
                    [(i, r[1]) for i, r in enumerate(records) if r[3] is None],
                )
    return latest


def _verdict(
    summary: tuple[list[int], list[bytes | None], list[tuple[int, int]]],
    offset_map: dict[bytes, int],
    horizon: int,
) -> tuple[int, int, int]:
    """(records kept, records removed, tombstones removed) of a summarized batch."""
    offsets, keys, tombs = summary
    get = offset_map.get
    kept = 0
    for off, key in zip(offsets, keys, strict=True):
        if key is not None and off >= get(key, off):
            kept += 1
    dead_tombs = 0
    for i, ts in tombs:
        key = keys[i]
        if ts < horizon and key is not None and offsets[i] >= get(key, offsets[i]):
            dead_tombs += 1
    kept -= dead_tombs
    return kept, len(offsets) - kept, dead_tombs


# ---------------------------------------------------------------------- grouping
def group_segments(
    segments: Sequence[LogSegment], ends: Sequence[int], max_bytes: int
) -> list[list[LogSegment]]:
    """Split consecutive segments into runs whose total size fits in one output segment.

    ``ends[i]`` is the offset after segment ``i`` (the next segment's base offset).
    Besides ``max_bytes`` (the topic's ``segment.bytes``), a group must keep every offset
    within 2**32 of its base (the index stores u32 relative offsets) and every position
    below 2**31, the limits a single segment has.
    """
    groups: list[list[LogSegment]] = []
    cur: list[LogSegment] = []
    size = 0
    for seg, end in zip(segments, ends, strict=True):
        if cur:
            span = end - cur[0].base_offset
            if (size + seg.size > max_bytes or size + seg.size > _MAX_POSITION
                    or span > _MAX_REL_OFFSET):
                groups.append(cur)
                cur, size = [], 0
        cur.append(seg)
        size += seg.size
    if cur:
        groups.append(cur)
    return groups


# ---------------------------------------------------------------------- writing
class _CleanedWriter:
    """Writes one output segment as ``.cleaned`` files, indexing it the way LogSegment does."""

    def __init__(self, directory: str, base: int, index_interval_bytes: int) -> None:
        self.directory = directory
        self.base = base
        self.log_path = cleaned_path(directory, base, LOG_SUFFIX)
        self.index = OffsetIndex(cleaned_path(directory, base, INDEX_SUFFIX), base)
        self.time_index = TimeIndex(cleaned_path(directory, base, TIMEINDEX_SUFFIX), base)
        self.index.reset()
        self.time_index.reset()
        self.interval = index_interval_bytes
        self._fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._buf: list[bytes] = []
        self._buffered = 0
        self.size = 0
        self._since_index = 0
        self.max_ts = -1
        self.offset_of_max_ts = base
        self.batches = 0

    def append(self, data: bytes, h: BatchHeader) -> None:
        pos = self.size
        if self._since_index >= self.interval or pos == 0:
            self.index.append(h.base_offset, pos)
            if self.max_ts >= 0:
                self.time_index.append(self.max_ts, self.offset_of_max_ts)
            self._since_index = 0
        self._since_index += len(data)
        if h.max_timestamp > self.max_ts:
            self.max_ts = h.max_timestamp
            self.offset_of_max_ts = h.last_offset
        self._buf.append(data)
        self._buffered += len(data)
        self.size += len(data)
        self.batches += 1
        if self._buffered >= _WRITE_CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        data = b"".join(self._buf)
        self._buf.clear()
        self._buffered = 0
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def finish(self) -> None:
        """Write out and fsync all three files (they must be durable before the commit)."""
        self._flush()
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        if self.max_ts >= 0:
            self.time_index.append(self.max_ts, self.offset_of_max_ts)
        self.index.save()  # always creates the file: a reused name must not keep a stale index
        self.time_index.save()
        _fsync_file(self.index.path)
        _fsync_file(self.time_index.path)

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        discard_cleaned(self.directory, [self.base])


def discard_cleaned(directory: str, bases: Sequence[int]) -> None:
    for b in bases:
        for suffix in SEGMENT_SUFFIXES:
            _unlink(cleaned_path(directory, b, suffix))
            _unlink(cleaned_path(directory, b, suffix) + ".tmp")


@dataclass
class GroupResult:
    """Outcome of rewriting one group of segments into ``<base>.*.cleaned`` files."""

    base: int
    old_bases: list[int]
    records_in: int = 0
    records_removed: int = 0
    tombstones_removed: int = 0
    batches_reencoded: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    written: bool = False  # .cleaned files exist and are waiting for the swap

    @property
    def changed(self) -> bool:
        return self.records_removed > 0 or len(self.old_bases) > 1


def clean_group(
    directory: str,
    group: Sequence[LogSegment],
    offset_map: dict[bytes, int],
    *,
    tombstone_horizon_ms: int,
    index_interval_bytes: int,
    throttle: Throttle | None = None,
    summaries: BatchSummaries | None = None,
    sealer: Sealer | None = None,
    aborted: Callable[[BatchHeader], bool] | None = None,
) -> GroupResult:
    """Rewrite ``group`` into ``<first base>.*.cleaned`` files (not yet swapped in).

    A group made of one segment from which nothing would be removed is not written at all
    (``written`` stays False): rewriting it would change nothing but cost I/O and a swap.
    Tombstones whose timestamp is below ``tombstone_horizon_ms`` are removed. ``summaries``
    (from :func:`build_offset_map`) spare decoding batches that go or stay whole. With
    ``sealer`` (an encrypted topic) batches are opened to be read and a re-encoded batch is
    sealed afresh; a batch copied whole stays as it was sealed (its base offset is kept).
    Batches of aborted transactions (``aborted``) go whole, as Kafka's cleaner removes them.
    """
    from logmq.codec.records import encode_batch

    base = group[0].base_offset
    res = GroupResult(base, [s.base_offset for s in group])
    for seg in group:
        # Load the indexes of the segments about to be replaced now, long before their files
        # are renamed over: a reader still holding one of these segments after the swap must
        # find the old file's index in memory, not read the new file's from disk.
        len(seg.index)
        len(seg.time_index)
        _ = seg.max_timestamp
    discard_cleaned(directory, [base])
    writer = _CleanedWriter(directory, base, index_interval_bytes)
    first_written = False
    try:
        for seg in group:
            res.bytes_in += seg.size
            for buf, pos, h, fpos in iter_segment_batches(seg, seg.size, throttle):
                if throttle is not None:
                    throttle.check()
                if h.is_control:
                    data = buf[pos : pos + h.size]
                    writer.append(data, h)
                    continue
                if aborted is not None and aborted(h):
                    res.records_in += h.record_count
                    res.records_removed += h.record_count
                    continue
                summary = summaries.get((seg.base_offset, fpos)) if summaries else None
                if summary is not None:
                    kept_n, removed_n, tombs_n = _verdict(summary, offset_map,
                                                          tombstone_horizon_ms)
                    if not kept_n or not removed_n:  # all go or all stay: no decoding
                        res.records_in += kept_n + removed_n
                        res.records_removed += removed_n
                        res.tombstones_removed += tombs_n
                        if kept_n:
                            writer.append(buf[pos : pos + h.size], h)
                            if throttle is not None:
                                throttle.account(written=h.size)
                            if not first_written:
                                first_written = True
                                crash_point("cleaning-partial")
                        continue
                _, records = _decode(buf, pos, sealer)
                res.records_in += len(records)
                kept = []
                for rec in records:
                    off, ts, key, value = rec[0], rec[1], rec[2], rec[3]
                    if key is None:
                        continue
                    if off < offset_map.get(key, off):
                        continue
                    if value is None and ts < tombstone_horizon_ms:
                        res.tombstones_removed += 1
                        continue
                    kept.append(rec)
                removed = len(records) - len(kept)
                res.records_removed += removed
                if not kept:
                    continue
                if not removed:
                    data = buf[pos : pos + h.size]
                    out_h = h
                else:
                    b0 = h.base_offset
                    data = encode_batch(
                        [(r[2], r[3], r[4]) if r[4] else (r[2], r[3]) for r in kept],
                        base_offset=b0,
                        timestamps=[r[1] for r in kept],
                        offset_deltas=[r[0] - b0 for r in kept],
                        compression=h.compression,
                        producer_id=h.producer_id,
                        producer_epoch=h.producer_epoch,
                        base_sequence=h.base_sequence,
                        leader_epoch=h.leader_epoch,
                        transactional=h.is_transactional,
                        timestamp_type=1 if h.attributes & TIMESTAMP_TYPE_MASK else 0,
                    )
                    out_h = parse_header(data)
                    if out_h.last_offset_delta != h.last_offset_delta:
                        data, out_h = _keep_last_offset(data, h.last_offset_delta)
                    if sealer is not None:
                        data = sealer.seal(data)
                        out_h = parse_header(data)
                    res.batches_reencoded += 1
                writer.append(data, out_h)
                if throttle is not None:
                    throttle.account(written=len(data))
                if not first_written:
                    first_written = True
                    crash_point("cleaning-partial")
        if not res.changed:
            writer.abort()
            return res
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    res.bytes_out = writer.size
    res.written = True
    crash_point("cleaned-written")
    return res


def _keep_last_offset(data: bytes, last_offset_delta: int) -> tuple[bytes, BatchHeader]:
    """Give a thinned batch its source batch's lastOffsetDelta back (and a fresh CRC).

    Kafka keeps a cleaned batch's last offset even when its last record went: a consumer
    whose position is inside the batch then moves past it in one step instead of stalling
    on a gap, and an idempotent producer's baseSequence..lastSequence range stays as sent.
    """
    buf = bytearray(data)
    struct.pack_into(">i", buf, 23, last_offset_delta)
    struct.pack_into(">I", buf, 17, crc32c(memoryview(buf)[21:]))
    out = bytes(buf)
    return out, parse_header(out)
