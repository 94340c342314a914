"""Micro-benchmarks (pytest-benchmark): ``python -m pytest bench --benchmark-enable``.

Numbers go in the issue notes and the README, never into assertions. The per-record codec
benchmarks run once per core (``[native]`` and ``[python]`` side by side in one table; group
them with ``--benchmark-group-by=func``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from logmq.codec import keys as K
from logmq.codec import records as R
from logmq.codec import walk as W
from logmq.codec.batch import HEADER_SIZE, validate_batch
from logmq.codec.records import decode_batch, decode_records_into, encode_batch
from logmq.storage.index import OffsetIndex
from logmq.storage.log import LogConfig, PartitionLog

RECORDS = [(b"key-%d" % (i % 1000), b"x" * 100) for i in range(1000)]
BATCH = encode_batch(RECORDS, timestamp=1)
BATCH_GZ = encode_batch(RECORDS, timestamp=1, compression="gzip")


_SWAPPED = ("_encode_payload", "_encode_whole", "_decode_payload", "_records_payload")


@pytest.fixture(params=["native", "python"])
def core(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the benchmark with one codec core swapped in (both are in this process)."""
    try:
        from logmq.codec import _native
    except ImportError:
        if os.environ.get("CI") or request.param == "python":
            raise
        pytest.skip("native codec not built: python setup.py build_ext --inplace")
        raise
    _native.bind(R)
    saved = {k: getattr(R, k) for k in _SWAPPED}
    if request.param == "native":
        new = (_native.encode_payload, _native.encode_whole, _native.decode_payload,
               R._records_view)
    else:
        new = (R._py_encode_payload, R._py_encode_whole, R._py_decode_payload,
               R._py_records_payload)
    for k, v in zip(_SWAPPED, new, strict=True):
        setattr(R, k, v)
    yield request.param
    for k, v in saved.items():
        setattr(R, k, v)


def test_encode_1000x100B(benchmark, core):
    benchmark(encode_batch, RECORDS, timestamp=1)


def test_encode_1000x100B_gzip(benchmark, core):
    benchmark(encode_batch, RECORDS, timestamp=1, compression="gzip")


def test_decode_1000x100B(benchmark, core):
    benchmark(lambda: decode_records_into(BATCH, []))


def test_decode_1000x100B_records(benchmark, core):
    from logmq.types import Record

    benchmark(lambda: decode_records_into(BATCH, [], record_cls=Record, topic="t",
                                          partition=0))


def test_decode_1000x100B_gzip(benchmark, core):
    benchmark(decode_batch, BATCH_GZ)


def test_walk_1000x100B(benchmark, core):
    body = BATCH[HEADER_SIZE:]
    if core == "native":
        from logmq.codec._native import walk_records as walk
    else:
        walk = W._py_walk_records
    benchmark(lambda: walk(body, 1, 1000))


@pytest.mark.parametrize("impl", ["native", "python"])
def test_bucket_keys_10000(benchmark, impl):
    recs = RECORDS * 10
    if impl == "python":
        fn = K._py_bucket_keys
    else:
        fn = pytest.importorskip("logmq.codec._native").bucket_keys
    benchmark(fn, recs, 8)


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
