"""Idempotent-producer state of one partition: the last sequence numbers per producer id.

Kafka's idempotence puts (producerId, producerEpoch, baseSequence) in every batch header. The
partition remembers, per producer, the metadata of its last few appended batches, so that a
retried batch (same sequence range) is acknowledged with its original offset instead of being
appended twice, and a gap in sequence numbers is refused with OUT_OF_ORDER_SEQUENCE_NUMBER.

The state is derived from the log itself: the batch headers carry all of it. So it is kept in
memory, snapshotted to ``producer-snapshot`` (next to the segments) whenever the partition
checkpoints, and after a crash rebuilt by replaying the headers of batches after the
snapshot's offset. That keeps it exactly in step with the log, with no extra fsync per append.
"""

from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass, field

from logmq.codec.batch import CONTROL_MASK, TRANSACTIONAL_MASK, BatchHeader
from logmq.errors import (
    DuplicateSequenceError,
    InvalidProducerEpochError,
    OutOfOrderSequenceError,
)
from logmq.storage.fsutil import write_file_atomically

__all__ = ["ProducerStateTable", "ProducerEntry", "BATCHES_KEPT"]

#: Batches remembered per producer: Kafka clients keep at most 5 requests in flight.
BATCHES_KEPT = 5
SNAPSHOT = "producer-snapshot"


@dataclass
class ProducerEntry:
    epoch: int
    #: offset of this producer's first batch in the open transaction (-1: none open); the
    #: partition's last stable offset is the smallest of these
    txn_first: int = -1
    #: the max timestamp of the producer's last batch (DescribeProducers' LastTimestamp)
    last_timestamp: int = -1
    #: the coordinator epoch of the last marker (DescribeProducers' LatestCoordinatorEpoch)
    coordinator_epoch: int = -1
    # (first_seq, last_seq, base_offset) of the most recent batches, oldest first
    batches: deque[tuple[int, int, int]] = field(default_factory=lambda: deque(maxlen=BATCHES_KEPT))

    @property
    def last_seq(self) -> int:
        return self.batches[-1][1] if self.batches else -1


def _next_seq(seq: int) -> int:
    return 0 if seq == 2**31 - 1 else seq + 1


