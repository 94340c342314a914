"""Micro-benchmarks (pytest-benchmark): ``python -m pytest bench --benchmark-enable``.

Numbers go in the issue notes and the README, never into assertions.
"""

from __future__ import annotations

import os

from logmq.codec.batch import validate_batch
from logmq.codec.records import decode_batch, decode_records_into, encode_batch
from logmq.storage.index import OffsetIndex
from logmq.storage.log import LogConfig, PartitionLog

RECORDS = [(b"key-%d" % (i % 1000), b"x" * 100) for i in range(1000)]
BATCH = encode_batch(RECORDS, timestamp=1)
BATCH_GZ = encode_batch(RECORDS, timestamp=1, compression="gzip")


def test_encode_1000x100B(benchmark):
    benchmark(encode_batch, RECORDS, timestamp=1)


def test_encode_1000x100B_gzip(benchmark):
    benchmark(encode_batch, RECORDS, timestamp=1, compression="gzip")


def test_decode_1000x100B(benchmark):
    benchmark(lambda: decode_records_into(BATCH, []))


def test_decode_1000x100B_gzip(benchmark):
    benchmark(decode_batch, BATCH_GZ)


def test_validate_crc_1000x100B(benchmark):
    benchmark(validate_batch, BATCH)


def test_append_batch_1000x100B(benchmark, tmp_path):
    lg = PartitionLog(str(tmp_path / "t-0"), "t", 0, LogConfig(fsync="never"))
    benchmark(lg.append, BATCH, validate=False)
    lg.close()


def test_index_lookup(benchmark, tmp_path):
    idx = OffsetIndex(os.path.join(tmp_path, "x.index"), 0)
    for i in range(250_000):  # a 1 GiB segment's worth of 4 KiB entries
        idx.append(i * 40, i * 4096)
    benchmark(idx.lookup, 5_000_123)


def test_read_batches_1MiB(benchmark, tmp_path):
    lg = PartitionLog(str(tmp_path / "t-0"), "t", 0, LogConfig(fsync="never"))
    for _ in range(200):
        lg.append(BATCH, validate=False)
    benchmark(lg.read_bytes, 100_000, 1 << 20)
    lg.close()
