# cython: language_level=3, boundscheck=True, wraparound=True, cdivision=False
# cython: initializedcheck=False, embedsignature=True
"""Compiled per-record loops of the share-group engine (admit, pick, settle, finish, the
range flush and the lock-heap compaction).

The reference is ``logmq/broker/queues/hot.py``: every function here does the same steps in
the same order on the same objects (heap entries, lock entries, range states, ops, the
group's counters and callbacks), so the resulting state is identical; what goes is the
interpreter's dispatch and the attribute lookups on the record, which is a C struct here
(:class:`Rec`, the compiled twin of ``model._Rec``). Rare paths (options, hints, expiry,
filters, nack/reject/release) call the group's Python methods exactly as the reference does.
The group's counters (``avail_live``, ``n_acquired``) are updated once per call, but are the
reference's whenever Python code runs in between. The heaps are pushed and popped with
heapq's algorithm and a faster comparison (see below), so they stay the same lists.

This module imports nothing of ``logmq.broker.queues.model`` (it is loaded while ``hot``
is); :func:`constants` lets ``hot`` check that the C constants below equal the reference's
before it uses this module.
"""

cimport cython
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport Py_LT, PyObject_RichCompareBool

import struct as _struct

from logmq.broker.queues.ranges import MERGE_MAX as _MERGE_MAX
from logmq.broker.queues.ranges import pack_range as _pack_range
from logmq.broker.queues.state import PACK_PO as _PACK_PO
from logmq.broker.queues.state import o_prefix as _o_prefix
from logmq.broker.queues.state import pack_state as _pack_state
from logmq.types import Record as _Record

cdef extern from *:
    """
    #include <Python.h>
    /* A tuple subclass laid out exactly as tuples (a NamedTuple: no __dict__, GenericAlloc):
       tuple.__new__(cls, items) is then allocating it and filling the slots (the same
       helper as logmq/codec/_native.pyx's). */
    static int lq_plain_tuple_type(PyObject *cls) {
        PyTypeObject *t;
        if (!PyType_Check(cls)) return 0;
        t = (PyTypeObject *)cls;
        return PyType_IsSubtype(t, &PyTuple_Type) && t->tp_basicsize == PyTuple_Type.tp_basicsize
            && t->tp_itemsize == PyTuple_Type.tp_itemsize && t->tp_dictoffset == 0
            && t->tp_alloc == PyType_GenericAlloc && PyType_IS_GC(t);
    }
    static PyObject *lq_rec7(PyObject *cls, PyObject *a, PyObject *b, PyObject *c,
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
    bint lq_plain_tuple_type(object cls)
    object lq_rec7(object cls, object a, object b, object c, object d, object e, object f,
                   object g)

# in-memory record states (model.py) and durable states (state.py)
cdef enum:
    AVAILABLE = 0
    ACQUIRED = 1
    GONE = 3
    RELEASED = 4

cdef enum:
    DELIVERED = 1
    DONE = 2
    SCHEDULED = 3

cdef long long PRIO_STEP = 1LL << 48
cdef object MERGE_MAX = _MERGE_MAX
_pack_off = _struct.Struct(">Q").pack
cdef bint _FAST_RECORD = lq_plain_tuple_type(_Record)


def constants():
    """The constants this module was compiled with (``hot`` compares them to its own)."""
    return {"AVAILABLE": AVAILABLE, "ACQUIRED": ACQUIRED, "GONE": GONE,
            "RELEASED": RELEASED, "DELIVERED": DELIVERED, "DONE": DONE,
            "SCHEDULED": SCHEDULED, "PRIO_STEP": PRIO_STEP, "MERGE_MAX": MERGE_MAX}


# ---------------------------------------------------------------------------- heaps
# heapq's algorithm (push: append, sift the new item toward the root; pop: the last item
# replaces the root and sifts to a leaf along the smaller children, then back up), so a
# heap changed here and by heapq in the Python code stays the same list as if heapq did it
# all. Only the comparison is faster: the entries are tuples whose leading items are ints
# (avail: key, partition, offset, tie-break; locks: deadline, tie-break), compared as C
# integers; anything else is compared by Python, as heapq would.

cdef inline int _lt(object a, object b) except -1:
    """``a < b`` for heap entries, as Python's tuple (or int) comparison decides it."""
    cdef Py_ssize_t i, n
    cdef long long x, y
    cdef int ox = 0, oy = 0
    cdef tuple ta, tb
    if type(a) is tuple and type(b) is tuple:
        ta = <tuple>a
        tb = <tuple>b
        n = min(len(ta), len(tb))
        for i in range(n):
            u = ta[i]
            w = tb[i]
            if type(u) is not int or type(w) is not int:
                break  # not ints from here: Python compares (the equal prefix again)
            x = PyLong_AsLongLongAndOverflow(u, &ox)
            y = PyLong_AsLongLongAndOverflow(w, &oy)
            if ox or oy:
                break
            if x != y:
                return x < y
        else:
            return len(ta) < len(tb)
    elif type(a) is int and type(b) is int:
        x = PyLong_AsLongLongAndOverflow(a, &ox)
        y = PyLong_AsLongLongAndOverflow(b, &oy)
        if not ox and not oy:
            return x < y
    return PyObject_RichCompareBool(a, b, Py_LT)


