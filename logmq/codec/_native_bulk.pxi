# ------------------------------------------------------------- bulk produce: bucket + encode
# Same contract and bytes as ``_py_bucket_encode`` in logmq/codec/keys_ref.py (the reference).
# One pass over the records: each is hashed (once per distinct key) and written straight into
# its partition's growing buffer; a buffer becomes a finished batch (header, CRC) when the
# next record would take it past max_batch_bytes. A bulk load then reads every record once.

from libc.stdlib cimport free, malloc, realloc


cdef struct _Part:
    char *buf          # the batch being built, its 61 header bytes reserved at the front
    Py_ssize_t size
    Py_ssize_t cap
    int64_t count


cdef object _finish(_Part *pt, int64_t ts):
    """The partition's buffer as one finished v2 batch (the buffer is reset)."""
    cdef object out = PyBytes_FromStringAndSize(NULL, pt.size)
    cdef char *w = PyBytes_AS_STRING(out)
    memcpy(w + 61, pt.buf + 61, pt.size - 61)
    _be(w, 0, 8)                                    # base offset (the log assigns it)
    _be(w + 8, <uint64_t>(pt.size - 12), 4)         # batch length
    _be(w + 12, <uint64_t>(<int64_t>-1), 4)         # partition leader epoch
    w[16] = 2                                       # magic
    _be(w + 21, 0, 2)                               # attributes: no codec, create time
    _be(w + 23, <uint64_t>(pt.count - 1), 4)        # last offset delta
    _be(w + 27, <uint64_t>ts, 8)                    # base timestamp
    _be(w + 35, <uint64_t>ts, 8)                    # max timestamp
    _be(w + 43, <uint64_t>(<int64_t>-1), 8)         # producer id
    _be(w + 51, <uint64_t>(<int64_t>-1), 2)         # producer epoch
    _be(w + 53, <uint64_t>(<int64_t>-1), 4)         # base sequence
    _be(w + 57, <uint64_t>pt.count, 4)              # record count
    _be(w + 17, <uint64_t>_crc32c(memoryview(out)[21:]), 4)
    pt.size = 61
    pt.count = 0
    return out


def bucket_encode(records, num_partitions, timestamp, max_batch_bytes):
    """Native ``keys.bucket_encode``: exact ``bytes`` keys and values in 2-tuples/lists; any
    other shape is answered by the pure function (it decides None or the batches)."""
    cdef Py_ssize_t i, kl, vl, body, rs, need, cap
    cdef uint64_t np
    cdef int64_t ts, limit, p
    cdef dict cache = {}, out = {}
    cdef object rec, k, v, pobj, hash_ = _xxh3
    cdef PyObject *found
    cdef _Part *parts
    cdef _Part *pt
    cdef char *w
    cdef char *grown
    if type(records) is not list or type(num_partitions) is not int or num_partitions <= 0 \
            or _c_int64(timestamp, &ts) or _c_int64(max_batch_bytes, &limit) or limit < 62:
        return _fallbacks["bucket_encode"](records, num_partitions, timestamp, max_batch_bytes)
    np = num_partitions
    parts = <_Part *>malloc(np * sizeof(_Part))
    if parts == NULL:
        raise MemoryError()
    for i in range(<Py_ssize_t>np):
        parts[i].buf = NULL
    try:
        i = 0
        while i < PyList_GET_SIZE(records):  # re-read: a finalizer run by GC may shrink it
            rec = (<list>records)[i]
            i += 1
            if type(rec) is tuple and PyTuple_GET_SIZE(rec) == 2:
                k = <object>PyTuple_GET_ITEM(rec, 0)
                v = <object>PyTuple_GET_ITEM(rec, 1)
            elif type(rec) is list and PyList_GET_SIZE(rec) == 2:
                k = <object>PyList_GET_ITEM(rec, 0)
                v = <object>PyList_GET_ITEM(rec, 1)
            else:
                return _fallbacks["bucket_encode"](records, num_partitions, timestamp,
                                                   max_batch_bytes)
            if type(k) is not bytes or type(v) is not bytes:
                return _fallbacks["bucket_encode"](records, num_partitions, timestamp,
                                                   max_batch_bytes)
            found = PyDict_GetItem(cache, k)
            if found is NULL:
                pobj = PyLong_FromLongLong(<int64_t>((<uint64_t>hash_(k)) % np))
                PyDict_SetItem(cache, k, pobj)
            else:
                pobj = <object>found
            p = pobj
            pt = &parts[p]
            if pt.buf == NULL:  # first record of this partition: its batch list, its buffer
                PyDict_SetItem(out, pobj, [])
                pt.cap = 4096 if limit > 4096 else limit
                pt.buf = <char *>malloc(pt.cap)
                if pt.buf == NULL:
                    raise MemoryError()
                pt.size = 61
                pt.count = 0
            kl = PyBytes_GET_SIZE(k)
            vl = PyBytes_GET_SIZE(v)
            body = 3 + _zz_len(pt.count) + _zz_len(kl) + kl + _zz_len(vl) + vl
            rs = _zz_len(body) + body
            if pt.count > 0 and pt.size + rs > limit:
                PyList_Append(<object>PyDict_GetItem(out, pobj), _finish(pt, ts))
                body = 3 + 1 + _zz_len(kl) + kl + _zz_len(vl) + vl
                rs = _zz_len(body) + body
            need = pt.size + rs
            if need > pt.cap:
                cap = pt.cap * 2
                while cap < need:
                    cap *= 2
                grown = <char *>realloc(pt.buf, cap)
                if grown == NULL:
                    raise MemoryError()
                pt.buf, pt.cap = grown, cap
            w = pt.buf + pt.size
            w = _zz_put(w, body)
            w[0] = 0   # attributes
            w[1] = 0   # timestamp delta
            w = _zz_put(w + 2, pt.count)
            w = _zz_put(w, kl)
            memcpy(w, PyBytes_AS_STRING(k), kl)
            w = _zz_put(w + kl, vl)
            memcpy(w, PyBytes_AS_STRING(v), vl)
            w[vl] = 0  # no headers
            pt.size = need
            pt.count += 1
        for pobj, batches in out.items():
            PyList_Append(batches, _finish(&parts[<int64_t>pobj], ts))
        return out
    finally:
        for i in range(<Py_ssize_t>np):
            if parts[i].buf != NULL:
                free(parts[i].buf)
        free(parts)
