"""Coverage-guided fuzzing (atheris) of the sans-I/O wire codec and the produce validator.

Targets:

* ``codec``: any bytes as a request frame. ``decode_request`` may only raise ProtocolError;
  ``FrameBuffer`` fed the same bytes in two pieces may only raise ProtocolError.
* ``validator``: any bytes as the records payload of a batch whose header and CRC are made
  right (so the fuzzer reaches the per-record walk instead of stopping at the CRC). The
  validator may only raise CorruptRecordError (and its subclasses); whatever it accepts must
  decode with ``decode_batch`` into exactly ``recordCount`` records (the validator and the
  consumer's decoder agree).
* ``batch``: any bytes as a whole produce ``records`` field (header fuzzed too).

    pip install atheris
    python tools/fuzz_atheris.py validator -atheris_runs=200000
    python tools/fuzz_atheris.py codec -max_total_time=60
"""

from __future__ import annotations

import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import atheris  # noqa: E402

with atheris.instrument_imports():
    from logmq.codec import validate as _validate
    from logmq.codec.batch import CRC_START, crc32c
    from logmq.codec.records import decode_batch, encode_batch
    from logmq.errors import CorruptRecordError, ProtocolError
    from logmq.protocol import SUPPORTED_VERSIONS, FrameBuffer, decode_request

_POLICY = _validate.ProducePolicy(timestamp_before_max_ms=(1 << 63) - 1,
                                  timestamp_after_max_ms=(1 << 63) - 1,
                                  max_uncompressed_bytes=1 << 20)
_TEMPLATE = encode_batch([(b"k", b"v")], timestamp=1_700_000_000_000)


_APIS = sorted((a, v) for a, (lo, hi) in SUPPORTED_VERSIONS.items() for v in range(lo, hi + 1))


def codec_target(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    api, version = _APIS[fdp.ConsumeIntInRange(0, len(_APIS) - 1)]
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    frame = struct.pack(">hhih", api, version, 1, 1) + b"f" + body  # a valid header
    for raw in (frame, data):
        try:
            decode_request(raw, max_elements=10_000)
        except ProtocolError:
            pass
    fb = FrameBuffer(1 << 20)
    try:
        half = len(data) // 2
        fb.feed(data[:half])
        while fb.next_frame() is not None:
            pass
        fb.feed(data[half:])
        while fb.next_frame() is not None:
            pass
    except ProtocolError:
        pass


def _check_accepted(out: bytes | bytearray | memoryview, headers: list) -> None:
    for pos, h in headers:
        got, recs = decode_batch(bytes(out), pos)
        assert len(recs) == h.record_count, (len(recs), h.record_count)
        assert got.max_timestamp == h.max_timestamp


def validator_target(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    count = fdp.ConsumeIntInRange(1, 64)
    codec = fdp.PickValueInList([0, 0, 0, 1, 2, 3, 4])
    payload = fdp.ConsumeBytes(fdp.remaining_bytes())
    if codec:
        from logmq.codec.compression import compress

        payload = compress(codec, payload)
    b = bytearray(_TEMPLATE[:61]) + payload
    struct.pack_into(">i", b, 8, len(b) - 12)
    struct.pack_into(">h", b, 21, codec)
    struct.pack_into(">i", b, 23, count - 1)
    struct.pack_into(">i", b, 57, count)
    struct.pack_into(">I", b, 17, crc32c(bytes(b[CRC_START:])))
    try:
        out, headers = _validate.validate_produce(bytes(b), _POLICY, now_ms=1_700_000_000_000)
    except CorruptRecordError:
        return
    _check_accepted(out, headers)


def batch_target(data: bytes) -> None:
    if len(data) >= 61:  # make the CRC right half the time, so the header checks are reached
        b = bytearray(data)
        if b[0] & 1:
            struct.pack_into(">I", b, 17, crc32c(bytes(b[CRC_START:])))
            b[16] = 2
        data = bytes(b)
    try:
        out, headers = _validate.validate_produce(data, _POLICY, now_ms=1_700_000_000_000)
    except CorruptRecordError:
        pass
    else:
        _check_accepted(out, headers)
    try:
        _validate.check_stored_batch(data)
    except CorruptRecordError:
        pass


TARGETS = {"codec": codec_target, "validator": validator_target, "batch": batch_target}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
