"""Opening a partition: its checkpoint, the segments on disk, recovery and producer state.

Kafka's ``LogLoader`` in spirit, kept next to the format it recovers. A mixin of
:class:`PartitionLog`: it runs once, from the constructor, before the log takes appends.
Recovery follows these rules:

* A cleanly closed data directory (the broker's clean-shutdown marker) is trusted: closed
  segments are not read at all, and only the last index interval of the active segment is
  walked to find the next offset.
* Otherwise every segment from the one holding the checkpointed recovery point onward is
  scanned: each batch's length and CRC are checked, indexes are rebuilt, and the first invalid
  batch *above the recovery point* ends the log (it and everything after it, including later
  segments, is cut, and the cut is logged at WARNING with partition, byte range and record
  count). Batches below the recovery point were fsynced before the checkpoint was written, so
  an invalid one there is damage, not a torn write: it raises CorruptRecordError naming file
  and byte (``repair=True`` cuts there instead, with the same warning). Segments before the
  recovery point are not scanned; corruption there surfaces when read, as the same error.
* A clean marker is trusted only if the checkpoint agrees (recovery point == log end): a
  partition whose close failed (full disk, failed fsync) is recovered like after a crash.
* Leftovers of an interrupted compaction swap are finished or discarded (see ``_finish_swaps``).
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_right

from logmq.config import TopicConfig
from logmq.errors import CorruptRecordError
from logmq.storage.files import CHECKPOINT
from logmq.storage.fsutil import fsync_path as _fsync_dir
from logmq.storage.fsutil import write_file_atomically
from logmq.storage.producer_state import ProducerStateTable
from logmq.storage.segment import LOG_SUFFIX, WHOLE, LogSegment
from logmq.storage.txn_index import TxnIndex, close_transaction, marker_kind

__all__ = ["LogLoader"]

log = logging.getLogger("logmq.storage")
_log = log


class LogLoader:
    """The open/recovery half of a partition log (state it sets is the log's own)."""

    directory: str
    topic: str
    partition: int
    config: TopicConfig
    repair: bool
    recovery_point: int
    log_start_offset: int
    recovered_bytes_truncated: int
    producer_state: ProducerStateTable
    txn_index: TxnIndex
    _on_disk: tuple[int, int] | None
    _no_producers_below: int
    _segments: list[LogSegment]
    _bases: list[int]

    @property
    def next_offset(self) -> int:
        raise NotImplementedError

    # ------------------------------------------------------------------ checkpoint
    def _read_checkpoint(self) -> tuple[int, int]:
        try:
            with open(os.path.join(self.directory, CHECKPOINT), "rb") as f:
                parts = f.read().split()
            self._on_disk = int(parts[0]), int(parts[1])
            if len(parts) > 2:
                self._no_producers_below = int(parts[2])
            return self._on_disk
        except (FileNotFoundError, IndexError, ValueError):
            return 0, 0

    def _write_checkpoint(self) -> None:
        self._write_checkpoint_at(self.recovery_point)

    def _write_checkpoint_at(self, recovery_point: int) -> None:
        # third field: below this offset no batch carries a producer id (-1: unknown), so
        # opening a log that never saw an idempotent producer reads no batch headers at all
        # (there is no producer snapshot to start from in that case)
        ps = getattr(self, "producer_state", None)
        clean_below = recovery_point if ps is not None and not ps.producers else -1
        data = f"{recovery_point} {self.log_start_offset} {clean_below}\n".encode()
        write_file_atomically(os.path.join(self.directory, CHECKPOINT), data)
        self._on_disk = recovery_point, self.log_start_offset

    # ------------------------------------------------------------------ open / recovery
    def _finish_swaps(self, names: list[str]) -> bool:
        """Complete or undo a compaction swap interrupted by a crash (before segments load).

        The cleaner writes ``X.log.cleaned`` (+ index files), then commits by atomically
        writing ``swap-replaces`` (old and new base offsets), then renames the ``.cleaned``
        files over their final names and unlinks the replaced segments. So: a ``swap-replaces``
        file means a committed swap, whose install is re-run (it is idempotent); without it,
        ``.cleaned`` files are an unfinished pass and are deleted. See
        :mod:`logmq.storage.compactor` for the full protocol.
        """
        from logmq.storage.compactor import finish_interrupted_swap

        return finish_interrupted_swap(self.directory, names)

    def _load(self, clean: bool) -> None:
        names = os.listdir(self.directory)
        if self._finish_swaps(names):
            names = os.listdir(self.directory)
        bases = sorted(int(n[:-4]) for n in names if n.endswith(LOG_SUFFIX) and n[:-4].isdigit())
        iv = self.config.index_interval_bytes
        self._segments = [LogSegment(self.directory, b, iv) for b in bases]
        if not self._segments:
            self._segments = [LogSegment(self.directory, self.log_start_offset, iv)]
            self._segments[0].next_offset = self.log_start_offset
            _fsync_dir(self.directory)
        self._bases = [s.base_offset for s in self._segments]
        if clean:
            try:
                self._segments[-1].load_clean()
                for s in self._segments[:-1]:
                    if not os.path.exists(s.index.path) and s.size:
                        s.recover(intact_below=WHOLE)
                if self.recovery_point == self.next_offset:
                    self._after_load()
                    return
                log.warning("partition %s-%d: checkpoint at offset %d but log ends at %d "
                            "although closed cleanly (its close failed?): recovering",
                            self.topic, self.partition, self.recovery_point, self.next_offset)
            except CorruptRecordError as e:
                if not self.repair:
                    # After a clean close nothing can be torn: this is damage. Say so rather
                    # than truncating data that may be good beyond the damaged bytes.
                    err = CorruptRecordError(
                        f"{e.args[0]} (partition {self.topic}-{self.partition} was closed "
                        "cleanly, so this is damage, not a torn write; run `logmq verify`, "
                        "or open with repair=True to cut the partition at the damage)")
                    err.path, err.position = e.path, e.position
                    raise err from None
        self._recover()
        self._after_load()

    def _recover(self) -> None:
        start = max(0, bisect_right(self._bases, self.recovery_point) - 1)
        for s in self._segments[:start]:
            if s.size and not os.path.exists(s.index.path):
                # a missing index is rebuilt even below the recovery point; the log must be whole
                self._recover_segment(s, WHOLE)
        truncated_at: int | None = None
        for i in range(start, len(self._segments)):
            seg = self._segments[i]
            cut = self._recover_segment(seg, self.recovery_point if i == start else 0)
            self.recovered_bytes_truncated += cut
            if cut:
                truncated_at = i
                break
        if truncated_at is not None:
            for seg in self._segments[truncated_at + 1 :]:
                self.recovered_bytes_truncated += seg.size
                log.warning("partition %s-%d: recovery deleted segment %s (bytes 0-%d, %d "
                            "records) behind the cut", self.topic, self.partition,
                            seg.log_path, seg.size, self._records_in(seg))
                seg.delete()
            del self._segments[truncated_at + 1 :]
            self._bases = [s.base_offset for s in self._segments]
        active = self._segments[-1]
        if active.size == 0 and active.next_offset < active.base_offset:
            active.next_offset = active.base_offset

    def _recover_segment(self, seg: LogSegment, intact_below: int) -> int:
        """Recover one segment; damage below ``intact_below`` raises unless ``repair``."""
        try:
            cut = seg.recover(intact_below=0 if self.repair else intact_below)
        except CorruptRecordError as e:
            err = CorruptRecordError(
                f"{e.args[0]}: partition {self.topic}-{self.partition} was checkpointed at "
                f"offset {self.recovery_point}; run `logmq verify`, or open with repair=True "
                "to cut the partition at the damage", path=e.path, position=e.position)
            raise err from None
        if cut and seg.last_cut is not None:
            first, end, records = seg.last_cut
            log.warning("partition %s-%d: recovery cut bytes %d-%d of %s (%d bytes, about %d "
                        "records by their batch headers)%s", self.topic, self.partition,
                        first, end, seg.log_path, end - first, records,
                        " below the recovery point (repair=True)"
                        if seg.next_offset < intact_below else "")
        return cut

    @staticmethod
    def _records_in(seg: LogSegment) -> int:
        try:
            return LogSegment._count_records(seg.handle(), 0, seg.size)
        except OSError:  # only for a log line
            return -1

    def _after_load(self) -> None:
        active = self._segments[-1]
        if active.size == 0:
            active.next_offset = max(active.base_offset, active.next_offset)
        if self.log_start_offset < self._segments[0].base_offset:
            self.log_start_offset = self._segments[0].base_offset
        if self.log_start_offset > self.next_offset:
            self.log_start_offset = self.next_offset
        self.recovery_point = min(self.recovery_point, self.next_offset)

    def _load_producer_state(self) -> None:
        """Snapshot, then the headers of every batch after it (none after a clean close)."""
        ps = self.producer_state
        ps.load()
        end = self.next_offset
        self.txn_index.load(self._bases, end)
        if ps.snapshot_offset > end:  # the log lost its tail in recovery
            ps.truncate(end)
            ps.snapshot_offset = end
        start = max(ps.snapshot_offset, self.log_start_offset)
        if not ps.producers and self._no_producers_below > start:
            start = min(self._no_producers_below, end)
        if start >= end:
            return
        i = max(0, bisect_right(self._bases, start) - 1)
        for seg in self._segments[i:]:
            found = seg.translate(start)
            if found is None:
                continue
            for pos, h in seg.iter_headers(found[0]):
                if h.producer_id >= 0:
                    if h.is_control:  # a marker: the transaction it ends is closed
                        commit, cepoch = marker_kind(seg.read(pos, h.size), h)
                        close_transaction(ps, self.txn_index, self._bases, h.next_offset,
                                          h.producer_id, h.producer_epoch, commit,
                                          h.base_offset, cepoch)
                    else:
                        ps.update(h, h.base_offset)

    def _snapshot_producers(self) -> None:
        ps = self.producer_state
        self.txn_index.sync()  # entries at or below the snapshot must not need a replay
        if ps.producers or ps.snapshot_offset:
            ps.snapshot(self.next_offset)
