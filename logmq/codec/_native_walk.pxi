# Included by _native.pyx (one extension module): the validator walk and key bucketing.
# References: logmq/codec/walk.py and logmq/codec/keys.py.

# ------------------------------------------------------------------------ validator walk
cdef enum:
    W_OK = 0
    W_PAST = 1
    W_LONG = 2
    W_RANGE = 3


cdef inline int _wv(const uint8_t *d, Py_ssize_t end, Py_ssize_t *pp, bint wide,
                    int64_t *out) noexcept nogil:
    """records._walk_varint: returns W_OK or the kind of error (at the varint's start)."""
    cdef Py_ssize_t p = pp[0], start = pp[0]
    cdef Py_ssize_t most = 10 if wide else 5
    cdef uint64_t result = 0
    cdef unsigned int shift = 0
    cdef bint over = False
    cdef uint8_t b
    while True:
        if p >= end:
            return W_PAST
        if p - start >= most:
            return W_LONG
        b = d[p]
        p += 1
        if shift == 63:
            if b & 0x7E:
                over = True
            result |= (<uint64_t>(b & 1)) << 63
        else:
            result |= (<uint64_t>(b & 0x7F)) << shift
        shift += 7
        if not (b & 0x80):
            break
    if over or (not wide and (result >> 32)):
        return W_RANGE
    pp[0] = p
    out[0] = <int64_t>((result >> 1) ^ (~(result & 1) + 1))
    return W_OK


cdef object _wv_error(int code, int64_t i, str what, Py_ssize_t pos, bint wide):
    if code == W_PAST:
        msg = f"record {i}: {what} runs past the end of the record"
    elif code == W_LONG:
        msg = f"record {i}: {what} varint is longer than {10 if wide else 5} bytes"
    else:
        msg = f"record {i}: {what} is out of range"
    return CorruptRecordError(msg, position=pos)


cdef inline Py_ssize_t _wlen(const uint8_t *d, Py_ssize_t p, Py_ssize_t end, str what,
                             int64_t i) except -1:
    """records._walk_length: a null (-1) or in-record length; returns the position after."""
    cdef Py_ssize_t start = p
    cdef int64_t ln
    cdef int r = _wv(d, end, &p, False, &ln)
    if r:
        raise _wv_error(r, i, what + " length", start, False)
    if ln < -1:
        raise CorruptRecordError(f"record {i}: negative {what} length", position=start)
    if ln > end - p:
        raise CorruptRecordError(f"record {i}: {what} runs past the end of the record",
                                 position=start)
    return p + (<Py_ssize_t>ln if ln > 0 else 0)


def walk_records(data, base_timestamp, record_count):
    """Native ``records.walk_records`` (the produce validator's per-record pass)."""
    cdef Py_buffer view
    cdef int64_t base_ts, count
    if _c_int64(base_timestamp, &base_ts) or _c_int64(record_count, &count):
        return _fallbacks["walk_records"](data, base_timestamp, record_count)
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        return _walk(<const uint8_t *>view.buf, view.len, base_ts, count)
    finally:
        PyBuffer_Release(&view)


cdef object _walk(const uint8_t *d, Py_ssize_t n, int64_t base_ts, int64_t count):
    cdef Py_ssize_t p = 0, start, end, fld
    cdef int64_t i, j, length, tsd, ts, od, hc, hkl, lo = -1, hi = -1
    cdef int r
    if count < 0:
        raise CorruptRecordError(f"negative record count {count}", position=0)
    for i in range(count):
        start = p
        r = _wv(d, n, &p, False, &length)
        if r:
            raise _wv_error(r, i, "length", start, False)
        if length < 6 or length > n - p:
            raise CorruptRecordError(f"record {i}: length {length} does not fit the "
                                     f"{n - p} bytes left", position=start)
        end = p + <Py_ssize_t>length
        p += 1
        fld = p
        r = _wv(d, end, &p, True, &tsd)
        if r:
            raise _wv_error(r, i, "timestamp delta", fld, True)
        if lm_add_ovf(base_ts, tsd, &ts):
            raise CorruptRecordError(f"record {i}: timestamp out of range", position=fld)
        if i == 0:
            lo = hi = ts
        elif ts < lo:
            lo = ts
        elif ts > hi:
            hi = ts
        fld = p
        r = _wv(d, end, &p, False, &od)
        if r:
            raise _wv_error(r, i, "offset delta", fld, False)
        if od != i:
            raise CorruptRecordError(f"record {i}: offset delta {od}, expected {i}",
                                     position=fld)
        p = _wlen(d, p, end, "key", i)
        p = _wlen(d, p, end, "value", i)
        fld = p
        r = _wv(d, end, &p, False, &hc)
        if r:
            raise _wv_error(r, i, "header count", fld, False)
        if hc < 0 or hc > end - p:
            raise CorruptRecordError(f"record {i}: bad header count {hc}", position=fld)
        for j in range(hc):
            fld = p
            r = _wv(d, end, &p, False, &hkl)
            if r:
                raise _wv_error(r, i, "header key length", fld, False)
            if hkl < 0 or hkl > end - p:
                raise CorruptRecordError(f"record {i}: bad header key length", position=fld)
            try:
                PyUnicode_DecodeUTF8(<char *>d + p, <Py_ssize_t>hkl, NULL)
            except UnicodeDecodeError:
                raise CorruptRecordError(f"record {i}: header key is not UTF-8",
                                         position=p) from None
            p += <Py_ssize_t>hkl
            p = _wlen(d, p, end, "header value", i)
        if p != end:
            raise CorruptRecordError(f"record {i}: fields end before the record does",
                                     position=p)
    if p != n:
        raise CorruptRecordError("trailing bytes after the last record", position=p)
    return count, lo, hi


