"""RecordBatch v2 codec: a hand-built byte vector, kafka-python cross-checks, properties, fuzz."""

from __future__ import annotations

import struct

import crc32c
import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from logmq.codec.batch import iter_batches, parse_header, set_base_offset, validate_batch
from logmq.codec.compression import codec_id
from logmq.codec.records import (
    decode_batch,
    decode_records_into,
    decode_varint,
    encode_batch,
    encode_varint,
    iter_records,
)
from logmq.errors import ConfigError, CorruptRecordError


def test_varints_match_protobuf_zigzag():
    cases = {0: b"\x00", -1: b"\x01", 1: b"\x02", -2: b"\x03", 63: b"\x7e", 64: b"\x80\x01",
             100: b"\xc8\x01", 300: b"\xd8\x04", -65: b"\x81\x01", 2**31 - 1: b"\xfe\xff\xff\xff\x0f"}
    for n, raw in cases.items():
        assert encode_varint(n) == raw
        assert decode_varint(raw, 0) == (n, len(raw))
    with pytest.raises(CorruptRecordError):
        decode_varint(b"\x80\x80", 0)


def _hand_built_batch() -> bytes:
    """Two records written field by field from the format description, not by our encoder."""
    # record 0: key b"k", value 70 bytes of b"v" (a two-byte length varint), one header with a
    # null value, timestamp = base
    value0 = b"v" * 70
    rec0_body = (
        b"\x00"  # attributes
        + b"\x00"  # timestampDelta 0
        + b"\x00"  # offsetDelta 0
        + b"\x02" + b"k"  # keyLength 1
        + b"\x8c\x01" + value0  # valueLength 70 -> zigzag 140 -> 0x8c 0x01
        + b"\x02"  # 1 header
        + b"\x04" + b"hk"  # header key "hk"
        + b"\x01"  # header value null (-1)
    )
    assert len(rec0_body) == 82
    rec0 = b"\xa4\x01" + rec0_body  # length 82 -> zigzag 164 -> two varint bytes
    # record 1: null key, empty value, timestamp base - 3 (negative delta), offsetDelta 1
    rec1_body = b"\x00" + b"\x05" + b"\x02" + b"\x01" + b"\x00" + b"\x00"
    rec1 = b"\x0c" + rec1_body  # length 6 -> zigzag 12
    records = rec0 + rec1
    base_ts, max_ts = 1_700_000_000_000, 1_700_000_000_000
    # baseTimestamp is the first record's; the second record's delta is negative
    after_crc = struct.pack(">hiqqqhii", 0, 1, base_ts, max_ts, -1, -1, -1, 2) + records
    crc = crc32c.crc32c(after_crc)
    batch_length = 4 + 1 + 4 + len(after_crc)  # leaderEpoch + magic + crc + rest
    return struct.pack(">qiibI", 0, batch_length, -1, 2, crc) + after_crc


def test_hand_built_vector_decodes_and_encodes_byte_for_byte():
    raw = _hand_built_batch()
    h, recs = decode_batch(raw)
    assert h.record_count == 2 and h.last_offset_delta == 1 and h.size == len(raw)
    base = 1_700_000_000_000
    assert recs == [
        (0, base, b"k", b"v" * 70, [("hk", None)]),
        (1, base - 3, None, b"", []),
    ]
    ours = encode_batch(
        [(b"k", b"v" * 70, [("hk", None)]), (None, b"")], timestamps=[base, base - 3]
    )
    assert ours == raw


def test_null_and_empty_are_distinct_and_headers_roundtrip():
    recs = [(None, None), (b"", b""), (b"k", None, [("a", b""), ("b", None)])]
    _, out = decode_batch(encode_batch(recs, timestamp=5))
    assert [(r[2], r[3], r[4]) for r in out] == [
        (None, None, []), (b"", b"", []), (b"k", None, [("a", b""), ("b", None)])]


def test_base_offset_is_outside_the_crc():
    data = bytearray(encode_batch([(b"a", b"b")] * 3, timestamp=1))
    set_base_offset(data, 0, 1234)
    h = validate_batch(data)
    assert h.base_offset == 1234 and h.last_offset == 1236
    assert [r[0] for r in iter_records(bytes(data))] == [1234, 1235, 1236]


@pytest.mark.parametrize("codec", ["none", "gzip", "lz4", "zstd", "snappy"])
def test_compressed_batches_roundtrip(codec):
    recs = [(b"k%d" % i, b"value-%d" % i * 20) for i in range(200)]
    data = encode_batch(recs, timestamp=9, compression=codec)
    h, out = decode_batch(data)
    assert h.compression == codec_id(codec)
    assert [(r[2], r[3]) for r in out] == recs
    if codec != "none":
        assert len(data) < sum(len(k) + len(v) for k, v in recs)


def test_bad_compression_name():
    with pytest.raises(ConfigError):
        encode_batch([(b"a", b"b")], compression="brotli")


