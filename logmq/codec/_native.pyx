# cython: language_level=3, boundscheck=True, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Compiled per-record loops of the codec (decode, encode, validator walk, key bucketing).

Every function here has a pure-Python reference in ``logmq.codec.records`` / ``keys`` that
defines its behaviour, including the text of each error: the differential tests hold the two
to the same output for any bytes. Input is untrusted: every read is checked against the end of
its buffer. Where the pure code relies on Python's unbounded integers (varints whose value
does not fit 64 bits, offsets that overflow) or duck typing (exotic record objects), the
function hands the whole call to the pure reference instead of guessing, so such input costs
time, never a different answer.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.list cimport PyList_Append, PyList_GET_ITEM, PyList_GET_SIZE, PyList_New
from cpython.long cimport PyLong_FromLongLong
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint8_t, uint64_t

#: The pure reference functions the compiled ones hand rare inputs to (ints beyond int64...).
#: The pure modules register them here when they bind the compiled core, so this module
#: imports none of them (no import cycle).
_fallbacks = {}
from libc.string cimport memcpy

from crc32c import crc32c as _crc32c
from xxhash import xxh3_64_intdigest as _xxh3

from logmq.errors import CorruptRecordError

cdef extern from *:
    """
    #include <Python.h>
    #include <stdint.h>
    static int lm_add_ovf(int64_t a, int64_t b, int64_t *r) {
        return __builtin_add_overflow(a, b, r);
    }
    static int lm_sub_ovf(int64_t a, int64_t b, int64_t *r) {
        return __builtin_sub_overflow(a, b, r);
    }
    /* A tuple subclass whose instances are laid out exactly as tuples (NamedTuple: no
       __dict__, GenericAlloc): tuple.__new__(cls, items) can then be done by allocating it
       and filling the slots, which is all tuple_subtype_new does after building a temp. */
    static int lm_plain_tuple_type(PyObject *cls) {
        PyTypeObject *t;
        if (!PyType_Check(cls)) return 0;
        t = (PyTypeObject *)cls;
        return PyType_IsSubtype(t, &PyTuple_Type) && t->tp_basicsize == PyTuple_Type.tp_basicsize
            && t->tp_itemsize == PyTuple_Type.tp_itemsize && t->tp_dictoffset == 0
            && t->tp_alloc == PyType_GenericAlloc && PyType_IS_GC(t);
    }
    static PyObject *lm_rec7(PyObject *cls, PyObject *a, PyObject *b, PyObject *c,
                             PyObject *d, PyObject *e, PyObject *f, PyObject *g) {
        PyTypeObject *t = (PyTypeObject *)cls;
        PyObject *r = t->tp_alloc(t, 7);
        if (r == NULL) return NULL;
        Py_INCREF(a); PyTuple_SET_ITEM(r, 0, a);
        Py_INCREF(b); PyTuple_SET_ITEM(r, 1, b);
        Py_INCREF(c); PyTuple_SET_ITEM(r, 2, c);
        Py_INCREF(d); PyTuple_SET_ITEM(r, 3, d);
        Py_INCREF(e); PyTuple_SET_ITEM(r, 4, e);
        Py_INCREF(f); PyTuple_SET_ITEM(r, 5, f);
        Py_INCREF(g); PyTuple_SET_ITEM(r, 6, g);
        return r;
    }
    """
    bint lm_add_ovf(int64_t a, int64_t b, int64_t *r) nogil
    bint lm_sub_ovf(int64_t a, int64_t b, int64_t *r) nogil
    bint lm_plain_tuple_type(object cls)
    object lm_rec7(object cls, object a, object b, object c, object d, object e, object f,
                   object g)

# decode outcomes (negative = error, mapped to the pure code's message)
cdef enum:
    OK = 0
    E_PAST = -1        # an index past the end (IndexError in the pure loop)
    E_VEND = -2        # decode_varint ran out of bytes
    E_VLONG = -3       # decode_varint: more than 10 bytes
    E_LEN = -4
    E_NEGKEY = -5
    E_NEGVAL = -6
    E_HC = -7
    E_HKL = -8
    E_UTF8 = -9
    E_FIELDS = -10
    E_TRAIL = -11
    E_PURE = -20       # outside what C integers represent: let the pure code answer
    E_PYERR = -21      # a Python exception is set

cdef dict _MESSAGES = {
    E_PAST: "record runs past the end of the batch",
    E_VEND: "varint runs past the end of the buffer",
    E_VLONG: "varint longer than 10 bytes",
    E_LEN: "record length runs past the end of the batch",
    E_NEGKEY: "negative key length",
    E_NEGVAL: "negative value length",
    E_HC: "bad header count",
    E_HKL: "bad header key length",
    E_UTF8: "header key is not UTF-8",
    E_FIELDS: "record fields do not add up to its length",
    E_TRAIL: "trailing bytes after the last record",
}

