# cython: language_level=3
"""Producer.send's fast path, compiled: the same steps, in the same order, as the reference
logmq/broker/send_fast.py::_py_send_fast (see there for the contract). Only the interpreter
dispatch goes: every producer attribute is read and written as the reference does, under the
same lock. A broker-level extension of its own (it knows the producer's internals), not part
of the codec's.
"""

from cpython.bytes cimport PyBytes_GET_SIZE

from xxhash import xxh3_64_intdigest as _xxh3

def send_fast(prod, tuple fast, topic, key, value, future):
    cdef Py_ssize_t size = 16
    cdef object p = None
    cdef object kp, tp, batch, lock, ts
    cdef Py_ssize_t i
    cdef bint full = False
    if fast[0] != prod._version_src.topics_version or fast[1].config is not fast[2]:
        return None
    if value is not None:
        if type(value) is not bytes:
            return None
        size += PyBytes_GET_SIZE(value)
    if key is not None:
        if type(key) is not bytes:
            return None
        size += PyBytes_GET_SIZE(key)
        kp = fast[5]
        p = kp.get(key)
        if p is None:
            p = _xxh3(key) % fast[3]
            if len(kp) < 65536:
                kp[key] = p
    if size > fast[4]:
        return None
    ts = int(prod._wall() * 1000)
    lock = prod._lock
    lock.acquire()
    try:
        if prod._buffered + size > prod.buffer_memory:
            return None
        if key is None:
            p = prod._sticky.partition(topic, fast[3])
        tp = fast[6][p]
        batch = prod._open.get(tp)
        if batch is None:
            return None
        records = batch.records
        i = len(records)
        records.append((key, value))
        batch.timestamps.append(ts)
        batch.size += size
        prod._buffered += size
        if batch.size >= prod.batch_size:
            prod._seal(tp, batch)
            full = True
    finally:
        lock.release()
    if full:
        prod._drain(tp)
    return future(batch, i)
