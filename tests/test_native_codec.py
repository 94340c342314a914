"""The compiled codec core against the pure reference: same records, same bytes, same errors.

Every comparison runs both implementations in this process on the same input: the pure
functions are kept in ``logmq.codec.records`` as ``_py_*`` whatever the selection, the native
ones are called from ``logmq.codec._native``. Under CI a missing extension fails these tests
(the build must produce it); elsewhere they skip with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, example, given, settings

from logmq.codec import records as R
from logmq.codec import walk as W
from logmq.codec.batch import HEADER_SIZE, parse_header
from logmq.errors import CorruptRecordError
from logmq.types import Record

try:
    from logmq.codec import _native as N
except ImportError as e:  # pragma: no cover - depends on the build
    if os.environ.get("CI"):
        raise ImportError(f"CI must build the native codec (pip install -e .): {e}") from e
    pytest.skip(f"native codec not built ({e}); run: python setup.py build_ext --inplace",
                allow_module_level=True)

N.bind(R)
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def outcome(fn: Callable[..., Any], *args: Any) -> tuple:
    """('ok', result) or ('err', type, message, position): what the tests compare."""
    try:
        return ("ok", fn(*args))
    except CorruptRecordError as e:
        return ("err", type(e), str(e), e.position)


def shape(items: list) -> list:
    """Items with the exact types of their parts (bytes must not come back as memoryview)."""
    return [(type(r), tuple((type(x), x) for x in r)) for r in items]


@contextmanager
def impl(name: str) -> Iterator[None]:
    """Swap records' per-record core for one block (tests only: not thread-safe)."""
    names = ("_encode_payload", "_encode_whole", "_decode_payload", "_records_payload",
             "encode_varint", "decode_varint")
    saved = {k: getattr(R, k) for k in names}
    if name == "python":
        new = (R._py_encode_payload, R._py_encode_whole, R._py_decode_payload,
               R._py_records_payload, R._py_encode_varint, R._py_decode_varint)
    else:
        new = (N.encode_payload, N.encode_whole, N.decode_payload, R._records_view,
               N.encode_varint, N.decode_varint)
    for k, v in zip(names, new, strict=True):
        setattr(R, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(R, k, v)


# ------------------------------------------------------------------ strategies
blobs = st.one_of(st.none(), st.binary(max_size=40), st.binary(min_size=60, max_size=300),
                  st.just(b"L" * 20_000))  # 1-, 2- and 3-byte length varints
hkeys = st.text(max_size=12)
headers = st.lists(st.tuples(hkeys, st.one_of(st.none(), st.binary(max_size=70))), max_size=4)
record = st.one_of(st.tuples(blobs, blobs), st.tuples(blobs, blobs, headers))


@st.composite
def batches(draw: st.DrawFn) -> tuple[list, dict]:
    recs = draw(st.lists(record, min_size=1, max_size=25))
    n = len(recs)
    kw: dict[str, Any] = {"base_offset": draw(st.integers(0, 2**40)),
                          "compression": draw(st.sampled_from(CODECS)),
                          "control": draw(st.booleans()) and draw(st.booleans())}
    if draw(st.booleans()):
        base = draw(st.integers(-(2**40), 2**41))
        kw["timestamps"] = [base + draw(st.integers(-(2**35), 2**35)) for _ in range(n)]
    else:
        kw["timestamp"] = draw(st.integers(0, 2**45))
    if draw(st.booleans()):  # gaps, as compaction leaves them; some multi-byte deltas
        gaps = draw(st.lists(st.integers(1, 2**21), min_size=n, max_size=n))
        acc = draw(st.integers(0, 3))
        kw["offset_deltas"] = []
        for g in gaps:
            kw["offset_deltas"].append(acc)
            acc += g
    return recs, kw


def decode_both(buf: bytes, *args: Any, **kw: Any) -> None:
    """Payload-level decode of every batch in ``buf`` by both cores; same items or error."""
    h = parse_header(buf, 0)
    payload = R._py_records_payload(buf, 0, h)
    py_out: list = []
    nat_out: list = []
    a = outcome(R._py_decode_payload, payload, h, py_out, *args)
    b = outcome(N.decode_payload, memoryview(buf)[HEADER_SIZE : h.size]
                if not h.compression else payload, h, nat_out, *args)
    assert a == b
    assert shape(py_out) == shape(nat_out)


# ------------------------------------------------------------------ decode
@FAST
@given(batches(), st.integers(0, 40), st.one_of(st.none(), st.integers(-1, 30)))
def test_decode_matches_pure(b: tuple, skip: int, limit: int | None) -> None:
    recs, kw = b
    raw = R.encode_batch(recs, **kw)
    minimum = kw["base_offset"] + skip
    decode_both(raw, minimum, limit, None)
    decode_both(raw, minimum, limit, None, Record, "topic", 3)
    decode_both(raw, 0, None, lambda *a: ("made", *a))
    with impl("python"):
        py = [outcome(R.decode_batch, raw), list(R.iter_records(raw * 2, min_offset=minimum))]
        py_out: list = []
        py.append(outcome(R.decode_records_into, raw + raw[:30], py_out, minimum, limit, None))
    with impl("native"):
        nat = [outcome(R.decode_batch, raw), list(R.iter_records(raw * 2, min_offset=minimum))]
        nat_out: list = []
        nat.append(outcome(R.decode_records_into, raw + raw[:30], nat_out, minimum, limit, None))
    assert py == nat
    assert shape(py_out) == shape(nat_out)
    if not kw["control"]:  # and both are right, not just equal
        _, got = py[0][1]
        want = [(r[0], r[1], list(r[2]) if len(r) > 2 and r[2] else []) for r in recs]
        assert [(k, v, hs) for _, _, k, v, hs in got] == want


def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, where, val in edits:
        if not buf:
            break
        i = where % len(buf)
        if kind == 0:
            buf[i] = val
        elif kind == 1:
            buf[i] ^= 1 << (val % 8)
        elif kind == 2:
            del buf[i : i + 1 + val % 3]
        elif kind == 3:
            buf[i:i] = bytes([val]) * (1 + val % 11)  # e.g. runs of 0xFF: long varints
        else:
            del buf[i:]
    return bytes(buf)


edits = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 2**16), st.integers(0, 255)),
                 min_size=1, max_size=6)