# ------------------------------------------------------------------------ key bucketing


def bucket_keys(records, num_partitions):
    """Native ``keys.bucket_keys``: exact ``bytes`` keys and values in tuples/lists; any
    other shape is answered by the pure function (it decides None or a bucketing)."""
    cdef Py_ssize_t i
    cdef uint64_t np
    cdef dict cache = {}, buckets = {}
    cdef object rec, k, v, b, pobj, hash_ = _xxh3
    cdef PyObject *found
    if type(records) is not list or type(num_partitions) is not int or num_partitions <= 0:
        return _pure_bucket(records, num_partitions)
    np = num_partitions
    i = 0
    while i < PyList_GET_SIZE(records):  # re-read: a finalizer run by GC may shrink it
        rec = (<list>records)[i]
        i += 1
        if type(rec) is tuple:
            if PyTuple_GET_SIZE(rec) != 2:
                return None
            k = <object>PyTuple_GET_ITEM(rec, 0)
            v = <object>PyTuple_GET_ITEM(rec, 1)
        elif type(rec) is list:
            if PyList_GET_SIZE(rec) != 2:
                return None
            k = <object>PyList_GET_ITEM(rec, 0)
            v = <object>PyList_GET_ITEM(rec, 1)
        else:
            return _pure_bucket(records, num_partitions)
        if type(v) is not bytes:
            return None
        if type(k) is not bytes:
            return _pure_bucket(records, num_partitions)
        found = PyDict_GetItem(cache, k)
        if found is NULL:
            pobj = PyLong_FromLongLong(<int64_t>((<uint64_t>hash_(k)) % np))
            found = PyDict_GetItem(buckets, pobj)
            if found is NULL:
                b = []
                PyDict_SetItem(buckets, pobj, b)
            else:
                b = <object>found
            PyDict_SetItem(cache, k, b)
        else:
            b = <object>found
        PyList_Append(b, rec)
    return buckets


def _pure_bucket(records, num_partitions):
    return _fallbacks["bucket_keys"](records, num_partitions)


# ------------------------------------------------------------- the produce validator's walk
# Same contract, results and error texts as ``walk_records`` in logmq/codec/validate.py (the
# wire surface's validator, the reference): its ``_walk`` can be rebound to this one.
cdef enum:
    P_OK = 0
    P_INDEX = 1      # an index past the end of the data (IndexError in the reference)
    P_VEND = 2       # "varint runs past the end of the record"
    P_VLONG = 3      # "varint too long"
    P_RANGE32 = 4    # "varint out of the 32-bit range"
    P_RANGE64 = 5    # "varlong out of the 64-bit range"

cdef dict _P_MESSAGES = {
    P_INDEX: "record runs past the end of the batch",
    P_VEND: "varint runs past the end of the record",
    P_VLONG: "varint too long",
    P_RANGE32: "varint out of the 32-bit range",
    P_RANGE64: "varlong out of the 64-bit range",
}


cdef inline int _pv(const uint8_t *d, Py_ssize_t p, Py_ssize_t end, bint wide,
                    int64_t *out, Py_ssize_t *np) noexcept nogil:
    """validate._varint: at most 5 bytes (10 if ``wide``), in the 32-bit (64-bit) range."""
    cdef int limit = 10 if wide else 5
    cdef int i
    cdef uint64_t result = 0
    cdef bint over = False
    cdef uint8_t b
    for i in range(limit):
        if p + i >= end:
            return P_VEND
        b = d[p + i]
        if i == 9:
            if b & 0x7E:
                over = True
            result |= (<uint64_t>(b & 1)) << 63
        else:
            result |= (<uint64_t>(b & 0x7F)) << (7 * i)
        if not (b & 0x80):
            if over:
                return P_RANGE64
            if not wide and (result >> 32):
                return P_RANGE32
            out[0] = <int64_t>((result >> 1) ^ (~(result & 1) + 1))
            np[0] = p + i + 1
            return P_OK
    return P_VLONG


