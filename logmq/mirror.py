"""``logmq mirror SRC DST``: copy topics and consumer-group positions between logs/clusters.

Each side is anything :func:`logmq.connect` opens (a data directory or ``kafka://``), and only
the public Broker API is used, so every pair works: dir -> cluster, cluster -> dir, dir -> dir.

Records keep key, value, headers, timestamp and their order within a partition; partition
numbers are kept too (a record copied from partition 2 lands in partition 2), so keyed data
stays where keyed consumers expect it. Record offsets may differ on the destination (gaps left
by compaction, deleted records or transaction markers close up), which is why group offsets
are *translated*, as MirrorMaker 2's checkpoints are: a group committed at source offset C
gets, on the destination, the offset of the first copied record at or after C.

Resuming without duplicates, and without marking records: progress lives in the destination,
in the compacted topic ``__logmq_mirror``, as pairs (next source offset S, destination end D)
written after the destination acknowledged everything before them. A rerun reads the last
pair, sees the destination end E >= D, and knows the E - D records after D are the next E - D
source records from S (one writer per destination partition, in order), so it skips exactly
those. A run that dies anywhere leaves nothing copied twice.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import xxhash

from logmq.cluster import connect
from logmq.config import TOPIC_CONFIGS
from logmq.errors import LogMQError, UnsupportedOnClusterError
from logmq.types import Record, TopicPartition

__all__ = ["mirror", "MirrorReport", "PartitionReport", "MirrorError", "CHECKPOINT_TOPIC"]

CHECKPOINT_TOPIC = "__logmq_mirror"
#: records copied between checkpoints (each checkpoint waits for the destination's acks)
CHUNK = 5000
#: how long a partition may show no new records before its copy counts as caught up, for
#: sources whose last offsets hold no records (transaction markers, compaction)
IDLE_S = 3.0

Progress = Callable[[TopicPartition, int, int], None]


class MirrorError(LogMQError):
    """The destination cannot take the copy as asked (shape conflict, foreign data)."""


@dataclass
class PartitionReport:
    tp: TopicPartition
    copied: int = 0
    src_count: int = 0
    dst_count: int = 0
    src_checksum: str = ""
    dst_checksum: str = ""

    @property
    def ok(self) -> bool:
        return self.src_count == self.dst_count and self.src_checksum == self.dst_checksum


@dataclass
class MirrorReport:
    partitions: list[PartitionReport] = field(default_factory=list)
    groups: dict[str, dict[TopicPartition, tuple[int, int]]] = field(default_factory=dict)
    group_errors: dict[str, str] = field(default_factory=dict)
    skipped_configs: dict[str, list[str]] = field(default_factory=dict)
    verified: bool = False
    #: records copied by every pass of a --follow run (one pass: == copied)
    total_copied: int = 0

    @property
    def ok(self) -> bool:
        return not self.group_errors and (not self.verified
                                          or all(p.ok for p in self.partitions))

    @property
    def copied(self) -> int:
        return sum(p.copied for p in self.partitions)


def _match(name: str, patterns: list[str] | None) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _is_cluster(log: Any) -> bool:
    return str(getattr(log, "path", "")).startswith("kafka://")


# ---------------------------------------------------------------------- reading
def scan(log: Any, tp: TopicPartition, start: int, stop: int) -> Iterator[Record]:
    """Records of ``tp`` with ``start <= offset < stop``, in order (bounded by IDLE_S when
    the last offsets before ``stop`` hold no records)."""
    if start >= stop:
        return
    c = log.consumer(auto_offset_reset="earliest")
    try:
        c.assign([tp])
        c.seek(tp, start)
        idle_since = time.monotonic()
        while c.position(tp) < stop:
            batch = c.poll(0.5)
            if not batch:
                if time.monotonic() - idle_since > IDLE_S:
                    return
                continue
            idle_since = time.monotonic()
            for r in batch:
                if r.offset >= stop:
                    return
                yield r
    finally:
        c.close(commit=False)


def _digest(records: Iterator[Record]) -> tuple[int, str]:
    h = xxhash.xxh64()
    n = 0
    for r in records:
        n += 1
        for part in (r.key, r.value):
            h.update(b"\x00" if part is None else b"\x01%d:" % len(part) + part)
        h.update(b"%d|%d|" % (r.timestamp, len(r.headers)))
        for hk, hv in r.headers:
            hb = hk.encode()
            h.update(b"%d:" % len(hb) + hb + (b"\x00" if hv is None else b"%d:" % len(hv) + hv))
    return n, h.hexdigest()


# ---------------------------------------------------------------------- checkpoints
class Checkpoints:
    """The destination's ``__logmq_mirror`` topic: latest JSON value per key."""

    def __init__(self, dst: Any, source_id: str) -> None:
        self.dst = dst
        self.source_id = source_id
        dst.create_topic(CHECKPOINT_TOPIC, 1, {"cleanup.policy": "compact"}, exist_ok=True)
        self.tp = TopicPartition(CHECKPOINT_TOPIC, 0)
        self.state: dict[str, dict[str, Any]] = {}
        end = dst.end_offset(self.tp)
        for r in scan(dst, self.tp, dst.start_offset(self.tp), end):
            if r.key is not None and r.value is not None:
                self.state[r.key.decode()] = json.loads(r.value)
        self._p = dst.producer(linger_ms=0)

    def key(self, kind: str, *parts: object) -> str:
        return "|".join([self.source_id, kind, *map(str, parts)])

    def get(self, kind: str, *parts: object) -> dict[str, Any] | None:
        return self.state.get(self.key(kind, *parts))

    def put(self, kind: str, *parts: object, **value: Any) -> None:
        k = self.key(kind, *parts)
        self.state[k] = value
        self._p.send(CHECKPOINT_TOPIC, json.dumps(value).encode(), key=k.encode(),
                     partition=0).result(60)

    def close(self) -> None:
        self._p.close()


