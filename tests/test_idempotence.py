"""Idempotent producers at the partition: retries are not appended twice, gaps are refused."""

from __future__ import annotations

import pytest

from logmq.codec.records import encode_batch
from logmq.errors import InvalidProducerEpochError, OutOfOrderSequenceError
from logmq.storage.log import LogConfig, PartitionLog


def idem(seq: int, n: int = 3, pid: int = 7, epoch: int = 0) -> bytes:
    return encode_batch([(b"k", b"v%d" % (seq + i)) for i in range(n)], timestamp=1,
                        producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def test_retry_returns_original_offsets_and_gap_is_refused(tmp_path):
    lg = PartitionLog(str(tmp_path / "t-0"), "t", 0, LogConfig())
    assert lg.append(idem(0)) == (0, 2)
    assert lg.append(idem(3)) == (3, 5)
    assert lg.append(idem(3)) == (3, 5)  # retry of the last batch
    assert lg.append(idem(0)) == (0, 2)  # retry of an earlier in-flight batch
    assert lg.next_offset == 6
    with pytest.raises(OutOfOrderSequenceError):
        lg.append(idem(10))
    # a new epoch starts again at sequence 0; the old epoch is then fenced
    assert lg.append(idem(0, epoch=1)) == (6, 8)
    with pytest.raises(InvalidProducerEpochError):
        lg.append(idem(3, epoch=0))
    with pytest.raises(OutOfOrderSequenceError):
        lg.append(idem(5, epoch=2))  # a new epoch must start at 0
    # other producers and non-idempotent batches are independent
    assert lg.append(idem(0, pid=8)) == (9, 11)
    assert lg.append(encode_batch([(b"a", b"b")], timestamp=1)) == (12, 12)
    lg.close()


def test_state_survives_clean_reopen_and_crash_replay(tmp_path):
    d = str(tmp_path / "t-0")
    lg = PartitionLog(d, "t", 0, LogConfig())
    lg.append(idem(0))
    lg.close()
    lg = PartitionLog(d, "t", 0, LogConfig(), clean=True)
    assert lg.append(idem(0)) == (0, 2)  # from the snapshot
    lg.append(idem(3))
    del lg  # crash: the snapshot is behind; headers after it are replayed
    lg = PartitionLog(d, "t", 0, LogConfig())
    assert lg.append(idem(3)) == (3, 5)
    assert lg.append(idem(6)) == (6, 8)
    assert lg.next_offset == 9
    lg.close()