# the pure module, set by bind(): the reference every fallback goes to
cdef object _pure = None


def bind(module):
    """Remember the pure reference module (``logmq.codec.records``) for fallbacks."""
    global _pure
    _pure = module


cdef object _ref():
    """The pure reference module. Importing this extension imports the ``logmq.codec``
    package first, whose ``records`` module binds itself here, so it is always set; not
    importing it back keeps the compiled core free of an import cycle."""
    if _pure is None:
        raise RuntimeError("logmq.codec.records did not bind the compiled core")
    return _pure


cdef inline int _dv(const uint8_t *d, Py_ssize_t n, Py_ssize_t *pp, int64_t *out) noexcept nogil:
    """decode_varint of the pure module, for values that fit 64 bits."""
    cdef Py_ssize_t p = pp[0]
    cdef uint64_t result = 0
    cdef unsigned int shift = 0
    cdef uint8_t b
    while True:
        if p >= n:
            return E_VEND
        b = d[p]
        p += 1
        if shift == 63:
            if b & 0x80:
                return E_VLONG
            if b & 0x7E:
                return E_PURE  # the pure code's result exceeds 64 bits
            result |= (<uint64_t>(b & 1)) << 63
            break
        result |= (<uint64_t>(b & 0x7F)) << shift
        if not (b & 0x80):
            break
        shift += 7
    pp[0] = p
    out[0] = <int64_t>((result >> 1) ^ (~(result & 1) + 1))
    return OK


cdef inline int _rv(const uint8_t *d, Py_ssize_t n, Py_ssize_t *pp, int64_t *out) noexcept nogil:
    """The pure loop's inline varint: one and two bytes read by index, longer ones by _dv."""
    cdef Py_ssize_t p = pp[0]
    cdef unsigned int b, b2, z
    if p >= n:
        return E_PAST
    b = d[p]
    if b < 0x80:
        out[0] = <int64_t>(b >> 1) ^ -<int64_t>(b & 1)
        pp[0] = p + 1
        return OK
    if p + 1 >= n:
        return E_PAST
    b2 = d[p + 1]
    if b2 < 0x80:
        z = (b & 0x7F) | (b2 << 7)
        out[0] = <int64_t>(z >> 1) ^ -<int64_t>(z & 1)
        pp[0] = p + 2
        return OK
    return _dv(d, n, pp, out)


cdef inline Py_ssize_t _skip(Py_ssize_t p, int64_t ln, Py_ssize_t n) noexcept nogil:
    """``p + ln`` as the pure code computes it, saturated just past the end: any position
    beyond ``n`` behaves the same in every later check (it fails each read and comparison)."""
    if ln > n - p:
        return n + 1
    return p + <Py_ssize_t>ln


cdef inline object _slice(const uint8_t *d, Py_ssize_t n, Py_ssize_t p, int64_t ln):
    """``data[p:p+ln]`` with Python's clamping."""
    if p >= n:
        return b""
    if ln > n - p:
        ln = n - p
    return PyBytes_FromStringAndSize(<const char *>d + p, <Py_ssize_t>ln)


cdef inline int _c_int64(object o, int64_t *out):
    """An int that fits int64 (0) or anything else (1: the caller defers to the pure code)."""
    if type(o) is not int and type(o) is not bool:
        return 1
    try:
        out[0] = o
    except OverflowError:
        return 1
    return 0


