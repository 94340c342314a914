"""Poison batches (right CRC, wrong contents) are refused with Kafka's codes and append nothing.

Each case goes to a real ``logmq serve`` as a raw Produce, then good records go to the same
partition, and confluent-kafka and kafka-python must read exactly those good records (before
the validator, a pill made confluent-kafka silently stop delivering the partition and
kafka-python raise). The embedded ``append_batches`` path refuses the same batches with typed
errors.
"""

from __future__ import annotations

import gzip
import os
import sys
import time
import zlib

import pytest

import logmq
from logmq.codec.batch import parse_header
from logmq.codec.records import decode_batch, encode_batch
from logmq.codec.validate import ProducePolicy, check_stored_batch, validate_produce
from logmq.errors import CorruptRecordError, InvalidRecordError, InvalidTimestampError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_util import ServerProcess  # noqa: E402
from wire_util import (  # noqa: E402
    RawClient,
    good_batch,
    raw_record,
    with_header,
    with_payload,
)

CORRUPT_MESSAGE, INVALID_TIMESTAMP, INVALID_RECORD = 2, 32, 87
NOW = int(time.time() * 1000)


def _two_records(d0: int, d1: int) -> bytes:
    b = good_batch(2, ts=NOW)
    return with_payload(b, raw_record(d0, b"a", b"x") + raw_record(d1, b"b", b"y"))


def _gzip_bomb() -> bytes:
    payload = zlib.compress(b"\x00" * (80 << 20), 9)  # 80 MiB of zeros, ~80 KB compressed
    b = good_batch(1, ts=NOW)
    return with_header(with_payload(b, payload), attributes=1)


#: name -> (batch bytes, expected Kafka error code, expected typed error, compacted topic)
POISON: dict[str, tuple[bytes, int, type[Exception], bool]] = {
    "garbage_records": (with_payload(good_batch(1, ts=NOW), b"\xff" * 40), CORRUPT_MESSAGE,
                        CorruptRecordError, False),
    "record_count_50_with_one": (with_header(good_batch(1, ts=NOW), record_count=50),
                                 INVALID_RECORD, InvalidRecordError, False),
    "last_offset_delta_2_31": (with_header(good_batch(1, ts=NOW), last_offset_delta=2**31 - 1),
                               INVALID_RECORD, InvalidRecordError, False),
    "codec_7": (with_header(good_batch(1, ts=NOW), attributes=7), CORRUPT_MESSAGE,
                CorruptRecordError, False),
    "control_flag": (with_header(good_batch(1, ts=NOW), attributes=0x20), INVALID_RECORD,
                     InvalidRecordError, False),
    # a transactional batch needs a producer id (one holding no transaction: tests/test_txn*)
    "transactional_flag": (with_header(good_batch(1, ts=NOW), attributes=0x10),
                           INVALID_RECORD, InvalidRecordError, False),
    "offset_deltas_1_0": (_two_records(1, 0), INVALID_RECORD, InvalidRecordError, False),
    "offset_deltas_0_0": (_two_records(0, 0), INVALID_RECORD, InvalidRecordError, False),
    "offset_deltas_0_2": (_two_records(0, 2), INVALID_RECORD, InvalidRecordError, False),
    "timestamp_plus_2_62": (good_batch(1, ts=2**62), INVALID_TIMESTAMP, InvalidTimestampError,
                            False),
    "timestamp_minus_2_62": (good_batch(1, ts=-(2**62)), INVALID_TIMESTAMP,
                             InvalidTimestampError, False),
    "timestamp_delta_overflow": (with_payload(good_batch(1, ts=NOW),
                                              raw_record(0, b"k", b"v", ts_delta=2**63 - 1)),
                                 INVALID_TIMESTAMP, InvalidTimestampError, False),
    "keyless_on_compacted": (good_batch(3, key=None, ts=NOW), INVALID_RECORD,
                             InvalidRecordError, True),
    "varint_too_long": (with_payload(good_batch(1, ts=NOW), b"\xff" * 11 + b"\x01"),
                        CORRUPT_MESSAGE, CorruptRecordError, False),
    "trailing_bytes": (with_payload(good_batch(1, ts=NOW), raw_record(0, b"k", b"v") + b"\x00"),
                       CORRUPT_MESSAGE, CorruptRecordError, False),
    "record_length_past_end": (with_payload(good_batch(1, ts=NOW),
                                            raw_record(0, b"k", b"v")[:-2]),
                               CORRUPT_MESSAGE, CorruptRecordError, False),
    "header_key_not_utf8": (with_payload(good_batch(1, ts=NOW),
                                         raw_record(0, b"k", b"v", headers=[(b"\xff\xfe", b"")])),
                            CORRUPT_MESSAGE, CorruptRecordError, False),
    "gzip_garbage": (with_header(good_batch(1, ts=NOW), attributes=1), CORRUPT_MESSAGE,
                     CorruptRecordError, False),
    "gzip_bomb": (_gzip_bomb(), CORRUPT_MESSAGE, CorruptRecordError, False),
    "gzip_wrong_count": (with_header(encode_batch([(b"k", b"v")] * 3, timestamp=NOW,
                                                  compression="gzip"), record_count=2,
                                     last_offset_delta=1),
                         CORRUPT_MESSAGE, CorruptRecordError, False),
    "producer_without_sequence": (good_batch(1, ts=NOW, producer_id=5, producer_epoch=0,
                                             base_sequence=-1),
                                  INVALID_RECORD, InvalidRecordError, False),
    "undefined_attribute_bit": (with_header(good_batch(1, ts=NOW), attributes=0x100),
                                CORRUPT_MESSAGE, CorruptRecordError, False),
    "two_batches_one_partition": (good_batch(1, ts=NOW) + good_batch(1, ts=NOW),
                                  INVALID_RECORD, InvalidRecordError, False),
}
#: The embedded path may append several batches at once (its documented contract).
EMBEDDED_OK = {"two_batches_one_partition"}


