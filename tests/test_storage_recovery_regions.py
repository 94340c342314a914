"""A byte flipped in every region of a partition, and the outcome each must have.

Recovery may cut only bytes above the recovery point (a torn tail); damage below it was
synced before the checkpoint said so, and is reported with file and byte, like damage in
older segments. Index files are derived data: damage there is rebuilt, never fatal. Every cut
is logged at WARNING with partition, byte range and record count.
"""

from __future__ import annotations

import logging
import os

import pytest

from logmq.codec.records import decode_batch, encode_batch
from logmq.errors import CorruptRecordError
from logmq.storage.log import LogConfig, PartitionLog

BATCHES = 40
RECORDS = 5  # per batch
T0 = 1_700_000_000_000


def _config() -> LogConfig:
    return LogConfig(index_interval_bytes=512)


def _write(d: str, *, synced: int, unsynced: int) -> None:
    """``synced`` batches then a checkpoint, ``unsynced`` more, then a crash (no close)."""
    plog = PartitionLog(d, "t", 0, _config())
    for i in range(synced + unsynced):
        recs = [(b"k%d" % (i * RECORDS + j), b"value-%06d" % (i * RECORDS + j) * 4)
                for j in range(RECORDS)]
        plog.append(encode_batch(recs, timestamp=T0 + i * 1000))
        if i in (9, 19):
            plog.roll()
        if i + 1 == synced:
            plog.flush(checkpoint=True)
    assert len(plog.segments) == 3
    del plog  # the crash: no close, no checkpoint of the tail


def _segments(d: str) -> list[str]:
    return sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".log"))


def _batch_positions(path: str) -> list[tuple[int, int, int]]:
    """(position, size, base offset) of each batch of a segment file."""
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        h, _ = decode_batch(data, pos)
        out.append((pos, h.size, h.base_offset))
        pos += h.size
    return out


def _flip(path: str, pos: int) -> None:
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x5A]))


def _checkpoint(d: str) -> int:
    return int(open(os.path.join(d, "checkpoint")).read().split()[0])


def _all_values(plog: PartitionLog) -> list[bytes]:
    out: list[bytes] = []
    off = plog.log_start_offset
    while off < plog.next_offset:
        data = plog.read_bytes(off, 1 << 20)
        pos = 0
        while pos < len(data):
            h, recs = decode_batch(data, pos)
            out.extend(r[3] for r in recs if r[0] >= off)
            pos += h.size
        off = h.next_offset
    return out


@pytest.fixture
def crashed(tmp_path):
    """A partition that stopped uncleanly with its recovery point inside the active segment."""
    d = str(tmp_path / "t-0")
    _write(d, synced=BATCHES - 4, unsynced=4)
    active = _segments(d)[-1]
    rp = _checkpoint(d)
    below = [b for b in _batch_positions(active) if b[2] + RECORDS <= rp]
    above = [b for b in _batch_positions(active) if b[2] >= rp]
    assert below and len(above) == 4, "the recovery point must fall inside the active segment"
    return d, active, below, above


@pytest.mark.parametrize("region,delta", [("batch header", 23), ("records", 61 + 7)])
def test_damage_below_the_recovery_point_is_reported_not_cut(crashed, region, delta, caplog):
    d, active, below, _ = crashed
    pos = below[0][0] + delta
    _flip(active, pos)
    size_before = os.path.getsize(active)
    with pytest.raises(CorruptRecordError) as ei:
        PartitionLog(d, "t", 0, _config())
    assert ei.value.path == active and ei.value.position == below[0][0]
    assert "repair=True" in str(ei.value)
    assert os.path.getsize(active) == size_before, f"damage in the {region} cut the log"
    # repair=True cuts there, and says so
    with caplog.at_level(logging.WARNING, logger="logmq.storage"):
        plog = PartitionLog(d, "t", 0, _config(), repair=True)
    assert plog.next_offset == below[0][2]
    cuts = [r.getMessage() for r in caplog.records if "recovery cut" in r.getMessage()]
    assert cuts and "t-0" in cuts[0] and f"bytes {below[0][0]}-{size_before}" in cuts[0]
    assert "records" in cuts[0]
    plog.close()