cdef int _decode(const uint8_t *d, Py_ssize_t n, int64_t base, int64_t base_ts, int64_t count,
                 object out, int64_t min_offset, int64_t limit, object make, object cls,
                 object topic, object partition, Py_ssize_t *added_out) except E_PYERR:
    cdef Py_ssize_t p = 0, end, added = 0
    cdef int64_t parsed = 0, j, length, tsd, od, kl, vl, hc, hkl, hvl, off, ts
    cdef int64_t last_ts = 0
    cdef int r
    cdef object key, value, headers, hk, hv, item, ts_obj = None, off_obj
    cdef bint exact_list = type(out) is list
    cdef bint fast_cls = cls is not None and lm_plain_tuple_type(cls)
    cdef object tuple_new = tuple.__new__
    while parsed < count:
        if added >= limit:
            break
        r = _rv(d, n, &p, &length)
        if r:
            return r
        if length < 4 or length > n - p:
            return E_LEN
        end = p + <Py_ssize_t>length
        p += 1  # attributes
        r = _rv(d, n, &p, &tsd)
        if r:
            return r
        r = _rv(d, n, &p, &od)
        if r:
            return r
        r = _rv(d, n, &p, &kl)
        if r:
            return r
        if kl < 0:
            if kl != -1:
                return E_NEGKEY
            key = None
        else:
            key = _slice(d, n, p, kl)
            p = _skip(p, kl, n)
        r = _rv(d, n, &p, &vl)
        if r:
            return r
        if vl < 0:
            if vl != -1:
                return E_NEGVAL
            value = None
        else:
            value = _slice(d, n, p, vl)
            p = _skip(p, vl, n)
        if p >= n:
            return E_PAST
        headers = PyList_New(0)
        if d[p] == 0:
            p += 1
        else:
            r = _dv(d, n, &p, &hc)
            if r:
                return r
            if hc < 0 or hc > length:
                return E_HC
            for j in range(hc):
                r = _dv(d, n, &p, &hkl)
                if r:
                    return r
                if hkl < 0 or hkl > end - p:
                    return E_HKL
                try:
                    hk = PyUnicode_DecodeUTF8(<char *>d + p, <Py_ssize_t>hkl, NULL)
                except UnicodeDecodeError:
                    return E_UTF8
                p += <Py_ssize_t>hkl
                r = _dv(d, n, &p, &hvl)
                if r:
                    return r
                if hvl < 0:
                    hv = None
                else:
                    hv = _slice(d, n, p, hvl)
                    p = _skip(p, hvl, n)
                PyList_Append(headers, (hk, hv))
        if p != end:
            return E_FIELDS
        parsed += 1
        if lm_add_ovf(base, od, &off):
            return E_PURE
        if off < min_offset:
            continue
        if lm_add_ovf(base_ts, tsd, &ts):
            return E_PURE
        if ts_obj is None or ts != last_ts:
            ts_obj = PyLong_FromLongLong(ts)
            last_ts = ts
        off_obj = PyLong_FromLongLong(off)
        if fast_cls:
            item = lm_rec7(cls, topic, partition, off_obj, ts_obj, key, value, headers)
        elif cls is not None:
            item = tuple_new(cls, (topic, partition, off_obj, ts_obj, key, value, headers))
        elif make is None:
            item = (off_obj, ts_obj, key, value, headers)
        else:
            try:
                item = make(off_obj, ts_obj, key, value, headers)
            except IndexError:  # the pure loop turns these into corruption errors too
                return E_PAST
            except UnicodeDecodeError:
                return E_UTF8
        if exact_list:
            PyList_Append(out, item)
        else:
            out.append(item)
        added += 1
        added_out[0] = added
    added_out[0] = added
    if parsed == count and p != n:
        return E_TRAIL
    return OK


def decode_payload(data, h, out, min_offset, max_records, make, cls=None, topic=None,
                   partition=None):
    """Native ``records._decode_payload``: same arguments, result, side effects and errors."""
    cdef Py_buffer view
    cdef int64_t base, base_ts, count, mino, limit
    cdef Py_ssize_t added = 0, start
    cdef int r
    base = h.base_offset
    base_ts = h.base_timestamp
    count = h.record_count
    if _c_int64(min_offset, &mino):
        return _ref()._py_decode_payload(bytes(data), h, out, min_offset, max_records, make,
                                        cls, topic, partition)
    if max_records is None:
        limit = count
    elif _c_int64(max_records, &limit):
        return _ref()._py_decode_payload(bytes(data), h, out, min_offset, max_records, make,
                                        cls, topic, partition)
    start = len(out)
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        r = _decode(<const uint8_t *>view.buf, view.len, base, base_ts, count, out, mino,
                    limit, make, cls, topic, partition, &added)
    finally:
        PyBuffer_Release(&view)
    if r == OK:
        return added
    if r == E_PURE:
        del out[start:]
        return _ref()._py_decode_payload(bytes(data), h, out, min_offset, max_records, make,
                                        cls, topic, partition)
    raise CorruptRecordError(_MESSAGES[r])


def decode_varint(buf, pos):
    """Native ``records.decode_varint``."""
    cdef Py_buffer view
    cdef Py_ssize_t p
    cdef int64_t v
    cdef int r
    if type(pos) is not int or pos < 0:
        return _ref()._py_decode_varint(buf, pos)
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        if pos > view.len:
            r = E_VEND
        else:
            p = pos
            r = _dv(<const uint8_t *>view.buf, view.len, &p, &v)
    finally:
        PyBuffer_Release(&view)
    if r == OK:
        return v, p
    if r == E_PURE:
        return _ref()._py_decode_varint(buf, pos)
    raise CorruptRecordError(_MESSAGES[r])


