"""Transaction operations on a partition log: markers, the last stable offset, read_committed
reads and the cleaner's view of aborted batches (the index itself: :mod:`txn_index`)."""

from __future__ import annotations

from collections.abc import Callable

from logmq.codec.batch import CONTROL_MASK, TRANSACTIONAL_MASK, BatchHeader
from logmq.codec.control import encode_marker
from logmq.storage.log import LogSlice, PartitionLog
from logmq.storage.txn_index import AbortedTxn, close_transaction

__all__ = ["write_marker", "last_stable_offset", "aborted_transactions", "read_committed",
           "aborted_batch_filter"]


def write_marker(plog: PartitionLog, producer_id: int, producer_epoch: int, commit: bool,
                 coordinator_epoch: int = 0) -> int:
    """Append a COMMIT/ABORT marker for ``producer_id``; close its open transaction there.

    Done under the log's lock, so no read sees the marker without the closed transaction (or
    the index entry of an abort). Returns the marker's offset.
    """
    data = encode_marker(producer_id, producer_epoch, commit, coordinator_epoch)
    with plog._lock:
        offset, _ = plog.append(data, validate=False)
        close_transaction(plog.producer_state, plog.txn_index, plog._bases, plog.next_offset,
                          producer_id, producer_epoch, commit, offset, coordinator_epoch)
    return offset


def aborted_batch_filter(plog: PartitionLog) -> Callable[[BatchHeader], bool] | None:
    """A predicate telling batches of the partition's aborted transactions (the cleaner
    drops them), or None when it has none."""
    by_pid: dict[int, list[tuple[int, int]]] = {}
    with plog._lock:
        for entries in plog.txn_index.by_base.values():
            for e in entries:
                by_pid.setdefault(e.producer_id, []).append((e.first_offset, e.last_offset))
    if not by_pid:
        return None

    def aborted(h: BatchHeader) -> bool:
        if not h.attributes & TRANSACTIONAL_MASK or h.attributes & CONTROL_MASK:
            return False
        return any(lo <= h.base_offset <= hi for lo, hi in by_pid.get(h.producer_id, ()))

    return aborted


def last_stable_offset(plog: PartitionLog) -> int:
    first = plog.producer_state.first_unstable_offset()
    end = plog.next_offset
    return end if first is None else min(first, end)


def aborted_transactions(plog: PartitionLog, start: int, upper: int) -> list[AbortedTxn]:
    with plog._lock:
        return plog.txn_index.collect(start, upper)


def read_committed(plog: PartitionLog, offset: int, max_bytes: int
                   ) -> tuple[LogSlice | None, int, list[AbortedTxn]]:
    """A read_committed fetch of one partition: (slice ending at the LSO, LSO, aborted list).

    Only whole batches below the last stable offset are returned (the LSO is always a batch
    boundary: the base of an open transaction's first batch, or the log end).
    """
    with plog._lock:
        lso = last_stable_offset(plog)
        if offset >= lso:
            plog._check_range(offset)
            return None, lso, []
        sl = plog.read(offset, max_bytes)
        if sl is not None and sl.length:
            found = sl.segment.translate(lso, sl.position + sl.length)
            if found is not None and found[0] < sl.position + sl.length and \
                    found[1].base_offset >= lso:
                # a NamedTuple whose __len__ is its length: _replace would not work
                cut = found[0] - sl.position
                sl = type(sl)(sl.segment, sl.position, cut, lso, sl.handle) if cut > 0 else None
        aborted = plog.txn_index.collect(offset, lso) if sl is not None else []
    return sl, lso, aborted
