#!/usr/bin/env python3
"""Mutation corpus for the native codec: random batches, damaged bytes, both cores compared.

Each case encodes a random batch (any codec, headers, nulls, multi-byte varints, gaps),
damages its records section (byte writes, bit flips, deletions, insertions, truncation) or
replaces it with random bytes, and runs decode, the validator walk and varint decode through
the native and the pure core, which must agree exactly (records, or error text and position).
Payloads are handed to the native side in exact-size ``array`` buffers so that, under
AddressSanitizer (tools/asan_build.sh), a read one byte past the end is reported.

    python tools/native_mutate.py [--cases N] [--seconds S] [--seed K]
"""

from __future__ import annotations

import argparse
import array
import random
import sys
import time
from typing import Any

from logmq.codec import _native as N
from logmq.codec import records as R
from logmq.codec import walk as W
from logmq.codec.batch import HEADER_SIZE, parse_header
from logmq.errors import CorruptRecordError
from logmq.types import Record

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
try:
    from logmq.codec import validate as _validate
except ImportError:  # logmq/codec/validate.py not merged yet: the native walk still runs
    _validate = None  # type: ignore[assignment]


def exact(data: bytes) -> array.array:
    """A copy of ``data`` in a buffer with no slack after it (``array`` * n allocates exactly;
    bytes keep a NUL and ``array(data)`` over-allocates, which would hide a 1-byte over-read)."""
    buf = array.array("B", [0]) * len(data)
    buf[:] = array.array("B", data)
    return buf


def outcome(fn: Any, *args: Any) -> tuple:
    try:
        return ("ok", fn(*args))
    except CorruptRecordError as e:
        return ("err", str(e), e.position)


def blob(rng: random.Random) -> bytes | None:
    r = rng.random()
    if r < 0.15:
        return None
    if r < 0.9:
        return rng.randbytes(rng.randint(0, 70))
    return rng.randbytes(rng.randint(100, 20_000))


def random_batch(rng: random.Random) -> tuple[list, dict]:
    n = rng.randint(1, 30)
    recs: list = []
    for _ in range(n):
        if rng.random() < 0.3:
            hs = [("".join(chr(rng.randint(32, 0x2FF)) for _ in range(rng.randint(0, 6))),
                   blob(rng)) for _ in range(rng.randint(1, 3))]
            recs.append((blob(rng), blob(rng), hs))
        else:
            recs.append((blob(rng), blob(rng)))
    kw: dict[str, Any] = {"base_offset": rng.randint(0, 2**40),
                          "compression": rng.choice(CODECS)}
    if rng.random() < 0.5:
        base = rng.randint(-(2**40), 2**41)
        kw["timestamps"] = [base + rng.randint(-(2**33), 2**33) for _ in range(n)]
    else:
        kw["timestamp"] = rng.randint(0, 2**45)
    if rng.random() < 0.3:
        acc, kw["offset_deltas"] = 0, []
        for _ in range(n):
            kw["offset_deltas"].append(acc)
            acc += rng.randint(1, 2**20)
    return recs, kw


def damage(rng: random.Random, data: bytes) -> bytes:
    if rng.random() < 0.1:
        return rng.randbytes(rng.randint(0, 200))
    buf = bytearray(data)
    for _ in range(rng.randint(1, 5)):
        if not buf:
            break
        i = rng.randrange(len(buf))
        k = rng.randrange(5)
        if k == 0:
            buf[i] = rng.randrange(256)
        elif k == 1:
            buf[i] ^= 1 << rng.randrange(8)
        elif k == 2:
            del buf[i : i + rng.randint(1, 3)]
        elif k == 3:
            buf[i:i] = bytes([rng.choice([0xFF, 0x80, 0x01, rng.randrange(256)])]) * \
                rng.randint(1, 11)
        else:
            del buf[i:]
    return bytes(buf)


def with_payload(raw: bytes, payload: bytes, count: int) -> bytes:
    h = parse_header(raw)
    head = bytearray(raw[:HEADER_SIZE])
    head[8:12] = (HEADER_SIZE - 12 + len(payload)).to_bytes(4, "big", signed=True)
    head[21:23] = (h.attributes & ~0x27).to_bytes(2, "big")
    head[57:61] = count.to_bytes(4, "big", signed=True)
    return bytes(head) + payload


def check(rng: random.Random) -> str:
    recs, kw = random_batch(rng)
    raw = R.encode_batch(recs, **kw)
    h = parse_header(raw)
    payload = R._py_records_payload(raw, 0, h)
    if rng.random() < 0.2:  # intact (possibly compressed): both decode it, identically
        bad, count = raw, h.record_count
    else:
        body = damage(rng, payload)
        count = h.record_count + rng.choice([0, 0, 0, -1, 1, -2 ** 31])
        bad = with_payload(raw, body, count)
    bh = parse_header(bad)
    py_payload = R._py_records_payload(bad, 0, bh)
    tight = exact(py_payload)
    verdict = ""
    for extra in ((kw["base_offset"], None, None), (0, rng.randint(0, 5), None, Record, "t", 2)):
        a_out: list = []
        b_out: list = []
        a = outcome(R._py_decode_payload, py_payload, bh, a_out, *extra)
        b = outcome(N.decode_payload, tight, bh, b_out, *extra)
        if a != b or a_out != b_out or [type(x[2]) for x in a_out] != [type(x[2]) for x in b_out]:
            raise AssertionError(f"decode differs: {a!r} vs {b!r}\nbatch {bad.hex()}")
        verdict = verdict or a[0]
    w = (py_payload, bh.base_timestamp, bh.record_count)
    a = outcome(W._py_walk_records, *w)
    b = outcome(N.walk_records, exact(py_payload), *w[1:])
    if a != b:
        raise AssertionError(f"walk differs: {a!r} vs {b!r}\nbatch {bad.hex()}")
    pw = (py_payload, bh.record_count, rng.random() < 0.7, rng.choice([bh.record_count - 1, 0,
                                                                       2 * bh.record_count]))
    b = outcome(N.walk_produce, exact(py_payload), *pw[1:])
    if _validate is not None:  # the validator's pure walk (wire surface), once merged
        a = outcome(_validate.walk_records, *pw)
        if a != b:
            raise AssertionError(f"produce walk differs: {a!r} vs {b!r}\nbatch {bad.hex()}")
    if py_payload:
        p = rng.randrange(len(py_payload))
        piece = exact(py_payload[p : p + rng.randint(0, 11)])
        if outcome(R._py_decode_varint, bytes(piece), 0) != outcome(N.decode_varint, piece, 0):
            raise AssertionError(f"varint differs on {bytes(piece).hex()}")
    return verdict


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=20_000)
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: none)")
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args()
    N.bind(R)
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    seen = {"ok": 0, "err": 0}
    done = 0
    while done < args.cases and not (args.seconds and time.monotonic() - t0 > args.seconds):
        seen[check(rng)] += 1
        done += 1
    print(f"native_mutate: {done} cases agree ({seen['ok']} decoded, {seen['err']} refused) "
          f"in {time.monotonic() - t0:.1f} s, native module {N.__file__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