def rebatch(raw: bytes, payload: bytes, count: int | None = None) -> bytes:
    """``raw``'s header over another (uncompressed) records section and count."""
    h = parse_header(raw)
    head = bytearray(raw[:HEADER_SIZE])
    head[8:12] = (HEADER_SIZE - 12 + len(payload)).to_bytes(4, "big", signed=True)
    head[21:23] = (h.attributes & ~0x27).to_bytes(2, "big")  # uncompressed, not control
    if count is not None:
        head[57:61] = count.to_bytes(4, "big", signed=True)
    return bytes(head) + payload


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), edits, st.integers(-3, 3), st.integers(0, 5))
def test_mutated_records_give_same_error(b: tuple, ed: list, dcount: int, skip: int) -> None:
    recs, kw = b
    kw = {**kw, "compression": "none", "control": False}
    raw = R.encode_batch(recs, **kw)
    bad = rebatch(raw, mutate(raw[HEADER_SIZE:], ed), len(recs) + dcount)
    decode_both(bad, kw["base_offset"] + skip, None, None)
    decode_both(bad, 0, 2, None, Record, "t", 0)
    h = parse_header(bad)
    args = (bad[HEADER_SIZE:], h.base_timestamp, h.record_count)
    assert outcome(W._py_walk_records, *args) == outcome(N.walk_records, *args)


@FAST
@given(st.binary(max_size=300), st.integers(-2, 40), st.integers(-(2**63), 2**63 - 1))
@example(b"\x02" + b"\xff" * 9 + b"\x7f" + b"\x00" * 8, 1, 0)  # varint past 64 bits: fallback
@example(b"\x14\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00\x00\x00\x00", 1, 2**63 - 1)
def test_random_bytes_give_same_outcome(data: bytes, count: int, base_ts: int) -> None:
    raw = R.encode_batch([(b"k", b"v")], timestamp=max(base_ts, 0) % 2**62)
    bad = rebatch(raw, data, count)
    head = bytearray(bad)
    head[27:35] = base_ts.to_bytes(8, "big", signed=True)
    head[0:8] = (2**63 - 5).to_bytes(8, "big")  # offsets overflow int64: fallback path
    for buf in (bad, bytes(head)):
        decode_both(buf, 0, None, None)
        decode_both(buf, 0, None, None, Record, "t", 1)
        h = parse_header(buf)
        args = (buf[HEADER_SIZE:], h.base_timestamp, h.record_count)
        assert outcome(W._py_walk_records, *args) == outcome(N.walk_records, *args)


# ------------------------------------------------------------------ walk (validator)
@FAST
@given(batches())
def test_walk_accepts_what_the_encoder_writes(b: tuple) -> None:
    recs, kw = b
    kw = {**kw, "compression": "none", "offset_deltas": None}
    raw = R.encode_batch(recs, **kw)
    ts = kw.get("timestamps") or [kw.get("timestamp")] * len(recs)
    want = (len(recs), min(ts), max(ts))
    h = parse_header(raw)
    assert W._py_walk_records(raw[HEADER_SIZE:], h.base_timestamp, len(recs)) == want
    assert N.walk_records(memoryview(raw)[HEADER_SIZE:], h.base_timestamp, len(recs)) == want


