"""Streams by key on top of the partitioned log: expected-version appends and indexed reads.

An append to a stream is one RecordBatch appended with the partition-level condition
``expected_offset`` = the end offset the index has just caught up to. So the check "the
stream is at version N" and the append are atomic with respect to every other writer: if
anybody appended to the partition meanwhile (another stream, a plain producer, a Kafka
client), the append is refused, the index catches up and the check is made again; only a
real change of *this* stream raises :class:`~logmq.errors.WrongExpectedVersionError`.

Group commit: callers appending to streams of one partition queue their requests; whoever
holds the partition's lock checks every queued request and appends all that pass as ONE
batch (one write, one fsync). Unrelated keys of a partition thus share the append instead
of waiting for each other's, and different partitions never wait for each other.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from logmq.broker.partitioner import key_partition
from logmq.codec.batch import HEADER_SIZE, parse_header
from logmq.codec.records import decode_batch, encode_batch
from logmq.errors import (
    ConcurrencyError,
    ConfigError,
    LogMQError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    StreamDeletedError,
    UnknownTopicError,
    WrongExpectedVersionError,
)
from logmq.streams.index import (
    OP_HEADER,
    TRACKING_HEADER,
    VERSION_HEADER,
    StreamIndex,
    StreamMetadata,
)
from logmq.streams.model import ANY, NO_STREAM, STREAM_EXISTS, Headers, StreamEvent

__all__ = ["Streams", "StreamEvent", "AppendResult", "ANY", "NO_STREAM", "STREAM_EXISTS",
           "streams_of"]

#: limit on the number of conflict retries caused by *other* streams' appends
MAX_RETRIES = 1000
_FIRST_READ = 4096  # one pread covers a typical event batch


class _Request:
    """One caller's append, waiting for (or done by) a group commit."""

    __slots__ = ("streams", "versions", "tracking", "done", "result", "error")

    def __init__(self, streams: Sequence[tuple[bytes, list[tuple[bytes | None, Headers]], Any]],
                 versions: Sequence[Sequence[int] | None] | None,
                 tracking: tuple[str, int] | None) -> None:
        self.streams = streams
        self.versions = versions
        self.tracking = tracking
        self.done = False
        self.result: list[AppendResult] | None = None
        self.error: BaseException | None = None