# ---------------------------------------------------------------------- copying
def _copy_topic_shape(src: Any, dst: Any, topic: str, report: MirrorReport) -> int:
    desc = src.describe_topic(topic)
    n = len(desc.partitions)
    config = dict(desc.overrides)
    if _is_cluster(dst):  # Kafka has no logmq-only keys (fsync, max.queue.depth...)
        dropped = sorted(k for k in config if k in TOPIC_CONFIGS and not TOPIC_CONFIGS[k].kafka)
        dropped += sorted(k for k in config if k not in TOPIC_CONFIGS)
        for k in dropped:
            config.pop(k)
        if dropped:
            report.skipped_configs[topic] = dropped
    else:
        config = {k: v for k, v in config.items() if k in TOPIC_CONFIGS}
    dst.create_topic(topic, n, config, exist_ok=True)
    have = dst.partitions_for(topic)
    if have < n:
        dst.create_partitions(topic, n)
    elif have > n:
        raise MirrorError(f"destination topic {topic!r} has {have} partitions, source {n}: "
                          "records could not keep their partition")
    return n


def _copy_partition(src: Any, dst: Any, producer: Any, cps: Checkpoints, tp: TopicPartition,
                    progress: Progress | None) -> tuple[int, int, int]:
    """Copy what is new in ``tp``; returns (records copied, source base, destination base)."""
    s_start, s_end = src.offsets(tp)
    d_end = dst.end_offset(tp)
    base = cps.get("base", tp.topic, tp.partition)
    if base is None:
        if d_end != dst.start_offset(tp):
            raise MirrorError(f"destination {tp.topic}-{tp.partition} holds records that no "
                              "mirror checkpoint accounts for: refusing to mix them")
        cps.put("base", tp.topic, tp.partition, src=s_start, dst=d_end)
        cps.put("pos", tp.topic, tp.partition, src=s_start, dst=d_end)
        base = {"src": s_start, "dst": d_end}
    pos = cps.get("pos", tp.topic, tp.partition) or base
    src_next, dst_mark = int(pos["src"]), int(pos["dst"])
    skip = d_end - dst_mark  # copied after the last checkpoint: the next `skip` records
    if skip < 0:
        raise MirrorError(f"destination {tp.topic}-{tp.partition} is shorter than its mirror "
                          f"checkpoint ({d_end} < {dst_mark}): it was truncated or recreated")
    copied = 0
    since = 0
    dst_next = d_end
    for r in scan(src, tp, max(src_next, s_start), s_end):
        if skip > 0:
            skip -= 1
            src_next = r.offset + 1
            continue
        producer.send(tp.topic, r.value, key=r.key, headers=r.headers or None,
                      partition=tp.partition, timestamp=r.timestamp)
        copied += 1
        since += 1
        src_next = r.offset + 1
        dst_next += 1
        if since >= CHUNK:
            producer.flush()
            cps.put("pos", tp.topic, tp.partition, src=src_next, dst=dst.end_offset(tp))
            since = 0
            if progress is not None:
                progress(tp, copied, s_end - s_start)
    producer.flush()
    if skip == 0:
        cps.put("pos", tp.topic, tp.partition, src=max(src_next, s_end), dst=dst.end_offset(tp))
    if progress is not None:
        progress(tp, copied, s_end - s_start)
    return copied, int(base["src"]), int(base["dst"])