# ------------------------------------------------------------------------------ encode
cdef inline Py_ssize_t _zz_len(int64_t v) noexcept nogil:
    cdef uint64_t z = (<uint64_t>v << 1) ^ <uint64_t>(v >> 63)
    cdef Py_ssize_t k = 1
    while z >= 0x80:
        z >>= 7
        k += 1
    return k


cdef inline char *_zz_put(char *w, int64_t v) noexcept nogil:
    cdef uint64_t z = (<uint64_t>v << 1) ^ <uint64_t>(v >> 63)
    while z >= 0x80:
        w[0] = <char>((z & 0x7F) | 0x80)
        w += 1
        z >>= 7
    w[0] = <char>z
    return w + 1


def encode_varint(n):
    """Native ``records.encode_varint``."""
    cdef int64_t v
    cdef char buf[10]
    cdef char *w
    if _c_int64(n, &v):
        return _ref()._py_encode_varint(n)
    w = _zz_put(buf, v)
    return PyBytes_FromStringAndSize(buf, w - buf)


cdef inline int _blob_len(object o, Py_ssize_t *ln) except -2:
    """Length of a key/value the native encoder copies (bytes, bytearray), -1 for None."""
    if o is None:
        ln[0] = -1
        return 0
    if type(o) is bytes or type(o) is bytearray:
        ln[0] = len(o)
        return 0
    return 1


cdef inline char *_blob_put(char *w, object o) except NULL:
    cdef Py_ssize_t ln
    if o is None:
        w[0] = 1
        return w + 1
    ln = len(o)
    w = _zz_put(w, ln)
    if ln:
        if type(o) is bytes:
            memcpy(w, PyBytes_AS_STRING(o), ln)
        else:
            memcpy(w, <char *>(<bytearray>o), ln)
    return w + ln


cdef inline object _headers_of(object rec, Py_ssize_t rn):
    """The record's headers list/tuple if it has any, None if none; raises TypeError for
    shapes only the pure encoder's duck typing knows."""
    if rn < 3:
        return None
    hs = rec[2]
    if hs is None:
        return None
    if type(hs) is not list and type(hs) is not tuple:
        raise TypeError
    return hs if len(hs) else None


def encode_payload(records, timestamps, base_ts, offset_deltas):
    """Native ``records._encode_payload``; byte-identical output."""
    try:
        return _encode(records, timestamps, base_ts, offset_deltas, 0)
    except (TypeError, ValueError, OverflowError, UnicodeError):
        return _ref()._py_encode_payload(records, timestamps, base_ts, offset_deltas)


cdef inline void _be(char *w, uint64_t v, int nbytes) noexcept nogil:
    cdef int i
    for i in range(nbytes - 1, -1, -1):
        w[i] = <char>(v & 0xFF)
        v >>= 8


def encode_whole(records, timestamps, base_ts, offset_deltas, base_offset, leader_epoch,
                 bytes tail):
    """Native ``records._encode_whole``: the 61-byte header and the records in one buffer."""
    cdef int64_t bo, le
    cdef object out
    cdef char *w
    cdef Py_ssize_t size
    if _c_int64(base_offset, &bo) or _c_int64(leader_epoch, &le) \
            or not -2**31 <= le < 2**31 or len(tail) != 40:
        return _ref()._py_encode_whole(records, timestamps, base_ts, offset_deltas,
                                      base_offset, leader_epoch, tail)
    try:
        out = _encode(records, timestamps, base_ts, offset_deltas, 61)
    except (TypeError, ValueError, OverflowError, UnicodeError):
        return _ref()._py_encode_whole(records, timestamps, base_ts, offset_deltas,
                                      base_offset, leader_epoch, tail)
    size = len(out)
    if size - 12 > 2**31 - 1:  # batchLength would not fit: let struct raise as the pure does
        return _ref()._py_encode_whole(records, timestamps, base_ts, offset_deltas,
                                      base_offset, leader_epoch, tail)
    w = PyBytes_AS_STRING(out)
    _be(w, <uint64_t>bo, 8)
    _be(w + 8, <uint64_t>(size - 12), 4)
    _be(w + 12, <uint64_t>le, 4)
    w[16] = 2
    memcpy(w + 21, PyBytes_AS_STRING(tail), 40)
    crc = _crc32c(memoryview(out)[21:])  # out is ours alone until returned
    _be(w + 17, <uint64_t>crc, 4)
    return out


