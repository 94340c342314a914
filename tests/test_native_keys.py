"""Native key bucketing against the pure reference (``logmq.codec.keys``)."""

from __future__ import annotations

import os

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from xxhash import xxh3_64_intdigest

from logmq.codec.keys import _py_bucket_keys

try:
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
