"""A seeded, bounded wire fuzz of ``logmq serve`` (the long campaign is tools/fuzz_wire.py).

30,000 mutated frames of every advertised API and version (byte-level damage, and well-encoded
bodies with odd values that reach the handlers) against a server subprocess, while a
well-behaved client produces and fetches: the server must not crash or hang, its RSS must
stay bounded, the good client must be served with bounded latency and see every one of its
records, the server must stop on SIGTERM promptly, and ``logmq verify`` must find every
stored batch valid record by record (nothing a malformed request carried was appended).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import fuzz_wire  # noqa: E402

CASES = 30_000
SEED = 20261201


def test_corpus_covers_every_advertised_api_version():
    from logmq.protocol import SUPPORTED_VERSIONS, decode_request

    frames = fuzz_wire.corpus()
    want = {(a, v) for a, (lo, hi) in SUPPORTED_VERSIONS.items() for v in range(lo, hi + 1)}
    assert {(a, v) for a, v, _f in frames} == want
    for _a, _v, f in frames:
        decode_request(f[4:])  # the unmutated corpus is valid
    m = fuzz_wire.Mutator(SEED)
    assert m.case(123) == fuzz_wire.Mutator(SEED).case(123)  # reproducible from the seed


def test_wire_fuzz_server_survives_and_serves(tmp_path):
    data = str(tmp_path / "data")
    proc, host, port = fuzz_wire.start_server(data, *fuzz_wire.FUZZ_LIMITS)
    try:
        rep = fuzz_wire.run_against(host, port, proc.pid, cases=CASES, seed=SEED,
                                    concurrency=16, timeout=0.25, max_seconds=240)
        s = rep.summary()
        assert proc.poll() is None, f"server died: {s}"
        assert rep.cases == CASES, f"campaign stalled (server hang?): {s}"
        assert s["outcomes"].get("answered", 0) > 1000, s  # the fuzz reached the handlers
        assert rep.wrong_correlation == 0, s
        assert rep.wb_errors == [], s
        assert rep.wb_rounds >= 20, s
        assert s["wellbehaved_ms_p99"] < 1000, s
        assert s["wellbehaved_ms_max"] < 5000, s  # bounded even on a loaded CI machine
        assert s["rss_mb_max"] < s["rss_mb_start"] + 150, s
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert time.monotonic() - t0 < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    res = subprocess.run([sys.executable, "-m", "logmq.cli", "verify", "--data", data, "-q"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert res.returncode == 0, res.stdout + res.stderr
    errors = fuzz_wire.server_errors(data)
    assert errors == [], errors[:20]  # no handler raised: every bad input got a typed answer
