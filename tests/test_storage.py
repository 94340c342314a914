"""Segment files, indexes and recovery, tested on the files themselves."""

from __future__ import annotations

import os

import pytest

from logmq.codec.batch import parse_header
from logmq.codec.records import decode_batch, encode_batch
from logmq.errors import (
    ConcurrencyError,
    CorruptRecordError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
)
from logmq.storage.index import OffsetIndex, TimeIndex
from logmq.storage.log import LogConfig, PartitionLog


def batch(n: int, ts: int = 1_000, key: bytes = b"k", size: int = 100) -> bytes:
    return encode_batch([(key + b"%d" % i, b"v" * size) for i in range(n)], timestamp=ts)


def mklog(path, **cfg) -> PartitionLog:
    base = {"segment_bytes": 20_000, "index_interval_bytes": 1000}
    base.update(cfg)
    return PartitionLog(str(path), "t", 0, LogConfig(**base))


def test_offsets_are_assigned_and_reads_return_whole_batches(tmp_path):
    lg = mklog(tmp_path / "t-0")
    assert lg.append(batch(10)) == (0, 9)
    assert lg.append(batch(5)) == (10, 14)
    data = lg.read_bytes(12, 1)  # max_bytes below one batch: still one whole batch
    h = parse_header(data)
    assert (h.base_offset, h.record_count, h.size) == (10, 5, len(data))
    _, recs = decode_batch(data)
    assert [r[0] for r in recs] == [10, 11, 12, 13, 14]
    lg.close()


def test_segments_roll_by_size_and_are_named_by_base_offset(tmp_path):
    lg = mklog(tmp_path / "t-0")
    for _ in range(40):
        lg.append(batch(10))
    names = sorted(n for n in os.listdir(tmp_path / "t-0") if n.endswith(".log"))
    assert len(names) >= 3
    bases = [int(n[:-4]) for n in names]
    assert names[0] == "00000000000000000000.log"
    assert all(len(n) == 24 for n in names)
    for seg, base in zip(lg.segments, bases, strict=True):
        assert seg.base_offset == base
        assert seg.size <= 20_000 + 1200
    # every offset is readable and lands in the right batch
    for off in range(0, 400, 7):
        h = parse_header(lg.read_bytes(off, 1))
        assert h.base_offset <= off <= h.last_offset
    lg.close()


def test_index_lookup_is_sparse_and_binary_searched(tmp_path):
    idx = OffsetIndex(str(tmp_path / "x.index"), 100)
    for i in range(50):
        idx.append(100 + i * 10, i * 4096)
    idx.flush()
    assert os.path.getsize(tmp_path / "x.index") == 50 * 8
    re = OffsetIndex(str(tmp_path / "x.index"), 100)
    assert re.lookup(99) == (100, 0)
    assert re.lookup(105) == (100, 0)
    assert re.lookup(110) == (110, 4096)
    assert re.lookup(10_000) == (590, 49 * 4096)
    ti = TimeIndex(str(tmp_path / "x.timeindex"), 100)
    for i in range(10):
        ti.append(1000 + i * 100, 100 + i * 10)
    ti.append(1000, 500)  # not increasing: ignored
    assert len(ti) == 10
    assert ti.lookup(999) == 100
    assert ti.lookup(1150) == 110  # last entry strictly below the target
    assert ti.last_entry() == (1900, 190)


def test_offset_for_timestamp(tmp_path):
    lg = mklog(tmp_path / "t-0")
    for i in range(30):
        lg.append(batch(10, ts=10_000 + i * 100))
    assert lg.offset_for_timestamp(0) == 0
    assert lg.offset_for_timestamp(10_000 + 15 * 100) == 150
    assert lg.offset_for_timestamp(10_000 + 15 * 100 + 1) == 160
    assert lg.offset_for_timestamp(10**12) is None
    lg.close()


def test_out_of_range_and_conditional_append(tmp_path):
    lg = mklog(tmp_path / "t-0")
    lg.append(batch(3))
    with pytest.raises(OffsetOutOfRangeError):
        lg.read(4, 100)
    assert lg.read(3, 100) is None  # at the end: nothing yet, not an error
    with pytest.raises(ConcurrencyError):
        lg.append(batch(1), expected_offset=2)
    assert lg.append(batch(1), expected_offset=3) == (3, 3)
    small = mklog(tmp_path / "s-0", max_message_bytes=500)
    with pytest.raises(RecordTooLargeError):
        small.append(batch(10))
    lg.close()
    small.close()


def test_bad_crc_is_refused_and_nothing_appended(tmp_path):
    lg = mklog(tmp_path / "t-0")
    good = batch(2)
    bad = bytearray(good + batch(2))
    bad[-5] ^= 0xFF
    with pytest.raises(CorruptRecordError):
        lg.append(bytes(bad))
    assert lg.next_offset == 0 and lg.active_segment.size == 0
    lg.close()


def test_clean_reopen_does_not_scan_closed_segments(tmp_path):
    lg = mklog(tmp_path / "t-0")
    for _ in range(40):
        lg.append(batch(10))
    first = lg.segments[0]
    lg.close()
    # Flip a byte inside a record of the first (closed) segment: a full scan would notice.
    with open(first.log_path, "r+b") as f:
        f.seek(200)
        b = f.read(1)
        f.seek(200)
        f.write(bytes([b[0] ^ 0xFF]))
    re = PartitionLog(str(tmp_path / "t-0"), "t", 0, lg.config, clean=True)
    assert re.next_offset == 400
    assert re.recovered_bytes_truncated == 0
    # ...and the damage is reported when read, naming the file and position.
    from logmq.codec.batch import validate_batch

    data = re.read_bytes(0, 1)
    with pytest.raises(CorruptRecordError):
        validate_batch(data)
    re.close()


