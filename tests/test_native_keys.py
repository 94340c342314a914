"""Native key bucketing against the pure reference (``logmq.codec.keys``)."""

from __future__ import annotations

import os

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from xxhash import xxh3_64_intdigest

from logmq.codec.batch import iter_batches
from logmq.codec.keys import _py_bucket_encode, _py_bucket_keys
from logmq.codec.records import decode_batch

try:
    from logmq.codec._native import bucket_encode as native_bucket_encode
    from logmq.codec._native import bucket_keys as native_bucket_keys
except ImportError as e:  # pragma: no cover - depends on the build
    if os.environ.get("CI"):
        raise ImportError(f"CI must build the native codec (pip install -e .): {e}") from e
    pytest.skip(f"native codec not built ({e})", allow_module_level=True)

keys = st.one_of(st.sampled_from([b"a", b"b", b"key-1", b""]), st.binary(max_size=8))
plain = st.one_of(st.tuples(keys, st.binary(max_size=4)),
                  st.lists(keys, min_size=2, max_size=2).map(lambda kv: [kv[0], b"v"]))
odd = st.one_of(st.tuples(st.none(), st.just(b"v")), st.tuples(keys, st.text(max_size=2)),
                st.tuples(keys, st.just(b"v"), st.just([("h", b"")])),
                st.tuples(st.just(bytearray(b"k")), st.just(b"v")))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(plain, plain, plain, odd), max_size=40), st.integers(1, 12))
def test_same_buckets_as_pure(recs: list, n: int) -> None:
    want = _py_bucket_keys(recs, n)
    got = native_bucket_keys(recs, n)
    assert got == want
    if want is not None:  # the same record objects, in order, under the documented hash
        assert {p: [id(r) for r in rs] for p, rs in got.items()} == \
            {p: [id(r) for r in rs] for p, rs in want.items()}
        for p, rs in got.items():
            assert all(xxh3_64_intdigest(r[0]) % n == p for r in rs)


def test_bad_partition_counts_behave_as_pure() -> None:
    with pytest.raises(ZeroDivisionError):
        native_bucket_keys([(b"k", b"v")], 0)
    assert native_bucket_keys(iter([(b"k", b"v")]), 3) == _py_bucket_keys([(b"k", b"v")], 3)


big = st.one_of(st.tuples(keys, st.binary(max_size=300)), st.tuples(keys, st.just(b"x" * 200)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(big, big, big, plain, odd), max_size=60), st.integers(1, 6),
       st.integers(62, 2000), st.integers(0, 2**41))
def test_bucket_encode_same_bytes_as_pure(recs: list, n: int, limit: int, ts: int) -> None:
    """Byte for byte the pure batches: same split points, headers, CRCs, partition order."""
    want = _py_bucket_encode(recs, n, ts, limit)
    got = native_bucket_encode(recs, n, ts, limit)
    assert got == want
    if want is None:
        return
    assert list(got) == list(want)
    for p, batches in got.items():
        decoded = []
        for b in batches:
            (h,) = [h for _pos, h in iter_batches(b)]
            assert h.size <= limit or h.record_count == 1  # only a lone record overflows
            _h, rs = decode_batch(b)  # CRC checked
            decoded += [(key, value) for _off, _ts, key, value, _hs in rs]
            assert all(rts == ts for _off, rts, _k, _v, _hs in rs)
        assert decoded == [tuple(r) for r in recs if xxh3_64_intdigest(r[0]) % n == p]


def _outcome(f, *args):
    try:
        return f(*args)
    except Exception as e:  # the same exception type is the same behaviour
        return type(e)


@pytest.mark.parametrize("args", [
    ([(b"k", b"v")], 3, 2**70, 1000),       # a timestamp past int64
    (iter([(b"k", b"v")]), 3, 5, 1000),      # not a list
    ([(b"k", b"v")], 0, 5, 1000),            # no partitions
    ([(b"k", b"v")], 3, 5, 10),              # a limit below a header
    ([(b"k", b"v", [])], 3, 5, 1000),        # headers: the general path
    ([(None, b"v")], 3, 5, 1000),            # a null key: the sticky partition
])
def test_bucket_encode_hands_odd_arguments_to_pure(args: tuple) -> None:
    want = _outcome(_py_bucket_encode, *args)
    if isinstance(args[0], type(iter([]))):
        args = (iter([(b"k", b"v")]), *args[1:])
    assert _outcome(native_bucket_encode, *args) == want
