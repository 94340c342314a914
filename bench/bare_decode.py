#!/usr/bin/env python3
"""The ceiling for ``poll``: a bare C loop decoding v2 batches into the same ``Record`` tuples.

Compiles (with the system C compiler, into a temp dir) a loop with no checks at all that
builds exactly the objects a poll returns (key and value bytes, an empty headers list, offset
and timestamp ints, the ``Record`` tuple), and measures it in the same run as the native and
the pure ``decode_records_into`` and a real ``Consumer.poll`` over the same records. The
target is native >= 0.7x of the bare loop; the gap is the price of bounds checks and of
matching the pure code's semantics.

    python bench/bare_decode.py [--records N] [--rounds R]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable

_C = r"""
#include <Python.h>
#include <stdint.h>

static inline int64_t rd(const uint8_t **pp) {
    const uint8_t *p = *pp; uint64_t r = 0; int s = 0; uint8_t b;
    if (*p < 0x80) { b = *p; *pp = p + 1; return (int64_t)((b >> 1) ^ (~(b & 1) + 1)); }
    do { b = *p++; r |= (uint64_t)(b & 0x7F) << s; s += 7; } while (b & 0x80);
    *pp = p;
    return (int64_t)((r >> 1) ^ (~(r & 1) + 1));
}
static int64_t be64(const uint8_t *p) {
    uint64_t v = 0; for (int i = 0; i < 8; i++) v = (v << 8) | p[i]; return (int64_t)v;
}
static int32_t be32(const uint8_t *p) {
    return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]);
}