def test_every_case_is_crc_valid_so_only_the_validator_can_refuse_it():
    from logmq.codec.batch import validate_batch

    for name, (batch, *_rest) in POISON.items():
        if name in ("record_count_50_with_one", "last_offset_delta_2_31"):
            continue  # the old header check already looked at these two counts
        validate_batch(batch, 0)  # framing and CRC pass: the old server appended these


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(str(tmp_path_factory.mktemp("poison") / "data")) as s:
        yield s


def test_poison_refused_and_real_clients_read_good_records_after(server):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    topics = [NewTopic(f"p-{n}", num_partitions=1, replication_factor=1,
                       config={"cleanup.policy": "compact"} if compact else {})
              for n, (_b, _c, _e, compact) in POISON.items()]
    for f in admin.create_topics(topics).values():
        f.result(15)
    raw = RawClient(server.host, server.port)
    for name, (batch, code, _err, _c) in POISON.items():
        resp = raw.produce(f"p-{name}", batch)
        assert resp["error_code"] == code, (name, resp)
        assert resp["base_offset"] == -1, name
        assert resp["record_errors"] and resp["error_message"], name
    # the connection is still good after all of them
    assert raw.produce("p-garbage_records", good_batch(1, ts=NOW))["error_code"] == 0
    raw.close()
    p = Producer({"bootstrap.servers": server.bootstrap, "linger.ms": 1})
    for name in POISON:
        for i in range(3):
            p.produce(f"p-{name}", b"good-%d" % i, key=b"k%d" % i, partition=0)
    assert p.flush(30) == 0
    expect = {f"p-{n}": [b"good-0", b"good-1", b"good-2"] for n in POISON}
    expect["p-garbage_records"] = [b"v0"] + expect["p-garbage_records"]

    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "after-poison",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(list(expect))
    got: dict[str, list[bytes]] = {t: [] for t in expect}
    deadline = time.monotonic() + 60
    while sum(map(len, got.values())) < sum(map(len, expect.values())):
        assert time.monotonic() < deadline, {t: v for t, v in got.items() if v != expect[t]}
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got[m.topic()].append(m.value())
    c.close()
    assert got == expect

    from kafka import KafkaConsumer

    kc = KafkaConsumer(*expect, bootstrap_servers=server.bootstrap,
                       auto_offset_reset="earliest", consumer_timeout_ms=8000)
    got2: dict[str, list[bytes]] = {t: [] for t in expect}
    for m in kc:
        got2[m.topic].append(m.value)
        if sum(map(len, got2.values())) == sum(map(len, expect.values())):
            break
    kc.close()
    assert got2 == expect


@pytest.mark.parametrize("name", sorted(POISON))
def test_embedded_append_batches_refuses_with_typed_error(tmp_path, name):
    batch, code, err, compact = POISON[name]
    with logmq.open(str(tmp_path / "d")) as b:
        b.create_topic("t", partitions=1, config={"cleanup.policy": "compact"} if compact else {})
        if name in EMBEDDED_OK:
            b.append_batches(("t", 0), batch)
            return
        with pytest.raises(err) as info:
            b.append_batches(("t", 0), batch)
        assert info.value.kafka_code == code
        assert b.end_offset(("t", 0)) == 0
        b.append_batches(("t", 0), good_batch(2, ts=NOW))
        got = [r.value for r in b.consumer("t", auto_offset_reset="earliest").poll(1.0)]
        assert got == [b"v0", b"v1"]