class AppendResult(NamedTuple):
    """Where an append landed: the stream's new version and the offsets of its records."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    version: int


def _bytes(v: Any, what: str) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, bytearray | memoryview):
        return bytes(v)
    raise TypeError(f"{what} must be bytes or str, got {type(v).__name__}")


def _event(e: Any) -> tuple[bytes | None, Headers]:
    """An event given as a value, or as (value, headers)."""
    if isinstance(e, tuple):
        value, headers = e
        hs = [(str(k), None if v is None else _bytes(v, "header value")) for k, v in headers]
        return (None if value is None else _bytes(value, "event")), hs
    return (None if e is None else _bytes(e, "event")), []


def _check(stream: bytes, meta: StreamMetadata, expected: Any) -> None:
    if meta.tombstoned:
        raise StreamDeletedError(f"stream {stream!r} was tombstoned")
    cur = meta.version
    if expected == ANY or expected is None:
        return
    if expected == NO_STREAM:
        ok = cur < 0
    elif expected == STREAM_EXISTS:
        ok = cur >= 0
    elif isinstance(expected, int) and not isinstance(expected, bool) and expected >= -1:
        ok = cur == expected
    else:
        raise ConfigError(f"expected_version must be an int >= -1, {ANY!r}, {NO_STREAM!r} or "
                          f"{STREAM_EXISTS!r}, got {expected!r}")
    if not ok:
        raise WrongExpectedVersionError(stream, expected, cur)


class Streams:
    """The stream API of one open log; get it with ``log.streams`` (one per broker)."""

    def __init__(self, broker: Any) -> None:
        self.broker = broker
        self.index = StreamIndex(broker)

    # ------------------------------------------------------------------ placement
    def partition_for(self, topic: str, key: Any, *, create: bool = True) -> int:
        """The partition of ``key``: the embedded producer's default key placement.

        ``create`` auto-creates the topic (when the broker allows it); without it an unknown
        topic is -1, so reads of a topic nobody wrote to create nothing.
        """
        if create:
            n = self.broker.ensure_topic(topic)
        else:
            try:
                n = self.broker.partitions_for(topic)
            except UnknownTopicError:
                return -1
        return key_partition(_bytes(key, "key"), n) if n > 1 else 0

    # ------------------------------------------------------------------ appends
    def append_to_stream(self, topic: str, key: Any, events: Iterable[Any], *,
                         expected_version: Any = ANY, headers: Headers | None = None
                         ) -> AppendResult:
        """Append ``events`` (values, or (value, headers) pairs) to stream ``key``, atomically.

        All events go in one batch: all or none are appended, contiguously, with versions
        current+1, current+2, ... written as the ``logmq.version`` header.
        ``expected_version``: an int (the stream's current version, -1 for none),
        ``"no_stream"``, ``"stream_exists"`` or ``"any"``.
        """
        k = _bytes(key, "key")
        evs = [_event(e) for e in events]
        if not evs:
            raise ConfigError("append_to_stream needs at least one event")
        if headers:
            evs = [(v, list(headers) + h) for v, h in evs]
        p = self.partition_for(topic, k)
        res = self.append_multi(topic, p, [(k, evs, expected_version)])
        return res[0]

    def send(self, topic: str, value: Any, *, key: Any, expected_version: Any = ANY,
             headers: Headers | None = None) -> AppendResult:
        """One event; ``send(topic, v, key=k, expected_version=N)``."""
        return self.append_to_stream(topic, key, [(value, list(headers or []))],
                                     expected_version=expected_version)

    def append_multi(self, topic: str, partition: int,
                     streams: Sequence[tuple[bytes, list[tuple[bytes | None, Headers]], Any]],
                     *, versions: Sequence[Sequence[int] | None] | None = None,
                     tracking: tuple[str, int] | None = None) -> list[AppendResult]:
        """Append to several streams of one partition in ONE batch, all checks or none.

        ``streams`` is a list of (key, events, expected_version) groups laid out in the batch
        in that order; a key may come back in a later group (its expected version is checked
        at its first group only). ``versions``, aligned with ``streams``, gives explicit
        versions (strictly increasing, above the stream's version so far: the eventsourcing
        library numbers its own events). ``tracking`` (name, id) is recorded atomically with
        the batch and must be above the name's recorded position (else
        WrongExpectedVersionError).
        """
        plog = self.broker.partition_log(topic, partition)
        st = self.index.part(topic, partition)
        req = _Request(streams, versions, tracking)
        with st.qlock:
            st.queue.append(req)
        while True:
            with st.lock:  # the holder commits every request queued so far, in one batch
                if req.done:
                    break
                with st.qlock:
                    group, st.queue = st.queue, []
                try:
                    self._commit_group(topic, partition, plog, st, group)
                except BaseException as e:  # the log closed, damage...: fail the whole group
                    for r in group:
                        if not r.done:
                            r.error, r.done = e, True
                    raise
        if req.error is not None:
            raise req.error
        assert req.result is not None
        return req.result

    def _commit_group(self, topic: str, partition: int, plog: Any, st: Any,
                      group: list[_Request]) -> None:
        """Check each request against the caught-up index and append all that pass as ONE
        batch (group commit: one write, one fsync). A failed check fails only its request;
        each request's events stay contiguous and the batch is all-or-nothing."""
        max_bytes = plog.config.max_message_bytes
        leftover: list[_Request] = []
        for _ in range(MAX_RETRIES):
            group = [r for r in group if not r.done]
            if not group:
                break
            end = self.index._catch_up_locked(plog, st)
            records: list[tuple[bytes | None, bytes | None, Headers]] = []
            plans: list[tuple[_Request, list[tuple[int, int, int]]]] = []
            cur: dict[bytes, int] = {}
            trk: dict[str, int] = {}
            size = 0
            for req in group:
                try:
                    recs, res, cur2, trk2 = self._plan(topic, partition, req, cur, trk,
                                                       end + len(records))
                except LogMQError as e:
                    req.error, req.done = e, True
                    continue
                est = sum(len(r[1] or b"") + len(r[0] or b"") + 32 for r in recs)
                if records and size + est > max_bytes // 2:
                    leftover.append(req)
                    continue
                records += recs
                size += est
                cur.update(cur2)
                trk.update(trk2)
                plans.append((req, res))
            if not records:
                break
            data = encode_batch(records)
            if len(data) > max_bytes:
                if len(plans) == 1:
                    req = plans[0][0]
                    req.error = RecordTooLargeError(
                        f"the batch of {len(records)} events is {len(data)} bytes > "
                        "max.message.bytes")
                    req.done = True
                    continue
                leftover += [r for r, _ in plans[1:]]
                group = [plans[0][0]]
                continue
            # Read after ``end``: if the conditional append succeeds nobody appended since,
            # so the batch lands at this position (or at 0 of a segment rolled for it).
            seg = plog.active_segment
            pos = seg.size
            try:
                plog.append(data, validate=False, expected_offset=end)
            except ConcurrencyError:
                group = [r for r, _ in plans]  # another writer appended: check again
                continue
            self.index.index_appended(plog, st, records, end, data, seg, pos)
            for req, res in plans:
                req.result = [AppendResult(topic, partition, f, last, v) for f, last, v in res]
                req.done = True
            break
        for req in group:
            if not req.done and req not in leftover:
                req.error, req.done = ConcurrencyError(-1, plog.next_offset), True
        if leftover:
            with st.qlock:
                st.queue[:0] = leftover

    def _plan(self, topic: str, partition: int, req: _Request, cur: dict[bytes, int],
              trk: dict[str, int], first_offset: int
              ) -> tuple[list[tuple[bytes | None, bytes | None, Headers]],
                         list[tuple[int, int, int]], dict[bytes, int], dict[str, int]]:
        """Records and results of one request, given the versions the group reached so far."""
        records: list[tuple[bytes | None, bytes | None, Headers]] = []
        results: list[tuple[int, int, int]] = []
        mine: dict[bytes, int] = {}
        tracking = req.tracking
        trk2: dict[str, int] = {}
        if tracking is not None:
            name, nid = tracking
            cur_t = trk[name] if name in trk else self.index.tracking(topic, partition, name)
            if cur_t is not None and cur_t >= nid:
                raise WrongExpectedVersionError(f"tracking:{name}", f"> {cur_t}", cur_t)
            trk2[name] = nid
        for i, (k, evs, expected) in enumerate(req.streams):
            if not evs:
                continue
            now = mine.get(k)
            if now is None:
                now = cur.get(k)
                meta = self.index.metadata(topic, partition, k)
                if now is None:
                    _check(k, meta, expected)
                    now = meta.version
                else:
                    _check(k, meta._replace(version=now), expected)
            explicit = req.versions[i] if req.versions is not None else None
            if explicit is not None:
                vs = list(explicit)
                if len(vs) != len(evs):
                    raise ConfigError("one explicit version per event")
                if vs[0] <= now or any(a >= b for a, b in zip(vs, vs[1:], strict=False)):
                    raise WrongExpectedVersionError(k, f"< {vs[0]}", now)
            else:
                vs = list(range(now + 1, now + 1 + len(evs)))
            mine[k] = vs[-1]
            first = first_offset + len(records)
            for (value, hs), v in zip(evs, vs, strict=True):
                records.append((k, value, [(VERSION_HEADER, b"%d" % v), *hs]))
            results.append((first, first_offset + len(records) - 1, vs[-1]))
        if tracking is not None:
            th = (TRACKING_HEADER, tracking[0].encode() + b"\x00%d" % tracking[1])
            if records:
                k0, v0, h0 = records[0]
                records[0] = (k0, v0, [*h0, th])
            else:  # a position alone: one record outside every stream
                records.append((None, None, [th]))
        if not records:
            raise ConfigError("nothing to append")
        return records, results, mine, trk2

    def append_op(self, topic: str, key: Any, op: bytes, value: bytes | None = b"") -> int:
        """Append a stream operation record (no version); returns its offset."""
        k = _bytes(key, "key")
        p = self.partition_for(topic, k)
        plog = self.broker.partition_log(topic, p)
        st = self.index.part(topic, p)
        rec = [(k, value, [(OP_HEADER, op)])]
        data = encode_batch(rec)
        while True:
            with st.lock:
                end = self.index._catch_up_locked(plog, st)
                meta = self.index.metadata(topic, p, k)
                if meta.tombstoned:
                    raise StreamDeletedError(f"stream {k!r} was tombstoned")
                try:
                    first, _ = plog.append(data, validate=False, expected_offset=end)
                except ConcurrencyError:
                    continue
                self.index._catch_up_locked(plog, st)
                return first

    def truncate_before(self, topic: str, key: Any, version: int) -> None:
        """Soft delete: readers no longer see versions below ``version`` (records stay)."""
        if not isinstance(version, int) or version < 0:
            raise ConfigError("truncate_before needs a version >= 0")
        self.append_op(topic, key, b"truncate-before=%d" % version)

    def tombstone(self, topic: str, key: Any) -> None:
        """Delete the stream for good: reads return nothing, appends raise StreamDeletedError.

        The marker is a Kafka tombstone (null value) with the key, so a compacted topic
        drops the stream's records too.
        """
        self.append_op(topic, key, b"tombstone", None)

    # ------------------------------------------------------------------ reads
    def metadata(self, topic: str, key: Any) -> StreamMetadata:
        k = _bytes(key, "key")
        p = self.partition_for(topic, k, create=False)
        if p < 0:
            return StreamMetadata(topic, 0, k, -1, -1, -1, 0, 0, False)
        self.index.catch_up(topic, p)
        return self.index.metadata(topic, p, k)

    def version(self, topic: str, key: Any) -> int:
        """Current version of the stream (-1 when it has no event)."""
        return self.metadata(topic, key).version

    def read_stream(self, topic: str, key: Any, from_version: int | None = None, *,
                    backwards: bool = False, limit: int | None = None,
                    to_version: int | None = None) -> list[StreamEvent]:
        """Events of stream ``key`` from ``from_version`` (inclusive), via the key index.

        Forwards from version 0 by default; ``backwards`` starts at the last version (or at
        ``from_version``) and goes down. Versions below the truncate-before mark, of a
        tombstoned stream, or whose records retention or compaction removed, are skipped:
        the result never holds a record the log no longer has.
        """
        lo, hi = 0, to_version
        if backwards:
            if from_version is not None:
                hi = from_version if hi is None else min(hi, from_version)
        elif from_version is not None:
            lo = from_version
        return self.read_range(topic, key, lo, hi, backwards=backwards, limit=limit)

    def read_range(self, topic: str, key: Any, min_version: int = 0,
                   max_version: int | None = None, *, backwards: bool = False,
                   limit: int | None = None) -> list[StreamEvent]:
        """Events with ``min_version <= version <= max_version``, oldest or newest first."""
        k = _bytes(key, "key")
        p = self.partition_for(topic, k, create=False)
        if p < 0:
            return []
        self.index.catch_up(topic, p)
        meta = self.index.metadata(topic, p, k)
        if meta.tombstoned or meta.version < 0 or limit == 0:
            return []
        lo, hi = max(min_version, meta.truncate_before), max_version
        plog = self.broker.partition_log(topic, p)
        start = plog.log_start_offset
        segs = plog.segments
        bases = [sg.base_offset for sg in segs]
        out: list[StreamEvent] = []
        batch: dict[int, Any] = {}
        b_lo = b_hi = -1
        for v, off, seg_base, pos in self.index.versions(topic, p, k, lo, hi, backwards, None):
            if off < start:
                if backwards:
                    break
                continue
            if not b_lo <= off < b_hi:
                data = _read_batch_at(segs, bases, seg_base, pos, off)
                if data is None:  # moved by compaction: ask the log where it is now
                    try:
                        data = plog.read_bytes(off, 1)
                    except OffsetOutOfRangeError:
                        continue
                    if not data:
                        continue
                h, recs = decode_batch(plog.open_batch(data), 0, validate=False)
                b_lo, b_hi = h.base_offset, h.next_offset
                batch = {r[0]: r for r in recs}
            r = batch.get(off)
            if r is None or r[2] != k:
                continue  # compaction removed it (or the index is stale there)
            out.append(StreamEvent(topic, p, off, r[1], r[2], r[3], r[4], v))
            if limit is not None and len(out) >= limit:
                break
        return out

    def tracking(self, topic: str, name: str, partition: int = 0) -> int | None:
        """The highest position recorded under ``name`` with ``append_multi(tracking=...)``."""
        self.index.catch_up(topic, partition)
        return self.index.tracking(topic, partition, name)

    # ------------------------------------------------------------------ subscriptions
    def subscribe_all(self, topic: str, from_position: Any = None, **kw: Any) -> Any:
        from logmq.streams.subscriptions import AllSubscription

        return AllSubscription(self, topic, from_position, **kw)

    def subscribe_stream(self, topic: str, key: Any, from_version: int | None = None,
                         **kw: Any) -> Any:
        from logmq.streams.subscriptions import StreamSubscription

        return StreamSubscription(self, topic, _bytes(key, "key"), from_version, **kw)

    def subscribe_all_async(self, topic: str, from_position: Any = None, **kw: Any) -> Any:
        from logmq.streams.subscriptions import AsyncAllSubscription

        return AsyncAllSubscription(self, topic, from_position, **kw)

    def subscribe_stream_async(self, topic: str, key: Any, from_version: int | None = None,
                               **kw: Any) -> Any:
        from logmq.streams.subscriptions import AsyncStreamSubscription

        return AsyncStreamSubscription(self, topic, _bytes(key, "key"), from_version, **kw)

    def snapshots(self, topic: str, **kw: Any) -> Any:
        from logmq.streams.snapshots import Snapshots

        return Snapshots(self, topic, **kw)

    # ------------------------------------------------------------------ broker hooks
    def on_topic_deleted(self, topic: str) -> None:
        self.index.on_topic_deleted(topic)

    def close(self) -> None:
        self.index.close()


def _read_batch_at(segs: list[Any], bases: list[int], seg_base: int, pos: int, off: int
                   ) -> bytes | None:
    """The batch holding ``off`` at its indexed place, or None if it is not there any more."""
    i = bisect_right(bases, seg_base) - 1
    if i < 0 or bases[i] != seg_base:
        return None
    seg = segs[i]
    try:
        data = seg.read(pos, _FIRST_READ)
        if len(data) < HEADER_SIZE:
            return None
        h = parse_header(data, 0)
        if not h.base_offset <= off < h.next_offset:
            return None
        if h.size > len(data):
            data = seg.read(pos, h.size)
        return data[:h.size] if len(data) >= h.size else None
    except (OSError, ValueError, LogMQError):
        return None  # the segment was deleted or replaced meanwhile


def streams_of(broker: Any) -> Streams:
    """The broker's Streams service (created on first use, closed with the broker).

    ``broker`` is the facade (:class:`logmq.Broker`), typed loosely: this service layer must
    not import the facade that wires it."""
    s: Streams = broker.streams
    return s