class ProducerStateTable:
    """Per-producer sequence tracking for one partition. Not thread-safe: the log's lock is."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, SNAPSHOT)
        self.producers: dict[int, ProducerEntry] = {}
        #: producer id -> first offset of its open transaction (what the LSO is computed
        #: from without walking every producer the partition ever saw)
        self.ongoing: dict[int, int] = {}
        self.snapshot_offset = 0

    def check(self, h: BatchHeader) -> int | None:
        """Validate an incoming batch; the base offset of its earlier copy if it is a retry.

        Raises OutOfOrderSequenceError for a gap and InvalidProducerEpochError for a fenced
        (older) epoch. Batches without a producer id (-1) are not tracked.
        """
        pid = h.producer_id
        if pid < 0 or h.base_sequence < 0:
            return None
        e = self.producers.get(pid)
        if e is None or h.producer_epoch > e.epoch:
            if h.base_sequence != 0 and e is not None:
                raise OutOfOrderSequenceError(
                    f"producer {pid} epoch {h.producer_epoch} must start at sequence 0")
            return None
        if h.producer_epoch < e.epoch:
            raise InvalidProducerEpochError(
                f"producer {pid} epoch {h.producer_epoch} is older than {e.epoch}")
        last = h.base_sequence + h.last_offset_delta
        for first_seq, last_seq, base in e.batches:
            if first_seq == h.base_sequence and last_seq == last:
                return base
        if h.base_sequence != _next_seq(e.last_seq):
            if e.batches and e.batches[0][0] <= h.base_sequence <= e.last_seq:
                raise DuplicateSequenceError(
                    f"producer {pid}: sequence {h.base_sequence} was already appended")
            raise OutOfOrderSequenceError(
                f"producer {pid}: expected sequence {_next_seq(e.last_seq)}, "
                f"got {h.base_sequence}")
        return None

    def update(self, h: BatchHeader, base_offset: int) -> None:
        """Record an appended batch (``h`` carries the assigned base offset)."""
        pid = h.producer_id
        if pid < 0 or h.base_sequence < 0 or h.attributes & CONTROL_MASK:
            return
        e = self.producers.get(pid)
        if e is None or h.producer_epoch > e.epoch:
            txn_first = e.txn_first if e is not None else -1
            e = self.producers[pid] = ProducerEntry(h.producer_epoch, txn_first)
        e.batches.append((h.base_sequence, h.base_sequence + h.last_offset_delta, base_offset))
        e.last_timestamp = h.max_timestamp
        if h.attributes & TRANSACTIONAL_MASK and e.txn_first < 0:
            e.txn_first = base_offset
            self.ongoing[pid] = base_offset

    def end_txn(self, pid: int, epoch: int, marker_offset: int,
                coordinator_epoch: int = 0) -> int:
        """A COMMIT/ABORT marker at ``marker_offset``: close the producer's open transaction.

        Returns the first offset of the transaction it closed (the marker's own offset when
        none was open, as Kafka records it). The marker's epoch fences older epochs: a
        coordinator that bumped the epoch to abort a timed-out transaction writes it.
        """
        e = self.producers.get(pid)
        if e is None:
            e = self.producers[pid] = ProducerEntry(epoch)
        elif epoch > e.epoch:
            e.epoch = epoch
            e.batches.clear()
        first = e.txn_first if e.txn_first >= 0 else marker_offset
        e.txn_first = -1
        self.ongoing.pop(pid, None)
        e.coordinator_epoch = coordinator_epoch
        return first

    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest open transaction (None: every one is complete)."""
        return min(self.ongoing.values()) if self.ongoing else None

    def open_transaction(self, pid: int) -> int:
        e = self.producers.get(pid)
        return e.txn_first if e is not None else -1

    # ------------------------------------------------------------------ persistence
    def load(self) -> None:
        try:
            with open(self.path) as f:
                raw = json.load(f)
        except (FileNotFoundError, ValueError):
            self.producers = {}
            self.ongoing = {}
            self.snapshot_offset = 0
            return
        self.snapshot_offset = int(raw.get("offset", 0))
        self.producers = {}
        self.ongoing = {}
        for pid, row in raw.get("producers", {}).items():
            epoch, batches = row[0], row[1]
            extra = [int(x) for x in row[2:5]] + [-1] * (5 - len(row))
            e = ProducerEntry(int(epoch), txn_first=extra[0], last_timestamp=extra[1],
                              coordinator_epoch=extra[2])
            for b in batches:
                e.batches.append((int(b[0]), int(b[1]), int(b[2])))
            self.producers[int(pid)] = e
            if e.txn_first >= 0:
                self.ongoing[int(pid)] = e.txn_first

    def snapshot(self, offset: int) -> None:
        """Write the state as of ``offset`` atomically (called when the log checkpoints)."""
        data = {"offset": offset,
                "producers": {str(pid): [e.epoch, list(e.batches), e.txn_first, e.last_timestamp,
                                             e.coordinator_epoch]
                              for pid, e in self.producers.items()}}
        write_file_atomically(self.path, json.dumps(data).encode())
        self.snapshot_offset = offset

    def truncate(self, offset: int) -> None:
        """Forget batches at or beyond ``offset`` (the log was cut there)."""
        for pid in list(self.producers):
            e = self.producers[pid]
            kept = [b for b in e.batches if b[2] < offset]
            e.batches.clear()
            e.batches.extend(kept)
            if e.txn_first >= offset:
                e.txn_first = -1
                self.ongoing.pop(pid, None)
            if not kept and e.txn_first < 0:
                del self.producers[pid]