import kafka.record.default_records as kafka_default  # noqa: E402  (test-only dependency)


def _kafka_python_batch(recs, codec: int) -> bytes:
    b = kafka_default.DefaultRecordBatchBuilder(
        magic=2, compression_type=codec, is_transactional=False, producer_id=-1,
        producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    for i, (k, v, hdrs, ts) in enumerate(recs):
        b.append(i, timestamp=ts, key=k, value=v, headers=hdrs)
    return bytes(b.build())


@pytest.mark.parametrize("codec", [0, 1, 3, 4])
def test_batches_built_by_kafka_python_decode_here(codec):
    recs = [(b"key%d" % i if i % 3 else None, b"v" * (i * 13 % 300) if i % 5 else None,
             [(f"h{i}", b"x")] if i % 2 else [], 1_000 + i * 7) for i in range(60)]
    data = _kafka_python_batch(recs, codec)
    _, out = decode_batch(data)
    assert [(r[2], r[3], r[4], r[1]) for r in out] == [
        (k, v, [(hk, hv) for hk, hv in h], ts) for k, v, h, ts in recs]


@pytest.mark.parametrize("codec", ["none", "gzip", "lz4", "zstd"])
def test_batches_built_here_decode_in_kafka_python(codec):
    recs = [(b"k%d" % i, b"value%d" % i, [("h", b"%d" % i)]) for i in range(50)]
    data = encode_batch(recs, timestamps=[2_000 + i for i in range(50)], compression=codec)
    batch = kafka_default.DefaultRecordBatch(bytearray(data))
    assert batch.validate_crc()
    got = [(r.key, r.value, list(r.headers), r.timestamp) for r in batch]
    assert got == [(k, v, list(h), 2_000 + i) for i, (k, v, h) in enumerate(recs)]


record_st = st.tuples(
    st.one_of(st.none(), st.binary(max_size=200)),
    st.one_of(st.none(), st.binary(max_size=20_000)),
    st.lists(st.tuples(st.text(max_size=10), st.one_of(st.none(), st.binary(max_size=50))),
             max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(recs=st.lists(record_st, min_size=1, max_size=30),
       ts=st.lists(st.integers(0, 2**41), min_size=30, max_size=30),
       codec=st.sampled_from(["none", "gzip", "lz4", "zstd"]),
       base=st.integers(0, 2**40))
def test_roundtrip_property(recs, ts, codec, base):
    stamps = ts[: len(recs)]
    data = encode_batch(recs, timestamps=stamps, compression=codec, base_offset=base)
    h = validate_batch(data)
    assert h.size == len(data) and h.base_offset == base
    _, out = decode_batch(data)
    assert out == [(base + i, stamps[i], k, v, hd) for i, (k, v, hd) in enumerate(recs)]
    collected: list = []
    assert decode_records_into(data + data[:20], collected) == len(data)
    assert collected == out


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400))
def test_random_bytes_raise_only_corrupt_record(data):
    for fn in (lambda: decode_batch(data), lambda: list(iter_records(data, validate=True)),
               lambda: iter_batches(data), lambda: decode_batch(data, validate=False)):
        try:
            fn()
        except CorruptRecordError:
            pass


_valid = encode_batch([(b"k%d" % i, b"v" * i, [("h", b"x")]) for i in range(20)], timestamp=3)
_valid_gz = encode_batch([(b"k%d" % i, b"v" * i) for i in range(20)], timestamp=3,
                         compression="gzip")


@settings(max_examples=300, deadline=None)
@given(pos=st.integers(0, len(_valid) - 1), bit=st.integers(0, 7), cut=st.integers(0, 100),
       which=st.sampled_from([_valid, _valid_gz]))
def test_flipped_or_truncated_batches(pos, bit, cut, which):
    pos %= len(which)
    flipped = bytearray(which)
    flipped[pos] ^= 1 << bit
    for data in (bytes(flipped), which[: len(which) - 1 - cut % len(which)]):
        try:
            h, _ = decode_batch(data)
        except CorruptRecordError:
            continue
        # only the fields outside the CRC may change without detection
        assert pos < 21 or data == which
        assert h.magic == 2
        try:
            decode_batch(data, validate=False)
        except CorruptRecordError:
            pass
    # unvalidated decoding of a damaged payload must still fail cleanly
    try:
        decode_batch(bytes(flipped), validate=False)
    except CorruptRecordError:
        pass


def test_header_fields():
    data = encode_batch([(b"a", b"b")] * 4, timestamps=[5, 9, 1, 7], producer_id=42,
                        producer_epoch=3, base_sequence=10, compression="gzip")
    h = parse_header(data)
    assert (h.base_timestamp, h.max_timestamp) == (5, 9)  # base = first record's
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (42, 3, 10)
    assert h.record_count == 4 and h.compression == 1