cdef inline int _pf(const uint8_t *d, Py_ssize_t n, Py_ssize_t end, Py_ssize_t *pp, bint wide,
                    int64_t *out) noexcept nogil:
    """The reference's inline read: one or two bytes by index (bounded by the data), longer
    varints by _pv (bounded by ``end``)."""
    cdef Py_ssize_t p = pp[0]
    cdef unsigned int b, b2, z
    if p >= n:
        return P_INDEX
    b = d[p]
    if b < 0x80:
        out[0] = <int64_t>(b >> 1) ^ -<int64_t>(b & 1)
        pp[0] = p + 1
        return P_OK
    if p + 1 >= n:
        return P_INDEX
    b2 = d[p + 1]
    if b2 < 0x80:
        z = (b & 0x7F) | (b2 << 7)
        out[0] = <int64_t>(z >> 1) ^ -<int64_t>(z & 1)
        pp[0] = p + 2
        return P_OK
    return _pv(d, p, end, wide, out, pp)


def walk_produce(data, count, contiguous, last_delta):
    """Native ``validate.walk_records(data, count, contiguous, last_delta)``:
    ``(records walked, min and max timestamp delta, whether a key is null)``."""
    cdef Py_buffer view
    cdef int64_t c, ld
    if _c_int64(count, &c) or _c_int64(last_delta, &ld):
        return _fallbacks["walk_produce"](data, count, contiguous, last_delta)
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        return _walk_produce(<const uint8_t *>view.buf, view.len, c, bool(contiguous), ld)
    finally:
        PyBuffer_Release(&view)


cdef object _invalid(str msg):
    import logmq.errors as errors

    return getattr(errors, "InvalidRecordError", CorruptRecordError)(msg)


cdef object _walk_produce(const uint8_t *d, Py_ssize_t n, int64_t count, bint contiguous,
                          int64_t last_delta):
    cdef Py_ssize_t p = 0, end
    cdef int64_t i, j, length, tsd, od, kl, vl, hc, hkl, hvl, prev = -1, walked = 0
    cdef int64_t min_ts = INT64_MAX, max_ts = INT64_MIN
    cdef bint null_key = False
    cdef int r = P_OK
    i = 0
    while i < count:
        if p >= n:
            raise CorruptRecordError(f"batch ends after {i} of its {count} records")
        r = _pf(d, n, n, &p, False, &length)
        if r:
            break
        if length < 6 or length > n - p:
            raise CorruptRecordError(f"record {i}: length {length} leaves the batch")
        end = p + <Py_ssize_t>length
        p += 1
        r = _pf(d, n, end, &p, True, &tsd)
        if r:
            break
        r = _pf(d, n, end, &p, False, &od)
        if r:
            break
        if contiguous:
            if od != i:
                raise _invalid(f"record {i} has offset delta {od}: deltas must run "
                               f"0..{count - 1}")
        elif od <= prev or od > last_delta:
            raise _invalid(f"record {i}: offset delta {od} out of order")
        prev = od
        if tsd < min_ts:
            min_ts = tsd
        if tsd > max_ts:
            max_ts = tsd
        r = _pf(d, n, end, &p, False, &kl)
        if r:
            break
        if kl < 0:
            if kl != -1:
                raise CorruptRecordError(f"record {i}: key length {kl}")
            null_key = True
        else:
            p += <Py_ssize_t>kl  # kl < 2**31: no overflow
        if p >= end:
            raise CorruptRecordError(f"record {i}: key leaves the record")
        r = _pf(d, n, end, &p, False, &vl)
        if r:
            break
        if vl < -1:
            raise CorruptRecordError(f"record {i}: value length {vl}")
        if vl > 0:
            p += <Py_ssize_t>vl
        if p >= end:
            raise CorruptRecordError(f"record {i}: value leaves the record")
        if d[p] == 0:  # p < end <= n here
            p += 1
        else:
            r = _pv(d, p, end, False, &hc, &p)
            if r:
                break
            if hc < 0 or hc > (end - p) // 2:
                raise CorruptRecordError(f"record {i}: header count {hc}")
            for j in range(hc):
                r = _pv(d, p, end, False, &hkl, &p)
                if r:
                    break
                if hkl < 0 or p + hkl > end:
                    raise CorruptRecordError(f"record {i}: header key length {hkl}")
                try:
                    PyUnicode_DecodeUTF8(<char *>d + p, <Py_ssize_t>hkl, NULL)
                except UnicodeDecodeError:
                    raise CorruptRecordError("header key is not UTF-8") from None
                p += <Py_ssize_t>hkl
                r = _pv(d, p, end, False, &hvl, &p)
                if r:
                    break
                if hvl < -1 or p + (hvl if hvl > 0 else 0) > end:
                    raise CorruptRecordError(f"record {i}: header value length {hvl}")
                if hvl > 0:
                    p += <Py_ssize_t>hvl
            if r:
                break
        if p != end:
            raise CorruptRecordError(f"record {i}: fields do not add up to its length")
        walked += 1
        i += 1
    if r:
        raise CorruptRecordError(_P_MESSAGES[r])
    if p != n:
        raise CorruptRecordError(f"{n - p} bytes after the last of {count} records")
    if walked == 0:
        min_ts = max_ts = 0
    return walked, min_ts, max_ts, null_key