cdef int _siftdown(list heap, Py_ssize_t startpos, Py_ssize_t pos) except -1:
    cdef Py_ssize_t parentpos
    newitem = heap[pos]
    while pos > startpos:
        parentpos = (pos - 1) >> 1
        parent = heap[parentpos]
        if _lt(newitem, parent):
            heap[pos] = parent
            pos = parentpos
            continue
        break
    heap[pos] = newitem
    return 0


cdef int _siftup(list heap, Py_ssize_t pos) except -1:
    cdef Py_ssize_t endpos = len(heap), startpos = pos, childpos, rightpos
    newitem = heap[pos]
    childpos = 2 * pos + 1
    while childpos < endpos:
        rightpos = childpos + 1
        if rightpos < endpos and not _lt(heap[childpos], heap[rightpos]):
            childpos = rightpos
        heap[pos] = heap[childpos]
        pos = childpos
        childpos = 2 * pos + 1
    heap[pos] = newitem
    return _siftdown(heap, startpos, pos)


cdef int _heappush(list heap, object item) except -1:
    heap.append(item)
    return _siftdown(heap, 0, len(heap) - 1)


cdef object _heappop(list heap):
    lastelt = heap.pop()
    if heap:
        returnitem = heap[0]
        heap[0] = lastelt
        _siftup(heap, 0)
        return returnitem
    return lastelt