def test_max_timestamp_recomputed_and_log_append_time_flag_cleared():
    ts = [NOW - 5, NOW + 7, NOW]
    batch = encode_batch([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")], timestamps=ts)
    lying = with_header(batch, max_timestamp=-1, attributes=0x08)
    out, headers = validate_produce(lying, ProducePolicy(), now_ms=NOW)
    h = parse_header(out)
    assert h.max_timestamp == NOW + 7 == headers[0][1].max_timestamp
    assert h.attributes == 0
    decode_batch(out, 0)  # CRC rewritten: still valid
    good_out, _ = validate_produce(batch, ProducePolicy(), now_ms=NOW)
    assert good_out is batch  # nothing to correct: the client's bytes, not a copy


def test_timestamp_window_follows_topic_config(tmp_path):
    now = int(time.time() * 1000)  # the module's NOW may be minutes old in a long run
    with logmq.open(str(tmp_path / "d")) as b:
        b.create_topic("t", partitions=1, config={"message.timestamp.before.max.ms": 60_000,
                                                   "message.timestamp.after.max.ms": 1000})
        b.append_batches(("t", 0), good_batch(1, ts=now - 20_000))
        with pytest.raises(InvalidTimestampError):
            b.append_batches(("t", 0), good_batch(1, ts=now - 3_600_000))
        with pytest.raises(InvalidTimestampError):
            b.append_batches(("t", 0), good_batch(1, ts=now + 60_000))
        b.append_batches(("t", 0), good_batch(1, ts=-1))  # no timestamp at all: not checked
        assert b.end_offset(("t", 0)) == 2


def test_offsets_for_times_works_after_a_client_wrote_max_timestamp_minus_one(tmp_path):
    with logmq.open(str(tmp_path / "d")) as b:
        b.create_topic("t", partitions=1)
        for i in range(5):
            b.append_batches(("t", 0), with_header(good_batch(1, ts=NOW + i * 10),
                                                   max_timestamp=-1))
        hit = b.offsets_for_times({("t", 0): NOW + 25})[("t", 0)]
        assert hit is not None and hit.offset == 3


def test_compressed_batches_of_every_installed_codec_are_walked():
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        good = encode_batch([(b"k", b"v" * 100)] * 5, timestamp=NOW, compression=codec)
        validate_produce(good, ProducePolicy(), now_ms=NOW)
        bad = with_header(good, record_count=6, last_offset_delta=5)
        with pytest.raises(CorruptRecordError):
            validate_produce(bad, ProducePolicy(), now_ms=NOW)


def test_stored_batches_with_compaction_gaps_pass_check_stored_batch():
    gappy = encode_batch([(b"a", b"1"), (b"b", b"2")], timestamp=NOW, offset_deltas=[1, 4])
    check_stored_batch(gappy)
    with pytest.raises(InvalidRecordError):
        check_stored_batch(_two_records(1, 0))


def test_verify_reports_a_poisoned_segment(tmp_path):
    """A pill written by the old server (bypassing validation) is found by ``logmq verify``."""
    from click.testing import CliRunner

    from logmq.cli import cli

    data = str(tmp_path / "d")
    with logmq.open(data) as b:
        b.create_topic("t", partitions=1)
        b.append_batches(("t", 0), good_batch(1, ts=NOW))
        pill = POISON["garbage_records"][0]
        b.partition_log("t", 0).append(pill, validate=True)  # CRC-only: what the old path did
    res = CliRunner().invoke(cli, ["verify", "--data", data])
    assert res.exit_code != 0, res.output
    assert "records" in res.output


def test_gzip_stdlib_payload_is_accepted():
    """Kafka clients write gzip with a header: the bounded decoder must accept it."""
    from logmq.codec.records import _AFTER_CRC  # noqa: F401  (layout stays what we patch)

    recs = raw_record(0, b"k", b"v")
    b = with_header(with_payload(good_batch(1, ts=NOW), gzip.compress(recs)), attributes=1)
    validate_produce(b, ProducePolicy(), now_ms=NOW)


def test_validator_accepts_whatever_the_encoder_makes_and_agrees_with_the_decoder():
    """No false refusals: random legit batches (keys, nulls, headers, codecs, times) pass."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    blob = st.one_of(st.none(), st.binary(max_size=300))
    header = st.tuples(st.text(max_size=8), blob)
    record = st.tuples(blob, blob, st.lists(header, max_size=3))

    @settings(max_examples=150, deadline=None)
    @given(st.lists(record, min_size=1, max_size=40),
           st.sampled_from(["none", "gzip", "snappy", "lz4", "zstd"]),
           st.lists(st.integers(-3_600_000, 3_000_000), min_size=1, max_size=40))
    def check(records, codec, offsets):
        ts = [NOW + offsets[i % len(offsets)] for i in range(len(records))]
        batch = encode_batch(records, timestamps=ts, compression=codec)
        out, headers = validate_produce(batch, ProducePolicy(), now_ms=NOW)
        h, recs = decode_batch(out, 0)
        assert [(r[2], r[3], r[4]) for r in recs] == [(k, v, list(hs)) for k, v, hs in records]
        assert h.max_timestamp == max(ts) == headers[0][1].max_timestamp

    check()


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_decompression_is_bounded_for_every_codec(codec):
    from logmq.codec.compression import codec_id, compress

    cid = codec_id(codec)
    bomb = compress(cid, b"\x00" * (3 << 20))
    b = with_header(with_payload(good_batch(1, ts=NOW), bomb), attributes=cid)
    with pytest.raises(CorruptRecordError, match="size limit"):
        validate_produce(b, ProducePolicy(max_uncompressed_bytes=1 << 20), now_ms=NOW)
