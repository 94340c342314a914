"""The background cleaner: time/size retention and key compaction of every partition.

One thread per data directory wakes every ``check_interval_ms`` (or on :meth:`Cleaner.wake`), reads
each topic's *current* config from ``store.topic_settings()`` (so ``alter_topic_config`` takes
effect at the next pass without a restart) and, per partition:

* ``cleanup.policy`` contains ``delete``: drops whole closed segments from the start of the
  log while the oldest one's max timestamp is older than ``retention.ms``, then while the
  partition is larger than ``retention.bytes``. Only a prefix can go (the log start offset is
  one number) and never the active segment. Readers below the new start get
  ``OffsetOutOfRangeError`` and apply their reset policy.
* ``cleanup.policy`` contains ``compact``: when the dirty share of the cleanable log reaches
  ``min.cleanable.dirty.ratio`` (or always with ``run_once(force=True)``), keeps only the
  latest record per key among the closed segments; see :mod:`logmq.storage.compactor` for
  the semantics and the crash-safe swap. Null-key records are dropped by compaction (Kafka
  refuses them at produce time on compacted topics; logmq accepts them, so they live until
  the first cleaning).
* the topic is encrypted (``encryption``): closed segments holding batches not sealed under
  the active key (after a rotation, or plain ones from before encryption was turned on) are
  re-sealed, one segment at a time (:func:`logmq.storage.sealing.reseal_partition`).

The *cleaner checkpoint* (file ``cleaner-checkpoint`` in the partition directory) is the first
dirty offset: everything below it was cleaned by a completed pass, so its keys are unique and
only the segments from it onward need to be read to build the key map. Losing or lowering it
only costs work; it is written after a pass has swapped every group in.

The cleaner's I/O is throttled to ``max_bytes_per_sec`` (reads plus writes) so producers and
consumers sharing the disk are not starved, and a pass checks for :meth:`Cleaner.stop`
between batches, so closing the broker is prompt even in the middle of a large pass.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from logmq.config import BROKER_KEYS, TopicConfig
from logmq.errors import LogMQError, UnknownTopicError
from logmq.storage import compactor, sealing
from logmq.storage.compactor import CleaningAborted, Throttle
from logmq.storage.files import CLEANER_CHECKPOINT
from logmq.storage.fsutil import write_file_atomically
from logmq.storage.interface import LogStore
from logmq.storage.log import PartitionLog
from logmq.storage.txn_ops import aborted_batch_filter, last_stable_offset

__all__ = ["Cleaner", "CHECKPOINT_FILE", "read_cleaner_checkpoint"]

log = logging.getLogger("logmq.cleaner")

CHECKPOINT_FILE = CLEANER_CHECKPOINT
DEFAULT_CHECK_INTERVAL_MS: int = BROKER_KEYS["cleaner_check_interval_ms"].default
DEFAULT_MAX_BYTES_PER_SEC: float = BROKER_KEYS["cleaner_max_bytes_per_sec"].default

_COUNTERS = (
    "partitions_checked",
    "partitions_compacted",
    "segments_deleted",
    "bytes_deleted",
    "offsets_deleted",
    "segments_cleaned",
    "segments_written",
    "records_removed",
    "tombstones_removed",
    "bytes_cleaned",
    "bytes_read",
    "bytes_written",
    "segments_resealed",
)


def read_cleaner_checkpoint(directory: str) -> int:
    """First dirty offset of a partition (0, i.e. "everything is dirty", when unknown)."""
    try:
        with open(os.path.join(directory, CHECKPOINT_FILE), "rb") as f:
            return int(f.read().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return 0


def _write_cleaner_checkpoint(directory: str, offset: int) -> None:
    write_file_atomically(os.path.join(directory, CHECKPOINT_FILE), f"{offset}\n".encode())


def _new_stats() -> dict[str, Any]:
    stats: dict[str, Any] = dict.fromkeys(_COUNTERS, 0)
    stats.update(seconds=0.0, mb_per_sec=0.0, aborted=False, errors=[])
    return stats


class Cleaner:
    """Retention and compaction for every partition of ``store``; one background thread.

    ``check_interval_ms`` is how long the thread sleeps between passes (a timer: correctness
    never depends on it). ``max_bytes_per_sec`` caps the cleaner's disk I/O; None disables
    the cap. :meth:`run_once` does one pass synchronously (CLI ``logmq compact``, tests).
    Cumulative counters are in :attr:`totals`; each pass's in :attr:`last_stats`.
    ``time_fn`` is the wall clock (seconds) retention ages are measured against.
    """

    def __init__(
        self,
        store: LogStore,
        *,
        check_interval_ms: float = DEFAULT_CHECK_INTERVAL_MS,
        max_bytes_per_sec: float | None = DEFAULT_MAX_BYTES_PER_SEC,
        time_fn: Callable[[], float] = time.time,
    ) -> None:
        if check_interval_ms <= 0:
            raise ValueError("check_interval_ms must be > 0")
        if max_bytes_per_sec is not None and max_bytes_per_sec <= 0:
            raise ValueError("max_bytes_per_sec must be > 0 or None")
        self.store = store
        self._time = time_fn
        self.check_interval_ms = check_interval_ms
        self.max_bytes_per_sec = max_bytes_per_sec
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._pass_lock = threading.Lock()  # one pass at a time (thread vs run_once callers)
        self._thread: threading.Thread | None = None
        self.totals: dict[str, Any] = _new_stats()
        self.last_stats: dict[str, Any] | None = None
        self.passes = 0
        #: Set while a pass runs: lets a caller (a test, a status command) see that the
        #: cleaner is busy without polling its internals.
        self.in_pass = threading.Event()
        self._passes_cond = threading.Condition()

    # ------------------------------------------------------------------ thread
    def start(self) -> None:
        """Start the background thread; its first pass comes one interval after start."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="logmq-cleaner", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run a pass now instead of at the end of the current interval."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread, interrupting a running pass at its next batch, and join it.

        An interrupted pass leaves only ``.cleaned`` files that it removes itself (or that the
        next open removes); a swap already committed is always completed first, since the
        interruption is checked between batches and never inside the swap.
        """
        self._stopping.set()
        self._wake.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
            if not t.is_alive():
                self._thread = None

    def wait_for_passes(self, count: int, timeout: float | None = None) -> bool:
        """Block until at least ``count`` passes have completed (True) or ``timeout`` ends."""
        with self._passes_cond:
            return self._passes_cond.wait_for(lambda: self.passes >= count, timeout)

    @property
    def running(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.check_interval_ms / 1000)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.run_once()
            except Exception:  # a bug must not kill the thread for the life of the broker
                log.exception("cleaner pass failed")

    # ------------------------------------------------------------------ one pass
    def run_once(
        self,
        now_ms: int | None = None,
        *,
        force: bool = False,
        topics: list[str] | None = None,
        max_bytes_per_sec: float | None | bool = True,
    ) -> dict[str, Any]:
        """One synchronous pass over every partition (or those of ``topics``); returns stats.

        ``now_ms`` replaces the wall clock for retention, tombstone and compaction-lag ages
        (tests use it instead of sleeping). ``force`` compacts whatever the dirty ratio.
        ``max_bytes_per_sec`` overrides the cleaner's throttle for this pass (None: none).
        The stats count bytes read/written, segments deleted/cleaned, records removed and
        ``mb_per_sec`` (MiB of segments compacted per second of the pass); ``aborted`` is
        True when :meth:`stop` interrupted it.
        """
        now = int(self._time() * 1000) if now_ms is None else int(now_ms)
        rate = self.max_bytes_per_sec if max_bytes_per_sec is True else (max_bytes_per_sec or None)
        t0 = time.monotonic()
        with self._pass_lock:
            self.in_pass.set()
            try:
                return self._run_pass(now, force, topics, rate, t0)
            finally:
                self.in_pass.clear()

    def _run_pass(self, now: int, force: bool, topics: list[str] | None,
                  rate: float | None, t0: float) -> dict[str, Any]:
        stats = _new_stats()
        throttle = Throttle(rate, self._stopping)
        items = self.store.partition_logs()
        try:
            for (topic, _p), plog in items:
                if topics is not None and topic not in topics:
                    continue
                throttle.check()
                try:
                    cfg = self.store.topic_settings(topic)
                except UnknownTopicError:
                    continue  # deleted since the snapshot
                if plog.closed:
                    continue
                stats["partitions_checked"] += 1
                try:
                    self._clean_partition(plog, cfg, now, force, throttle, stats)
                except CleaningAborted:
                    raise
                except (OSError, LogMQError) as e:
                    if plog.closed:
                        continue  # topic deleted or broker closing under us
                    log.warning("cleaning %s-%d failed: %s", plog.topic, plog.partition, e)
                    stats["errors"].append(f"{plog.topic}-{plog.partition}: {e}")
        except CleaningAborted:
            stats["aborted"] = True
        stats["bytes_read"] = throttle.bytes_read
        stats["bytes_written"] = throttle.bytes_written
        stats["seconds"] = secs = time.monotonic() - t0
        if secs > 0:
            stats["mb_per_sec"] = stats["bytes_cleaned"] / (1 << 20) / secs
        self._accumulate(stats)
        self.last_stats = stats
        with self._passes_cond:
            self.passes += 1
            self._passes_cond.notify_all()
        return stats

    def _accumulate(self, stats: dict[str, Any]) -> None:
        tot = self.totals
        for k in _COUNTERS:
            tot[k] += stats[k]
        tot["seconds"] += stats["seconds"]
        if tot["seconds"] > 0:
            tot["mb_per_sec"] = tot["bytes_cleaned"] / (1 << 20) / tot["seconds"]
        tot["errors"] = (tot["errors"] + stats["errors"])[-100:]

    def _clean_partition(self, plog: PartitionLog, cfg: TopicConfig, now: int, force: bool,
                         throttle: Throttle, stats: dict[str, Any]) -> None:
        if cfg.delete:
            self._retain(plog, cfg, now, stats)
        if cfg.compact:
            self._compact(plog, cfg, now, force, throttle, stats)
        if plog.sealer is not None:  # encryption at rest: closed segments under the active key
            stats["segments_resealed"] += sealing.reseal_partition(
                plog, throttle)["segments_resealed"]

    # ------------------------------------------------------------------ retention
    def _retain(self, plog: PartitionLog, cfg: TopicConfig, now: int,
                stats: dict[str, Any]) -> None:
        retention_ms = cfg.retention_ms
        retention_bytes = cfg.retention_bytes
        while True:
            segs = plog.segments
            if len(segs) < 2:
                return
            oldest = segs[0]
            expired = retention_ms >= 0 and now - oldest.max_timestamp > retention_ms
            too_big = retention_bytes >= 0 and sum(s.size for s in segs) > retention_bytes
            if not (expired or too_big):
                return
            gone = plog.delete_oldest_segment(expected=oldest)
            if gone is None:
                return  # the log changed under us (delete_records); look again next pass
            stats["segments_deleted"] += 1
            stats["bytes_deleted"] += gone.size
            stats["offsets_deleted"] += segs[1].base_offset - oldest.base_offset

    # ------------------------------------------------------------------ compaction
    def _compact(self, plog: PartitionLog, cfg: TopicConfig, now: int, force: bool,
                 throttle: Throttle, stats: dict[str, Any]) -> None:
        segs = plog.segments
        closed = segs[:-1]
        if not closed:
            return
        lag = cfg.min_compaction_lag_ms
        end = len(closed)
        if lag > 0:  # as in Kafka, a zero lag makes every closed segment cleanable
            for i, s in enumerate(closed):
                if s.max_timestamp > now - lag:
                    end = i
                    break
        lso = last_stable_offset(plog)  # as Kafka: never clean into an open transaction
        while end > 0 and segs[end].base_offset > lso:
            end -= 1
        cleanable = closed[:end]
        if not cleanable:
            return
        first_uncleanable = segs[end].base_offset
        checkpoint = read_cleaner_checkpoint(plog.directory)
        if checkpoint > plog.next_offset:
            checkpoint = 0  # the log was truncated below it: trust nothing
        # A closed segment's end is the next segment's base (its own next_offset is only
        # known once its tail was read, which a clean open skips).
        ends = [s.base_offset for s in segs[1 : end + 1]]
        dirty = [s for s, e in zip(cleanable, ends, strict=True) if e > checkpoint]
        dirty_bytes = sum(s.size for s in dirty)
        total_bytes = sum(s.size for s in cleanable)
        ratio = dirty_bytes / total_bytes if total_bytes else 0.0
        if not force and (not dirty_bytes or ratio < cfg.min_cleanable_dirty_ratio):
            return
        stats["partitions_compacted"] += 1
        summaries: compactor.BatchSummaries = {}
        aborted = aborted_batch_filter(plog)
        offset_map = compactor.build_offset_map(dirty, throttle, summaries, plog.sealer,
                                                aborted=aborted)
        horizon = now - cfg.delete_retention_ms
        directory = plog.directory
        iv = plog.config.index_interval_bytes
        for group in compactor.group_segments(cleanable, ends, cfg.segment_bytes):
            res = compactor.clean_group(
                directory, group, offset_map, tombstone_horizon_ms=horizon,
                index_interval_bytes=iv, throttle=throttle, summaries=summaries,
                sealer=plog.sealer, aborted=aborted)
            stats["bytes_cleaned"] += res.bytes_in
            if not res.written:
                continue
            new = plog.replace_segments(group, [res.base])
            if new is None:
                compactor.discard_cleaned(directory, [res.base])
                return  # the log changed under us: leave the checkpoint, retry next pass
            stats["segments_cleaned"] += len(group)
            stats["segments_written"] += len(new)
            stats["records_removed"] += res.records_removed
            stats["tombstones_removed"] += res.tombstones_removed
        if first_uncleanable != checkpoint:
            _write_cleaner_checkpoint(directory, first_uncleanable)
            compactor.crash_point("checkpoint-written")