cdef int _heapify(list heap) except -1:
    cdef Py_ssize_t i
    for i in range(len(heap) // 2 - 1, -1, -1):
        _siftup(heap, i)
    return 0


def heappush(list heap, item):
    """``heapq.heappush`` with the comparison above (tests hold the two to the same lists)."""
    _heappush(heap, item)


def heappop(list heap):
    """``heapq.heappop`` with the comparison above."""
    return _heappop(heap)


def heapify(list heap):
    """``heapq.heapify`` with the comparison above."""
    _heapify(heap)


@cython.freelist(256)
cdef class Rec:
    """One in-memory record of a share group: ``model._Rec``'s fields, as a C struct.

    The integer fields the loops test on every record (state, delivery count, version,
    priority) are C integers; the rest are objects, as in the reference (``None`` allowed).
    """

    cdef public object p, off, record, owner, deadline, first_ms, error, ready, expires
    cdef public long long state, count, ver, prio
    cdef public bint in_window, keyed

    def __init__(self, p, off, record, in_window):
        self.p = p
        self.off = off
        self.record = record
        self.state = AVAILABLE
        self.count = 0
        self.owner = None
        self.deadline = 0
        self.ver = 0
        self.first_ms = 0
        self.error = None
        self.prio = 0
        self.ready = record.timestamp
        self.expires = None
        self.in_window = in_window
        self.keyed = False


cdef inline Rec _plain_rec(object p, object off, object record, object ts):
    """``Rec(p, off, record, True)`` without the call's argument parsing."""
    cdef Rec rec = Rec.__new__(Rec)
    rec.p = p
    rec.off = off
    rec.record = record
    rec.owner = None
    rec.deadline = 0
    rec.first_ms = 0
    rec.error = None
    rec.ready = ts  # record.timestamp
    rec.expires = None
    rec.in_window = True
    return rec


def admit(g, part, list raw, now, list ops, list dead):
    """``hot._py_admit``: give freshly read records their window state."""
    topic = g.topic
    p = part.p
    cdef dict hints = part.hints
    cdef dict win = part.win
    wo_append = part.win_order.append
    cdef list avail = g.avail
    seq = g._avail_seq
    aging = g.cfg.priority_aging_ms
    base = 9 * PRIO_STEP if aging is None else 0
    cdef Py_ssize_t plain = 0
    cdef Rec rec
    cdef object item, off, ts, k, v, hdrs, hint, record
    for item in raw:
        off, ts, k, v, hdrs = item
        hint = hints.pop(off, None) if hints else None
        if _FAST_RECORD:
            record = lq_rec7(_Record, topic, p, off, ts, k, v, hdrs)
        else:
            record = _Record(topic, p, off, ts, k, v, hdrs)
        if hint is None and not hdrs:
            rec = _plain_rec(p, off, record, ts)
            rec.ver = 1
            win[off] = rec
            wo_append(off)
            _heappush(avail, (base + ts, p, off, next(seq), rec, 1))
            plain += 1
            continue
        if hint is not None and hint.state != DELIVERED:
            _heappush(part.done_keyed, off)  # done, or in the due-time index
            continue
        rec = g._new_rec(p, off, record, True)
        if hint is not None:
            rec.count, rec.first_ms, rec.error, rec.keyed = (
                hint.count, hint.first_ms, hint.error, True)
        elif rec.ready > now and rec.ready != ts:  # deliver-at in the future
            due = rec.ready
            ops.append((g.store.due_db, g.store.due_key(g.gt, due, p, off),
                        _pack_state(SCHEDULED, 0, 0, None)))
            part.rng.set(off, (SCHEDULED, 0, 0, None))
            _heappush(part.done_keyed, off)
            g._note_due(due)
            continue
        win[off] = rec
        wo_append(off)
        if rec.expires is not None and rec.expires <= now:
            g._expire(rec, ops, dead)
        else:
            g._push_avail(rec)
    g.avail_live += plain  # after the loop, as the reference (not on an exception either)
    if hints:
        speo = part.speo
        for off in [o for o in hints if o < speo]:
            hints.pop(off)
            _heappush(part.done_keyed, off)


def pick(g, m, Py_ssize_t n, now, list ops, list dead, flt, list got):
    """``hot._py_pick``: acquire up to ``n`` records for ``m`` into ``got``."""
    g._fill(now, ops, dead)
    cdef list avail = g.avail
    cdef long long max_attempts = g.cfg.max_attempts
    cdef list locks = g.locks
    lock_seq = g._avail_seq
    cdef dict held = m.held
    deadline = now + m.lock_ms
    db = g.db
    o_prefix = _o_prefix(g.gt)
    cdef list parts = g.parts
    cdef Py_ssize_t np = len(parts)
    cdef list sts = [None] * np  # per partition: its ranges' st dict, dirty set (lazily)
    cdef list dirties = [None] * np
    cdef Py_ssize_t d_live = 0, d_acq = 0, pi
    cdef Rec rec
    cdef tuple entry
    cdef long long count, ver
    cdef dict st
    cdef set dirty
    try:
        while len(got) < n and avail:
            entry = _heappop(avail)
            rec = entry[4]
            if rec.ver != <long long>entry[5] or rec.state != AVAILABLE:
                continue
            d_live += 1
            # the counters are the reference's whenever Python code runs (callbacks, filter)
            if rec.expires is not None and rec.expires <= now:
                g.avail_live -= d_live
                g.n_acquired += d_acq
                d_live = d_acq = 0
                g._expire(rec, ops, dead)
                continue
            if rec.count >= max_attempts:  # delivered that often before a crash
                g.avail_live -= d_live
                g.n_acquired += d_acq
                d_live = d_acq = 0
                g._dead(rec, "max-attempts", rec.error, ops, dead)
                continue
            if flt is not None:
                g.avail_live -= d_live
                g.n_acquired += d_acq
                d_live = d_acq = 0
                if not flt(rec.record):
                    g.archived += 1
                    g._done(rec, ops)
                    continue
            rec.state = ACQUIRED
            rec.owner = m
            rec.count += 1
            count = rec.count
            rec.ver += 1
            ver = rec.ver
            if not rec.first_ms:
                rec.first_ms = now
            rec.deadline = deadline
            _heappush(locks, (deadline, next(lock_seq), rec, ver))
            d_acq += 1
            p = rec.p
            off = rec.off
            held[(p, off)] = rec
            if rec.in_window:
                pi = p
                if pi < np:
                    st = sts[pi]
                    if st is None:
                        rng = parts[pi].rng
                        st = sts[pi] = rng.st
                        dirties[pi] = rng.dirty
                    dirty = dirties[pi]
                else:  # cannot happen (a record's partition is in parts); as the reference
                    rng = parts[p].rng
                    st = rng.st
                    dirty = rng.dirty
                st[off] = (DELIVERED, count, rec.first_ms, rec.error)
                dirty.add(off)
            else:
                ops.append((db, o_prefix + _PACK_PO(p, off),
                            _pack_state(DELIVERED, count, rec.first_ms, rec.error)))
            rec.keyed = True
            got.append((rec, count, deadline))
            if not avail or len(got) >= n:
                break
            if len(avail) < 8:
                g.avail_live -= d_live
                g.n_acquired += d_acq
                d_live = d_acq = 0
                g._fill(now, ops, dead)
    finally:
        if d_live:
            g.avail_live -= d_live
        if d_acq:
            g.n_acquired += d_acq


def settle(g, member, tokens, action, now, list ops, list dead, list failed, list deadlines,
           list acked, delay_ms, error, lock_ms, count_attempt):
    """``hot._py_settle``: settle each ``(partition, offset, count)`` token of ``member``."""
    cdef dict held = member.held
    cdef int act
    cdef Rec rec
    cdef object obj, key
    if action == "ack":
        act = 0
    elif action == "nack":
        act = 1
    elif action == "reject":
        act = 2
    elif action == "renew":
        act = 3
    elif action == "release":
        act = 4
    else:
        act = -1
    for p, off, count in tokens:
        key = (p, off)
        obj = held.get(key)
        if obj is None:
            failed.append(key)
            continue
        rec = obj
        if rec.state != ACQUIRED or rec.owner is not member or rec.count != count:
            failed.append(key)
            continue
        if rec.deadline < now:  # expired before anyone noticed: too late now
            g._release(rec, now, ops, dead, "lock expired", None)
            failed.append(key)
            continue
        if act == 0:
            rec.state = RELEASED
            rec.owner = None
            del held[key]
            acked.append(rec)
        elif act == 1:
            g._release(rec, now, ops, dead, error, delay_ms)
        elif act == 2:
            g._dead(rec, "rejected", error or "rejected", ops, dead)
        elif act == 3:
            rec.deadline = now + (lock_ms if lock_ms is not None else member.lock_ms)
            rec.ver += 1
            _heappush(g.locks, (rec.deadline, next(g._avail_seq), rec, rec.ver))
            deadlines.append(rec.deadline)
        elif act == 4:
            g._release(rec, now, ops, dead, None, 0, count_attempt)
        else:
            raise ValueError(f"unknown action {action!r}")


def finish(g, list recs, list ops):
    """``hot._py_finish``: mark records done; one SPSO advance per partition."""
    cdef dict touched = {}
    cdef list parts = g.parts
    cdef Py_ssize_t np = len(parts), pi
    cdef list wins = [None] * np
    cdef Rec rec
    cdef dict win
    cdef tuple c
    for rec in recs:
        if rec.state == ACQUIRED:
            g._unacquire(rec)
        rec.state = GONE
        rec.ver += 1
        if rec.in_window:
            pi = rec.p
            win = wins[pi]
            if win is None:
                part = parts[pi]
                win = wins[pi] = part.win
                touched[rec.p] = part
            del win[rec.off]
        else:
            part = parts[rec.p]
            del part.out[rec.off]
            g.n_out -= 1
            ops.append((g.db, g._key_of(rec), None))
    if not touched:
        g.manager.room_changed()
        return
    for part in touched.values():
        g._advance(part, ops)
    done = (DONE, 0, 0, None)  # one value for all: done records of a run share a range
    cdef list cache = [None] * np  # per partition: (spso, st, dirty, done_keyed)
    for rec in recs:
        if rec.in_window and rec.keyed:
            pi = rec.p
            c = cache[pi]
            if c is None:
                part = parts[pi]
                rng = part.rng
                c = cache[pi] = (part.spso, rng.st, rng.dirty, part.done_keyed)
            off = rec.off
            if off < c[0]:  # RangeMap.drop, inlined (per record)
                (<dict>c[1]).pop(off, None)
                (<set>c[2]).add(off)
            else:
                (<dict>c[1])[off] = done  # RangeMap.set, inlined
                (<set>c[2]).add(off)
                _heappush(c[3], off)
    g.manager.room_changed()


def live_locks(list locks):
    """``hot._py_live_locks``: the lock heap without the entries of settled records."""
    cdef list out = []
    cdef tuple e
    cdef Rec rec
    for e in locks:
        rec = e[2]
        if rec.ver == <long long>e[3] and rec.state == ACQUIRED:
            out.append(e)
    _heapify(out)
    return out


cdef bytes _key(bytes prefix, object start):
    """``prefix + struct.pack(">Q", start)`` (the struct's range check kept)."""
    return prefix + _pack_off(start)


def range_flush(rm, db, list ops):
    """``RangeMap.flush``: the key deletes and puts that make disk equal ``st``."""
    cdef set dirty = rm.dirty
    if not dirty:
        return
    cdef dict keys = rm.keys
    cdef dict owner = rm.owner
    cdef list ds = sorted(dirty)
    dirty.clear()
    cdef dict old = {}
    cdef object off, s, nb, prev_o = -2
    cdef long long o, prev = -2
    for off in ds:
        o = off
        s = owner.get(off)
        if s is not None and s not in old:
            old[s] = keys.pop(s)
        if o != prev + 1:  # a run of changed offsets starts: the ranges around it
            for nb in ((off - 1, prev_o + 1) if prev >= 0 else (off - 1,)):
                s = owner.get(nb)  # may now extend over the run: merge (walks it)
                if s is not None and s not in old and keys[s][0] - s <= MERGE_MAX:
                    old[s] = keys.pop(s)
        prev = o
        prev_o = off
    s = owner.get(prev_o + 1)
    if s is not None and s not in old and keys[s][0] - s <= MERGE_MAX:
        old[s] = keys.pop(s)
    cdef set region
    if old:
        region = set(ds)
        for s, (e, _st) in old.items():
            region.update(range(s, e))
        ds = sorted(region)
    cdef dict sts = rm.st
    cdef list new = []
    cdef object start = -2, cur = None, st
    prev = -2
    prev_o = -2
    for off in ds:
        st = sts.get(off)
        if st is None:
            owner.pop(off, None)
            continue
        o = off
        if o != prev + 1 or (st is not cur and st != cur):
            if cur is not None:
                new.append((start, prev_o + 1, cur))
            start = off
            cur = st
        owner[off] = start
        prev = o
        prev_o = off
    if cur is not None:
        new.append((start, prev_o + 1, cur))
    prefix = rm.prefix
    cdef set starts = {t[0] for t in new}
    for s in old:
        if s not in starts:
            ops.append((db, _key(prefix, s), None))
    cdef tuple t
    for t in new:
        s, e, st = t
        keys[s] = (e, st)
        if old.get(s) != (e, st):
            ops.append((db, _key(prefix, s), _pack_range(e, st)))