def test_recovery_truncates_torn_tail(tmp_path):
    lg = mklog(tmp_path / "t-0")
    for _ in range(5):
        lg.append(batch(10))
    path = lg.active_segment.log_path
    size = lg.active_segment.size
    # simulate a crash: no close(); add half a batch after the end
    with open(path, "ab") as f:
        f.write(batch(10)[:300])
    del lg
    re = mklog(tmp_path / "t-0")
    assert re.next_offset == 50
    assert re.recovered_bytes_truncated == 300
    assert os.path.getsize(path) == size
    assert re.append(batch(1)) == (50, 50)
    re.close()


@pytest.mark.parametrize("where", ["middle_of_active", "length_field", "last_byte"])
def test_recovery_cuts_at_first_corrupt_batch(tmp_path, where):
    lg = mklog(tmp_path / "t-0", segment_bytes=1 << 20)
    sizes = []
    for _ in range(6):
        lg.append(batch(10))
        sizes.append(lg.active_segment.size)
    path = lg.active_segment.log_path
    del lg
    pos = {"middle_of_active": sizes[2] + 100, "length_field": sizes[2] + 9,
           "last_byte": sizes[5] - 1}[where]
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x55]))
    re = mklog(tmp_path / "t-0", segment_bytes=1 << 20)
    expect = 30 if where != "last_byte" else 50
    assert re.next_offset == expect
    assert os.path.getsize(path) == sizes[expect // 10 - 1]
    re.close()


def test_missing_and_damaged_indexes_are_rebuilt(tmp_path):
    lg = mklog(tmp_path / "t-0")
    for _ in range(40):
        lg.append(batch(10))
    segs = lg.segments
    lg.close()
    os.unlink(segs[0].index.path)
    with open(segs[-1].index.path, "ab") as f:
        f.write(b"\x01\x02\x03")  # not a multiple of the entry size
    re = PartitionLog(str(tmp_path / "t-0"), "t", 0, lg.config, clean=True)
    assert os.path.exists(segs[0].index.path)
    assert re.next_offset == 400
    for off in (0, 55, 399):
        h = parse_header(re.read_bytes(off, 1))
        assert h.base_offset <= off <= h.last_offset
    re.close()


def test_torn_segment_before_roll_drops_later_segments(tmp_path):
    lg = mklog(tmp_path / "t-0")
    for _ in range(40):
        lg.append(batch(10))
    segs = lg.segments
    assert len(segs) >= 3
    del lg
    # no clean shutdown and no checkpoint beyond 0: damage in the middle of segment 1
    os.unlink(tmp_path / "t-0" / "checkpoint")
    with open(segs[1].log_path, "r+b") as f:
        f.seek(segs[1].size // 2)
        f.write(b"\x00" * 8)
    re = mklog(tmp_path / "t-0")
    assert len(re.segments) == 2
    assert re.next_offset < segs[2].base_offset
    assert re.next_offset % 10 == 0
    re.close()


def test_delete_records_and_truncate(tmp_path):
    lg = mklog(tmp_path / "t-0")
    for _ in range(40):
        lg.append(batch(10))
    nseg = len(lg.segments)
    assert lg.delete_records(250) == 250
    assert lg.log_start_offset == 250
    assert len(lg.segments) < nseg
    with pytest.raises(OffsetOutOfRangeError):
        lg.read(249, 100)
    lg.close()
    re = mklog(tmp_path / "t-0")
    assert re.log_start_offset == 250
    re.truncate_to(300)
    assert re.next_offset == 300
    re.close()


def test_damage_after_clean_close_is_reported_not_truncated(tmp_path):
    lg = mklog(tmp_path / "t-0", segment_bytes=1 << 20)
    for _ in range(5):
        lg.append(batch(10))
    path = lg.active_segment.log_path
    sizes = lg.active_segment.size
    lg.close()
    with open(path, "r+b") as f:  # wreck the length field of the last batch
        f.seek(sizes - 1171 + 8 if sizes > 1171 else 8)
        f.write(b"\x7f\xff\xff\xff")
    with pytest.raises(CorruptRecordError) as err:
        PartitionLog(str(tmp_path / "t-0"), "t", 0, lg.config, clean=True)
    assert err.value.path == path and "repair=True" in str(err.value)
    assert os.path.getsize(path) == sizes  # nothing was cut
    fixed = PartitionLog(str(tmp_path / "t-0"), "t", 0, lg.config, clean=True, repair=True)
    assert fixed.next_offset == 40
    fixed.close()


def test_a_deleted_partition_answers_unknown_topic(tmp_path):
    """A request that still holds a partition deleted under it (DeleteRecords racing a topic
    deletion: the wire fuzz found it) gets a typed error, not an IndexError."""
    from logmq.errors import UnknownTopicError

    plog = PartitionLog(str(tmp_path / "t-0"), "t", 0)
    plog.delete()
    with pytest.raises(UnknownTopicError):
        _ = plog.next_offset
    with pytest.raises(UnknownTopicError):
        plog.delete_records(0)