def _translate(src: Any, cps: Checkpoints, tp: TopicPartition, committed: int) -> int:
    """The destination offset of the first copied record at or after source ``committed``."""
    pos = cps.get("pos", tp.topic, tp.partition)
    base = cps.get("base", tp.topic, tp.partition)
    if pos is None or base is None:
        raise MirrorError(f"{tp.topic}-{tp.partition} was not mirrored")
    if committed >= int(pos["src"]):
        return int(pos["dst"])
    start = max(int(base["src"]), src.start_offset(tp))
    if committed <= start:
        return int(base["dst"])
    n = sum(1 for _ in scan(src, tp, start, committed))
    return int(base["dst"]) + n


def _copy_groups(src: Any, dst: Any, cps: Checkpoints, topics: set[str],
                 patterns: list[str] | None, report: MirrorReport) -> None:
    try:
        listed = src.groups.list_groups()
    except UnsupportedOnClusterError:
        return
    for gid, _ptype, _state in listed:
        if not _match(gid, patterns):
            continue
        offsets = src.groups.fetch_offsets(gid, None)
        plan: dict[tuple[str, int], tuple[int, str | None]] = {}
        shown: dict[TopicPartition, tuple[int, int]] = {}
        for (t, p), (off, meta) in offsets.items():
            if t not in topics or off < 0:
                continue
            tp = TopicPartition(t, p)
            new = _translate(src, cps, tp, off)
            plan[(t, p)] = (new, meta)
            shown[tp] = (off, new)
        if not plan:
            continue
        try:
            dst.groups.commit_offsets(gid, -1, "", plan)
            report.groups[gid] = shown
        except LogMQError as e:  # an active group on the destination refuses admin commits
            report.group_errors[gid] = f"{type(e).__name__}: {e}"


def mirror(source: Any, destination: Any, *, topics: list[str] | None = None,
           groups: list[str] | None = None, verify: bool = True, copy_groups: bool = True,
           progress: Progress | None = None, follow: bool = False,
           follow_interval: float = 1.0, follow_for: float | None = None,
           stop: Callable[[], bool] | None = None) -> MirrorReport:
    """Copy ``topics`` (fnmatch patterns, default all) and ``groups`` (patterns) from
    ``source`` to ``destination`` (targets for :func:`logmq.connect`, or open logs).

    With ``follow`` it repeats after ``follow_interval`` seconds until ``stop()`` is true or
    ``follow_for`` seconds passed, keeping the destination in step; the report is the last
    pass's plus the running total of copied records.
    """
    src = connect(source) if isinstance(source, str) else source
    dst = connect(destination) if isinstance(destination, str) else destination
    try:
        source_id = str(getattr(src, "path", source))
        cps = Checkpoints(dst, source_id)
        t0 = time.monotonic()
        total = 0
        try:
            while True:
                report = _pass(src, dst, cps, topics, groups, verify and not follow,
                               copy_groups, progress)
                total += report.copied
                if not follow or (stop is not None and stop()) or (
                        follow_for is not None and time.monotonic() - t0 >= follow_for):
                    break
                time.sleep(follow_interval)  # the follow loop's pace, not a synchronisation
            if follow and verify:
                report = _pass(src, dst, cps, topics, groups, True, copy_groups, progress)
                total += report.copied
            report.total_copied = total
            return report
        finally:
            cps.close()
    finally:
        if src is not source:
            src.close()
        if dst is not destination:
            dst.close()


def _pass(src: Any, dst: Any, cps: Checkpoints, topics: list[str] | None,
          groups: list[str] | None, verify: bool, copy_groups: bool,
          progress: Progress | None) -> MirrorReport:
    report = MirrorReport()
    chosen = [t for t in src.list_topics()
              if t != CHECKPOINT_TOPIC and not t.startswith("__") and _match(t, topics)]
    producer = dst.producer(idempotent=True, linger_ms=5)
    try:
        for topic in chosen:
            n = _copy_topic_shape(src, dst, topic, report)
            for p in range(n):
                tp = TopicPartition(topic, p)
                copied, s_base, d_base = _copy_partition(src, dst, producer, cps, tp, progress)
                pr = PartitionReport(tp, copied)
                if verify:  # everything mirrored so far, from both checkpoints' bases
                    pr.src_count, pr.src_checksum = _digest(scan(
                        src, tp, max(s_base, src.start_offset(tp)), src.end_offset(tp)))
                    pr.dst_count, pr.dst_checksum = _digest(scan(
                        dst, tp, d_base, dst.end_offset(tp)))
                report.partitions.append(pr)
    finally:
        producer.close()
    report.verified = verify
    if copy_groups:
        _copy_groups(src, dst, cps, set(chosen), groups, report)
    return report