def test_damage_above_the_recovery_point_is_a_torn_tail_cut_with_a_warning(crashed, caplog):
    d, active, _, above = crashed
    pos, _, base = above[1]
    _flip(active, pos + 61 + 3)
    size = os.path.getsize(active)
    with caplog.at_level(logging.WARNING, logger="logmq.storage"):
        plog = PartitionLog(d, "t", 0, _config())
    assert plog.next_offset == base
    assert plog.recovered_bytes_truncated == size - pos
    msgs = [r.getMessage() for r in caplog.records]
    cut = [m for m in msgs if "recovery cut" in m]
    assert len(cut) == 1
    assert "partition t-0" in cut[0] and f"bytes {pos}-{size}" in cut[0]
    assert f"about {3 * RECORDS} records" in cut[0]  # the damaged batch and the two after it
    assert len(_all_values(plog)) == base
    plog.close()


def test_damage_in_an_older_segment_is_reported_when_read(crashed):
    d, _, _, _ = crashed
    oldest = _segments(d)[0]
    first = _batch_positions(oldest)[1]
    _flip(oldest, first[0] + 61 + 2)
    plog = PartitionLog(d, "t", 0, _config())
    assert plog.recovered_bytes_truncated == 0
    assert plog.next_offset == BATCHES * RECORDS
    with pytest.raises(CorruptRecordError):
        _all_values(plog)
    plog.close()


@pytest.mark.parametrize("clean", [False, True])
@pytest.mark.parametrize("suffix", [".index", ".timeindex"])
def test_damaged_index_files_are_rebuilt(tmp_path, suffix, clean):
    d = str(tmp_path / "t-0")
    plog = PartitionLog(d, "t", 0, _config())
    for i in range(BATCHES):
        plog.append(encode_batch([(b"k", b"v%d" % i)] * RECORDS, timestamp=T0 + i * 1000))
        if i == BATCHES // 2:
            plog.roll()
    if clean:
        plog.close()
    else:
        plog.flush(checkpoint=True)
        del plog
    active = _segments(d)[-1]
    idx = active[: -len(".log")] + suffix
    assert os.path.getsize(idx) >= 24
    with open(idx, "r+b") as f:  # a torn last entry: the length is no longer a multiple
        f.truncate(os.path.getsize(idx) - 3)
    _flip(_segments(d)[-2][: -len(".log")] + suffix, 1)  # and a flipped byte one segment back
    again = PartitionLog(d, "t", 0, _config(), clean=clean)
    assert again.recovered_bytes_truncated == 0
    assert again.next_offset == BATCHES * RECORDS
    assert len(_all_values(again)) == BATCHES * RECORDS
    assert again.offset_for_timestamp(T0 + (BATCHES - 1) * 1000) == (BATCHES - 1) * RECORDS
    again.close()


def test_clean_close_then_damage_in_the_active_segment_is_not_cut(tmp_path):
    d = str(tmp_path / "t-0")
    plog = PartitionLog(d, "t", 0, _config())
    for i in range(BATCHES):
        plog.append(encode_batch([(b"k", b"v%d" % i)] * RECORDS, timestamp=T0 + i * 1000))
    plog.close()
    active = _segments(d)[-1]
    _flip(active, _batch_positions(active)[-1][0] + 9)  # the length of the last batch
    size = os.path.getsize(active)
    with pytest.raises(CorruptRecordError):
        PartitionLog(d, "t", 0, _config(), clean=True)
    assert os.path.getsize(active) == size


def test_reopening_reads_no_batch_headers_when_no_producer_ids_were_used(tmp_path, monkeypatch):
    """Producer state is rebuilt from batch headers after its snapshot; a log that never saw
    an idempotent producer has no snapshot, and used to walk every header on every open."""
    from logmq.storage.segment import LogSegment

    d = str(tmp_path / "t-0")
    plog = PartitionLog(d, "t", 0, _config())
    for i in range(BATCHES):
        plog.append(encode_batch([(b"k", b"v%d" % i)] * RECORDS, timestamp=T0 + i * 1000))
    plog.close()

    def no_walk(*a, **k):
        raise AssertionError("walked the batch headers of the whole log")

    monkeypatch.setattr(LogSegment, "iter_headers", no_walk)
    again = PartitionLog(d, "t", 0, _config(), clean=True)
    assert again.next_offset == BATCHES * RECORDS
    again.close()