cdef object _encode(object records, object timestamps, object base_ts_o, object offset_deltas,
                    Py_ssize_t reserve):
    cdef Py_ssize_t n, i, kl, vl, hn, hkl, hvl, body, total = 0, rn, j
    cdef int64_t base_ts = 0, ts, d, od
    cdef object rec, k, v, hs, hkey, hval, out, keyb
    cdef char *w
    cdef char *w0
    if type(records) is not list and type(records) is not tuple:
        raise TypeError
    if timestamps is not None:
        if (type(timestamps) is not list and type(timestamps) is not tuple) \
                or _c_int64(base_ts_o, &base_ts):
            raise TypeError
    if offset_deltas is not None and type(offset_deltas) is not list \
            and type(offset_deltas) is not tuple:
        raise TypeError
    n = len(records)
    if (timestamps is not None and len(timestamps) != n) or \
            (offset_deltas is not None and len(offset_deltas) != n):
        raise ValueError
    hkeys = []  # encoded header keys, in order, for the second pass
    # pass 1: types and sizes
    for i in range(n):
        rec = records[i]
        if type(rec) is not tuple and type(rec) is not list:
            raise TypeError
        rn = len(rec)
        if rn < 2:
            raise TypeError
        if _blob_len(rec[0], &kl) or _blob_len(rec[1], &vl):
            raise TypeError
        body = 1 + (kl if kl > 0 else 0) + (vl if vl > 0 else 0)
        body += 1 if kl < 0 else _zz_len(kl)
        body += 1 if vl < 0 else _zz_len(vl)
        if offset_deltas is None:
            body += _zz_len(i)
        else:
            if _c_int64(offset_deltas[i], &od):
                raise TypeError
            body += _zz_len(od)
        if timestamps is None:
            body += 1
        else:
            if _c_int64(timestamps[i], &ts) or lm_sub_ovf(ts, base_ts, &d):
                raise TypeError
            body += _zz_len(d)
        hs = _headers_of(rec, rn)
        if hs is None:
            body += 1
        else:
            hn = len(hs)
            body += _zz_len(hn)
            for j in range(hn):
                h = hs[j]
                if (type(h) is not tuple and type(h) is not list) or len(h) != 2:
                    raise TypeError
                hkey = h[0]
                if type(hkey) is str:
                    keyb = (<str>hkey).encode()
                elif type(hkey) is bytes:
                    keyb = hkey
                else:
                    raise TypeError
                hkeys.append(keyb)
                hkl = len(keyb)
                if _blob_len(h[1], &hvl):
                    raise TypeError
                body += _zz_len(hkl) + hkl + (1 if hvl < 0 else _zz_len(hvl) + hvl)
        total += _zz_len(body) + body
    out = PyBytes_FromStringAndSize(NULL, total + reserve)
    w0 = w = PyBytes_AS_STRING(out) + reserve
    cdef Py_ssize_t hk_i = 0
    # pass 2: the same walk, writing
    for i in range(n):
        rec = records[i]
        rn = len(rec)
        k = rec[0]
        v = rec[1]
        kl = -1 if k is None else len(k)
        vl = -1 if v is None else len(v)
        od = i if offset_deltas is None else offset_deltas[i]
        d = 0 if timestamps is None else <int64_t>timestamps[i] - base_ts
        hs = _headers_of(rec, rn)
        body = 1 + (kl if kl > 0 else 0) + (vl if vl > 0 else 0)
        body += (1 if kl < 0 else _zz_len(kl)) + (1 if vl < 0 else _zz_len(vl))
        body += _zz_len(od) + _zz_len(d)
        if hs is None:
            body += 1
        else:
            hn = len(hs)
            body += _zz_len(hn)
            for j in range(hn):
                hkl = len(<bytes>hkeys[hk_i + j])
                hval = hs[j][1]
                body += _zz_len(hkl) + hkl + (1 if hval is None else _zz_len(len(hval)) + len(hval))
        if _zz_len(body) + body > total - (w - w0):  # only if an object changed under us
            raise ValueError
        w = _zz_put(w, body)
        w[0] = 0
        w += 1
        w = _zz_put(w, d)
        w = _zz_put(w, od)
        w = _blob_put(w, k)
        w = _blob_put(w, v)
        if hs is None:
            w[0] = 0
            w += 1
        else:
            w = _zz_put(w, len(hs))
            for j in range(len(hs)):
                keyb = hkeys[hk_i]
                hk_i += 1
                w = _blob_put(w, keyb)
                w = _blob_put(w, hs[j][1])
    if w - w0 != total:  # a record object changed under us between the passes
        raise ValueError
    return out


include "_native_walk.pxi"
include "_native_bulk.pxi"