/* decode(buf, out, cls, topic, partition): uncompressed batches only, trusted bytes */
static PyObject *decode(PyObject *self, PyObject *args) {
    Py_buffer v; PyObject *out, *cls, *topic, *part;
    if (!PyArg_ParseTuple(args, "y*OOOO", &v, &out, &cls, &topic, &part)) return NULL;
    const uint8_t *b = v.buf, *e = b + v.len;
    PyTypeObject *t = (PyTypeObject *)cls;
    Py_ssize_t n = 0;
    while (e - b >= 61) {
        int64_t base = be64(b), base_ts = be64(b + 27);
        int32_t len = be32(b + 8), count = be32(b + 57);
        const uint8_t *p = b + 61;
        PyObject *ts_obj = NULL; int64_t last_ts = 0;
        for (int32_t i = 0; i < count; i++) {
            rd(&p); p++;
            int64_t tsd = rd(&p), od = rd(&p), kl = rd(&p);
            PyObject *k, *val;
            if (kl < 0) { k = Py_None; Py_INCREF(k); }
            else { k = PyBytes_FromStringAndSize((const char *)p, kl); p += kl; }
            int64_t vl = rd(&p);
            if (vl < 0) { val = Py_None; Py_INCREF(val); }
            else { val = PyBytes_FromStringAndSize((const char *)p, vl); p += vl; }
            rd(&p);  /* header count: 0 in this benchmark */
            int64_t ts = base_ts + tsd;
            if (ts_obj == NULL || ts != last_ts) {
                Py_XDECREF(ts_obj); ts_obj = PyLong_FromLongLong(ts); last_ts = ts;
            }
            PyObject *r = t->tp_alloc(t, 7);
            Py_INCREF(topic); PyTuple_SET_ITEM(r, 0, topic);
            Py_INCREF(part); PyTuple_SET_ITEM(r, 1, part);
            PyTuple_SET_ITEM(r, 2, PyLong_FromLongLong(base + od));
            Py_INCREF(ts_obj); PyTuple_SET_ITEM(r, 3, ts_obj);
            PyTuple_SET_ITEM(r, 4, k);
            PyTuple_SET_ITEM(r, 5, val);
            PyTuple_SET_ITEM(r, 6, PyList_New(0));
            PyList_Append(out, r);
            Py_DECREF(r);
            n++;
        }
        Py_XDECREF(ts_obj);
        b += 12 + len;
    }
    PyBuffer_Release(&v);
    return PyLong_FromSsize_t(n);
}
static PyMethodDef M[] = {{"decode", decode, METH_VARARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef D = {PyModuleDef_HEAD_INIT, "_bare_decode", NULL, -1, M};
PyMODINIT_FUNC PyInit__bare_decode(void) { return PyModule_Create(&D); }
"""


def build(tmp: str) -> Callable:
    src = os.path.join(tmp, "bare.c")
    with open(src, "w") as f:
        f.write(_C)
    so = os.path.join(tmp, "_bare_decode" + sysconfig.get_config_var("EXT_SUFFIX"))
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-O3", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}",
                    src, "-o", so], check=True)
    spec = importlib.util.spec_from_file_location("_bare_decode", so)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.decode


def best_rate(fn: Callable[[memoryview, list], object], chunks: list[memoryview], n: int,
              rounds: int) -> tuple[float, float]:
    """Best (wall-clock, CPU-time) records/s over ``rounds`` runs. Each run decodes the
    chunks (8,000 records each, what one poll returns with the default fetch size) one after
    the other, dropping each list before the next as a poll loop does: the records then stay
    in cache and freed memory is reused, which matters more than any parsing detail."""
    best = best_cpu = float("inf")
    for _ in range(rounds):
        got = 0
        gc.disable()  # as Consumer.poll does while decoding
        t = time.perf_counter()
        c = time.process_time()
        for chunk in chunks:
            out: list = []
            fn(chunk, out)
            got += len(out)
            del out
        dt = time.perf_counter() - t
        dc = time.process_time() - c
        gc.enable()
        assert got == n, (got, n)
        best = min(best, dt)
        best_cpu = min(best_cpu, dc)
    return n / best, n / max(best_cpu, 1e-9)


def keep_best(rates: dict[str, tuple[float, float]], key: str, r: tuple[float, float]) -> None:
    old = rates.get(key, (0.0, 0.0))
    rates[key] = (max(old[0], r[0]), max(old[1], r[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    import logmq
    from logmq.codec import _native
    from logmq.codec import records as R
    from logmq.types import Record

    n = args.records - args.records % 1000
    recs = [(b"key-%d" % (i % 1000), b"x" * 100) for i in range(1000)]
    buf = memoryview(b"".join(R.encode_batch(recs, base_offset=i, timestamp=1)
                              for i in range(0, n, 1000)))
    tmp = tempfile.mkdtemp(prefix="logmq-bare-")
    try:
        bare = build(tmp)
        ref: list = []
        bare(buf, ref, Record, "t", 0)
        nat: list = []
        _native.bind(R)
        saved = R._decode_payload, R._records_payload

        def with_core(native: bool) -> Callable[[memoryview, list], object]:
            def run(data: memoryview, out: list) -> object:
                if native:
                    R._decode_payload, R._records_payload = _native.decode_payload, R._records_view
                else:
                    R._decode_payload = R._py_decode_payload
                    R._records_payload = R._py_records_payload
                try:
                    return R.decode_records_into(data, out, record_cls=Record, topic="t",
                                                 partition=0)
                finally:
                    R._decode_payload, R._records_payload = saved
            return run

        with_core(True)(buf, nat)
        step = len(buf) // (n // 1000) * 8  # 8 batches: what one poll returns here
        chunks = [buf[i : i + step] for i in range(0, len(buf), step)]
        assert nat == ref, "bare loop and native decode disagree"
        rates: dict[str, tuple[float, float]] = {}
        runs: dict[str, Callable[[memoryview, list], object]] = {
            "bare": lambda d, o: bare(d, o, Record, "t", 0),
            "native": with_core(True), "pure": with_core(False)}
        for order in (("bare", "native", "pure"), ("native", "bare", "pure"),
                      ("pure", "bare", "native")):  # interleaved, each first once
            for name in order:
                reps = max(1, args.rounds // 2) if name == "pure" else args.rounds
                keep_best(rates, name, best_rate(runs[name], chunks, n, reps))
        rates = {k: rates[k] for k in ("bare", "native", "pure")}
        with logmq.open(os.path.join(tmp, "d"), fsync="never", cleaner=False) as log:
            log.create_topic("t", partitions=1)
            log.append_batches(("t", 0), bytes(buf))
            for _ in range(args.rounds):
                c = log.consumer("t", auto_offset_reset="earliest", max_poll_records=50_000)
                got = 0
                t = time.perf_counter()
                t_cpu = time.process_time()
                while got < n:
                    got += len(c.poll(timeout=1))
                keep_best(rates, f"poll ({R.implementation})",
                          (n / (time.perf_counter() - t), n / (time.process_time() - t_cpu)))
                c.close()
        print(f"{n:,} records x 100 B in 1,000-record batches, load {os.getloadavg()[0]:.1f}, "
              f"python {sys.version.split()[0]}")
        bw, bc = rates["bare"]
        print(f"{'':<22} {'rec/s (wall)':>13} {'x bare':>7} {'rec/CPU-s':>13} {'x bare':>7}")
        for k, (w, c) in rates.items():
            print(f"{k:<22} {w:>13,.0f} {w / bw:>6.2f}x {c:>13,.0f} {c / bc:>6.2f}x")
        print(f"native / pure decode: {rates['native'][0] / rates['pure'][0]:.2f}x wall, "
              f"{rates['native'][1] / rates['pure'][1]:.2f}x CPU")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
