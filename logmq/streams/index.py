"""The durable key index behind streams: (topic, partition, key) -> versions -> offsets.

The index FOLLOWS the log instead of hooking into the append path: per partition it records
the next offset it has not indexed yet (plus the base offset and CRC of the last batch it
indexed) and, before any stream read or check, reads whatever was appended since, by any
writer (the stream API, the plain producer, a Kafka client over the wire). It is therefore
derived state, like a segment's ``.index``: it may lag the log but never leads it, and
recovery is simply catching up.

Where it lives: its own LMDB environment, ``<data>/stream-index/``, opened without fsync
(``sync=False``): losing its tail in a power cut only means re-reading that part of the log.
If the log lost its tail instead (fsync policy ``interval``/``never``) the stored CRC of the
last indexed batch no longer matches and that partition's index is rebuilt from the log.

Versions: a record carrying the header ``logmq.version`` (decimal ASCII) gets that version
when it moves the stream forward; any other record of the key gets current version + 1. The
stream API always writes the header, so versions survive retention and a rebuild; records
of plain producers are counted. Records with the header ``logmq.stream-op`` are stream
operations (``truncate-before=N``, ``tombstone``), not events: they get no version.
A header ``logmq.tracking`` (``name NUL id``) records a consumer position written atomically
with the batch that carries it (what ``logmq.eventsourcing``'s process recorder uses).

Keys longer than 400 bytes are indexed by their 128-bit xxh3 digest.
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import lmdb
from xxhash import xxh3_128_digest

from logmq.codec.batch import LOG_OVERHEAD, parse_header
from logmq.codec.records import decode_batch
from logmq.errors import CorruptRecordError, OffsetOutOfRangeError

if TYPE_CHECKING:
    from logmq.codec.seal import Sealer
    from logmq.storage.log import PartitionLog

__all__ = ["StreamIndex", "StreamMetadata", "VERSION_HEADER", "OP_HEADER", "TRACKING_HEADER"]

VERSION_HEADER = "logmq.version"
OP_HEADER = "logmq.stream-op"
TRACKING_HEADER = "logmq.tracking"

_Q = struct.Struct(">q")
_I = struct.Struct(">I")
_H = struct.Struct(">H")
_PART = struct.Struct(">qqI")  # indexed_next, last batch base offset, its CRC
_LOC = struct.Struct(">qI")  # where the record's batch was: segment base offset, position
_ENTRY = struct.Struct(">qqI")  # offset + _LOC
_META = struct.Struct(">qqqqqB")  # version, first offset, last offset, count, truncate_before, flags
_TOMBSTONED = 1
_FORMAT = b"2"  # bumped when the layout changes: an index of another layout is rebuilt
_LONG_KEY = 400
_READ_CHUNK = 1 << 20


class StreamMetadata(NamedTuple):
    """What the index knows of one stream (``version`` -1: no event yet)."""

    topic: str
    partition: int
    key: bytes
    version: int
    first_offset: int
    last_offset: int
    event_count: int
    truncate_before: int
    tombstoned: bool

    @property
    def exists(self) -> bool:
        return self.version >= 0 and not self.tombstoned


def stream_key(key: bytes) -> bytes:
    """The index's name of a key: length-prefixed so one key's entries form one range."""
    if len(key) > _LONG_KEY:
        return b"\xff\xff" + xxh3_128_digest(key)
    return _H.pack(len(key)) + key


def tracking_key(prefix: bytes, name: bytes) -> bytes:
    """A projection's tracking entry; a name from a record header can be any length, so a
    long one is keyed by its digest, as long stream keys are (LMDB keys stop at 511 bytes)."""
    if len(name) > _LONG_KEY:
        return prefix + b"\xff\xff" + xxh3_128_digest(name)
    return prefix + name


def _header(headers: Sequence[tuple[str, bytes | None]], name: str) -> bytes | None:
    for k, v in headers:
        if k == name:
            return v
    return None


class _Part:
    """In-memory state of one indexed partition; the lock serializes catch-up and appends."""

    __slots__ = ("tpid", "prefix", "next", "last_base", "last_crc", "lock", "verified",
                 "queue", "qlock")

    def __init__(self, tpid: int) -> None:
        self.tpid = tpid
        self.prefix = _I.pack(tpid)
        self.next = 0
        self.last_base = -1
        self.last_crc = 0
        self.lock = threading.RLock()
        self.verified = False
        self.queue: list[Any] = []  # stream appends waiting for the next group commit
        self.qlock = threading.Lock()


class StreamIndex:
    """One data directory's stream index (one per broker, see :func:`logmq.streams.streams_of`)."""

    def __init__(self, broker: Any, map_size: int = 1 << 36) -> None:
        self.broker = broker
        self.path = os.path.join(broker.path, "stream-index")
        try:
            self.env = self._open(map_size)
        except lmdb.Error:  # unreadable after a crash: it is derived, rebuild it
            shutil.rmtree(self.path, ignore_errors=True)
            self.env = self._open(map_size)
        self._tps = self.env.open_db(b"tps")
        self._parts_db = self.env.open_db(b"parts")
        self._ver = self.env.open_db(b"versions")
        self._meta = self.env.open_db(b"streams")
        self._trk = self.env.open_db(b"tracking")
        self._counted = self.env.open_db(b"counted")  # offset -> version, headerless records
        with self.env.begin(write=True) as txn:
            if txn.get(b"\xffformat", db=self._tps) != _FORMAT:  # another layout: rebuild
                for db in (self._tps, self._parts_db, self._ver, self._meta, self._trk,
                           self._counted):
                    txn.drop(db, delete=False)
                txn.put(b"\xffformat", _FORMAT, db=self._tps)
        self._parts: dict[tuple[str, int], _Part] = {}
        self._lock = threading.Lock()
        self._closed = False

    def _open(self, map_size: int) -> lmdb.Environment:
        os.makedirs(self.path, exist_ok=True)
        return lmdb.open(self.path, max_dbs=8, map_size=map_size, sync=False, metasync=False,
                         max_readers=1024)

    # ------------------------------------------------------------------ partitions
    def part(self, topic: str, partition: int) -> _Part:
        tp = (topic, partition)
        st = self._parts.get(tp)
        if st is not None:
            return st
        with self._lock:
            st = self._parts.get(tp)
            if st is None:
                st = self._load_part(topic, partition)
                self._parts[tp] = st
            return st

    def _topic_id(self, topic: str) -> bytes:
        return self.broker.topic_id(topic).encode()

    def _load_part(self, topic: str, partition: int) -> _Part:
        name = topic.encode() + b"\x00" + _I.pack(partition)
        tid = self._topic_id(topic)
        with self.env.begin(write=True) as txn:
            raw = txn.get(name, db=self._tps)
            if raw is not None and raw[4:] != tid:  # same name, another (recreated) topic
                self._drop(txn, raw[:4])
                raw = None
            if raw is None:
                nxt = txn.get(b"\xffnext", db=self._tps)
                tpid = 0 if nxt is None else _I.unpack(nxt)[0]
                txn.put(b"\xffnext", _I.pack(tpid + 1), db=self._tps)
                txn.put(name, _I.pack(tpid) + tid, db=self._tps)
            else:
                tpid = _I.unpack(raw[:4])[0]
            st = _Part(tpid)
            praw = txn.get(st.prefix, db=self._parts_db)
            if praw is not None:
                st.next, st.last_base, st.last_crc = _PART.unpack(praw)
        return st

    def _drop(self, txn: lmdb.Transaction, prefix: bytes) -> None:
        """Delete every entry of one partition (a prefix range in each db)."""
        for db in (self._ver, self._meta, self._trk, self._counted, self._parts_db):
            cur = txn.cursor(db=db)
            if cur.set_range(prefix):
                while cur.key()[:4] == prefix:
                    if not cur.delete():
                        break

    def on_topic_deleted(self, topic: str) -> None:
        with self._lock:
            doomed = [tp for tp in self._parts if tp[0] == topic]
            for tp in doomed:
                del self._parts[tp]
        head = topic.encode() + b"\x00"
        with self.env.begin(write=True) as txn:
            cur = txn.cursor(db=self._tps)
            rows = []
            if cur.set_range(head):
                for k, v in cur:
                    if not k.startswith(head) or len(k) != len(head) + 4:
                        break
                    rows.append((k, v[:4]))
            for k, prefix in rows:
                self._drop(txn, prefix)
                txn.delete(k, db=self._tps)

    # ------------------------------------------------------------------ catch-up
    def catch_up(self, topic: str, partition: int) -> int:
        """Index everything appended to the partition so far; returns its end offset."""
        plog = self.broker.partition_log(topic, partition)
        st = self.part(topic, partition)
        end = plog.next_offset
        if st.next == end and st.verified:
            return end
        with st.lock:
            return self._catch_up_locked(plog, st)

    def _catch_up_locked(self, plog: PartitionLog, st: _Part) -> int:
        if not st.verified or st.next > plog.next_offset:
            self._verify(plog, st)
        while True:
            end = plog.next_offset
            if st.next >= end:
                return end
            start = max(st.next, plog.log_start_offset)
            try:
                sl = plog.read(start, _READ_CHUNK, whole_batches=True)
            except OffsetOutOfRangeError:  # retention moved the start meanwhile
                st.next = max(st.next, plog.log_start_offset)
                continue
            if sl is None:
                return end
            if sl.length == 0:  # a compaction gap up to sl.end: nothing to index there
                st.next = max(st.next, sl.end)
                continue
            data = sl.read_raw()  # positions are the file's; sealed batches open one by one
            if len(data) != sl.length:
                raise CorruptRecordError("segment shorter than expected",
                                         path=sl.segment.log_path, position=sl.position)
            self._index_buffer(st, data, start, sl.segment.base_offset, sl.position, sl.sealer)

    def _verify(self, plog: PartitionLog, st: _Part) -> None:
        """Check the last indexed batch is still in the log; else rebuild this partition."""
        ok = st.last_base < 0 and st.next == 0
        if st.last_base >= 0 and st.next <= plog.next_offset:
            if st.last_base < plog.log_start_offset:
                ok = True  # retention removed it: the log did not lose its tail
            else:
                try:
                    data = plog.read_bytes(st.last_base, 1)
                    h = parse_header(data, 0) if len(data) >= LOG_OVERHEAD else None
                    ok = (h is not None and h.base_offset == st.last_base
                          and h.crc == st.last_crc and h.next_offset == st.next)
                except (OffsetOutOfRangeError, Exception):
                    ok = False
        if not ok:
            with self.env.begin(write=True) as txn:
                self._drop(txn, st.prefix)
            st.next, st.last_base, st.last_crc = plog.log_start_offset, -1, 0
        st.verified = True

    def _index_buffer(self, st: _Part, data: bytes, start: int, seg_base: int,
                      seg_pos: int, sealer: Sealer | None = None) -> None:
        pos = 0
        n = len(data)
        metas: dict[bytes, list[int]] = {}  # stream metadata, written once per chunk
        with self.env.begin(write=True) as txn:
            while n - pos >= LOG_OVERHEAD:
                h = parse_header(data, pos)
                if pos + h.size > n:
                    break
                if h.next_offset > start:
                    if sealer is None:
                        hp, recs = decode_batch(data, pos, validate=False)
                    else:
                        hp, recs = decode_batch(sealer.open(data, pos, h), 0, validate=False)
                    loc = _LOC.pack(seg_base, seg_pos + pos)
                    self._index_records(txn, st, [r for r in recs if r[0] >= start], loc,
                                        metas)
                    st.last_base, st.last_crc = h.base_offset, hp.crc
                    st.next = max(st.next, h.next_offset)
                pos += h.size
            for sk, m in metas.items():
                txn.put(sk, _META.pack(*m), db=self._meta)
            txn.put(st.prefix, _PART.pack(st.next, st.last_base, st.last_crc), db=self._parts_db)

    def index_appended(self, plog: PartitionLog, st: _Part,
                       records: Sequence[tuple[bytes | None, bytes | None, Any]], first: int,
                       data: bytes, seg: Any, pos: int) -> None:
        """Index a batch the caller (holding ``st.lock``) just appended at ``first``, from
        its records in memory; a stored position that turns out wrong (the caller guessed
        it) only makes readers fall back to the log's own offset lookup."""
        if st.next != first:
            self._catch_up_locked(plog, st)
            return
        active = plog.active_segment
        if active is not seg:
            seg, pos = active, 0  # the append rolled a new segment for this batch
        h = parse_header(data, 0)
        recs = [(first + i, 0, r[0], r[1], r[2]) for i, r in enumerate(records)]
        metas: dict[bytes, list[int]] = {}
        with self.env.begin(write=True) as txn:
            self._index_records(txn, st, recs, _LOC.pack(seg.base_offset, pos), metas)
            for sk, m in metas.items():
                txn.put(sk, _META.pack(*m), db=self._meta)
            st.next, st.last_base, st.last_crc = first + len(records), first, h.crc
            txn.put(st.prefix, _PART.pack(st.next, st.last_base, st.last_crc), db=self._parts_db)

    def _index_records(self, txn: lmdb.Transaction, st: _Part, records: Sequence[Any],
                       loc: bytes, metas: dict[bytes, list[int]]) -> None:
        """Index decoded records of one batch stored at ``loc`` (segment base, position);
        ``metas`` caches stream metadata for the caller to write."""
        prefix = st.prefix
        for off, _ts, key, _value, headers in records:
            if headers:
                trk = _header(headers, TRACKING_HEADER)
                if trk is not None:
                    self._track(txn, prefix, trk)
            if key is None:
                continue
            sk = prefix + stream_key(key)
            m = metas.get(sk)
            if m is None:
                raw = txn.get(sk, db=self._meta)
                m = list(_META.unpack(raw)) if raw is not None else [-1, -1, -1, 0, 0, 0]
                metas[sk] = m
            op = _header(headers, OP_HEADER) if headers else None
            if op is not None:
                if op == b"tombstone":
                    m[5] |= _TOMBSTONED
                elif op.startswith(b"truncate-before="):
                    try:
                        m[4] = max(m[4], int(op[16:]))
                    except ValueError:
                        pass
                continue
            version = -1
            hv = _header(headers, VERSION_HEADER) if headers else None
            if hv is not None:
                try:
                    version = int(hv)
                except ValueError:
                    pass
            if version <= m[0]:  # no usable header: counted, and remembered for readers
                version = m[0] + 1
                if hv is None:
                    txn.put(prefix + _Q.pack(off), _Q.pack(version), db=self._counted)
            txn.put(sk + _Q.pack(version), _Q.pack(off) + loc, db=self._ver)
            m[0] = version
            if m[1] < 0:
                m[1] = off
            m[2] = off
            m[3] += 1

    def _track(self, txn: lmdb.Transaction, prefix: bytes, value: bytes) -> None:
        name, _, raw = value.partition(b"\x00")
        try:
            nid = int(raw)
        except ValueError:
            return
        k = tracking_key(prefix, name)
        cur = txn.get(k, db=self._trk)
        if cur is None or _Q.unpack(cur)[0] < nid:
            txn.put(k, _Q.pack(nid), db=self._trk)

    # ------------------------------------------------------------------ lookups
    def metadata(self, topic: str, partition: int, key: bytes) -> StreamMetadata:
        st = self.part(topic, partition)
        with self.env.begin(db=self._meta) as txn:
            raw = txn.get(st.prefix + stream_key(key))
        m = _META.unpack(raw) if raw is not None else (-1, -1, -1, 0, 0, 0)
        return StreamMetadata(topic, partition, key, m[0], m[1], m[2], m[3], m[4],
                              bool(m[5] & _TOMBSTONED))

    def iter_counted(self, topic: str, partition: int, lo: int) -> Iterator[tuple[int, int]]:
        """(offset, version) the index counted for header-less records, from ``lo`` on, in
        offset order (lazily: close the iterator to end its read transaction)."""
        st = self.part(topic, partition)
        prefix = st.prefix
        with self.env.begin(db=self._counted) as txn:
            cur = txn.cursor()
            ok = cur.set_range(prefix + _Q.pack(lo))
            while ok:
                k = cur.key()
                if k[:4] != prefix:
                    return
                yield _Q.unpack_from(k, 4)[0], _Q.unpack(cur.value())[0]
                ok = cur.next()

    def tracking(self, topic: str, partition: int, name: str) -> int | None:
        st = self.part(topic, partition)
        with self.env.begin(db=self._trk) as txn:
            raw = txn.get(tracking_key(st.prefix, name.encode()))
        return None if raw is None else _Q.unpack(raw)[0]

    def versions(self, topic: str, partition: int, key: bytes, lo: int, hi: int | None,
                 backwards: bool, limit: int | None) -> Iterator[tuple[int, int, int, int]]:
        """(version, offset, segment base, batch position) of versions ``lo <= v <= hi``."""
        st = self.part(topic, partition)
        base = st.prefix + stream_key(key)
        plen = len(base)
        got = 0
        with self.env.begin(db=self._ver) as txn:
            cur = txn.cursor()
            if not backwards:
                ok = cur.set_range(base + _Q.pack(max(lo, 0)))
                while ok:
                    k = cur.key()
                    if len(k) != plen + 8 or k[:plen] != base:
                        return
                    v = _Q.unpack_from(k, plen)[0]
                    if hi is not None and v > hi:
                        return
                    yield (v, *_ENTRY.unpack(cur.value()))
                    got += 1
                    if limit is not None and got >= limit:
                        return
                    ok = cur.next()
            else:
                top = (1 << 62) if hi is None else hi + 1
                ok = cur.set_range(base + _Q.pack(top))
                ok = cur.prev() if ok else cur.last()
                while ok:
                    k = cur.key()
                    if len(k) != plen + 8 or k[:plen] != base:
                        return
                    v = _Q.unpack_from(k, plen)[0]
                    if v < lo:
                        return
                    yield (v, *_ENTRY.unpack(cur.value()))
                    got += 1
                    if limit is not None and got >= limit:
                        return
                    ok = cur.prev()

    # ------------------------------------------------------------------ lifecycle
    def sync(self) -> None:
        self.env.sync(True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.env.sync(True)
        finally:
            self.env.close()