def test_walk_refuses_gaps_and_long_varints_at_their_position() -> None:
    raw = R.encode_batch([(b"a", b"1"), (b"b", b"2")], offset_deltas=[0, 5], timestamp=7)
    body = raw[HEADER_SIZE:]
    for walk in (W._py_walk_records, N.walk_records):
        with pytest.raises(CorruptRecordError, match="offset delta 5, expected 1") as e:
            walk(body, 7, 2)
        assert e.value.position == body.index(b"\x0a\x02b")  # offsetDelta of record 1
        # a 6-byte varint for a 32-bit field (Java's reader refuses it too)
        with pytest.raises(CorruptRecordError, match="longer than 5 bytes") as e:
            walk(b"\x80\x80\x80\x80\x80\x00" + body, 7, 2)
        assert e.value.position == 0
        good = R.encode_batch([(b"a", b"1"), (b"b", b"2")], timestamp=7)[HEADER_SIZE:]
        assert walk(good, 7, 2) == (2, 7, 7)
        with pytest.raises(CorruptRecordError, match="trailing bytes") as e:
            walk(good + b"\x00", 7, 2)
        assert e.value.position == len(good)
        with pytest.raises(CorruptRecordError, match="not UTF-8"):
            walk(R._py_encode_payload([(b"k", b"v", [("é", b"")])], None, 0, None)
                 .replace("é".encode(), b"\xff\xfe"), 0, 1)


# ------------------------------------------------------------------ encode and varints
odd_blobs = st.one_of(blobs, st.binary(max_size=20).map(bytearray),
                      st.binary(max_size=20).map(memoryview))


@FAST
@given(st.lists(st.one_of(st.tuples(odd_blobs, odd_blobs),
                          st.tuples(odd_blobs, odd_blobs, headers),
                          st.lists(odd_blobs, min_size=2, max_size=2)), min_size=1,
                max_size=20),
       st.booleans(), st.booleans(), st.integers(-(2**62), 2**62))
def test_encode_is_byte_identical(recs: list, with_ts: bool, with_od: bool, base: int) -> None:
    n = len(recs)
    ts = [base + i * 977 for i in range(n)] if with_ts else None
    od = [i * 3 + 1 for i in range(n)] if with_od else None
    assert N.encode_payload(recs, ts, base, od) == R._py_encode_payload(recs, ts, base, od)
    assert N.encode_payload(tuple(recs), None, 0, None) == \
        R._py_encode_payload(tuple(recs), None, 0, None)


@FAST
@given(batches(), st.integers(-(2**31), 2**31 - 1), st.integers(-1, 2**40))
def test_encode_batch_is_byte_identical(b: tuple, epoch: int, pid: int) -> None:
    recs, kw = b
    kw = {**kw, "leader_epoch": epoch, "producer_id": pid, "base_sequence": 3,
          "transactional": pid > 2**39}
    with impl("python"):
        py = R.encode_batch(recs, **kw)
    with impl("native"):
        nat = R.encode_batch(recs, **kw)
    if kw["compression"] in ("none", "snappy"):  # deterministic codecs: the same bytes
        assert nat == py
    with impl("python"):
        assert R.decode_batch(nat) == R.decode_batch(py)


@FAST
@given(st.integers(-(2**70), 2**70))
def test_varints_match(n: int) -> None:
    raw = R._py_encode_varint(n) if -(2**63) <= n < 2**63 else b"\xff" * 9 + b"\x7f"
    assert N.encode_varint(n) == R._py_encode_varint(n)
    assert outcome(N.decode_varint, raw, 0) == outcome(R._py_decode_varint, raw, 0)
    for cut in range(len(raw)):
        assert outcome(N.decode_varint, raw[:cut], 0) == outcome(R._py_decode_varint,
                                                                 raw[:cut], 0)
    long = b"\x80" * 10 + b"\x00"
    assert outcome(N.decode_varint, long, 0) == outcome(R._py_decode_varint, long, 0)


# ------------------------------------------------------------------ selection
def _implementation(env: dict[str, str]) -> str:
    code = ("import logmq.codec as c, logmq.codec.keys as k, logmq.codec.walk as w; "
            "print(c.implementation, k.bucket_keys.__module__, w.walk_records.__module__)")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, check=True,
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def test_selection_native_by_default_and_pure_on_request() -> None:
    assert _implementation({"LOGMQ_PURE": "0"}) == \
        "native logmq.codec._native logmq.codec._native"
    assert _implementation({"LOGMQ_PURE": "1"}) == "python logmq.codec.keys_ref logmq.codec.walk"
