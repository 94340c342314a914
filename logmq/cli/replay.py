"""``logmq replay``: copy a range of a topic to stdout or into another topic, at a set pace.

What makes a replay faithful: keys, values, headers *and timestamps* are kept (records are
re-encoded with their own timestamps, not stamped "now" as a producer would), and a record
stays in its partition number when the destination has enough partitions, so per-partition
order and key placement survive. Otherwise records are placed by key like the default
producer (xxh3), null keys round-robin.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
from typing import IO, TYPE_CHECKING, Any

import click

from logmq.broker.partitioner import key_partition
from logmq.cli.common import (
    TIME,
    TokenBucket,
    open_broker,
    read_records,
    record_to_json,
    target_options,
)
from logmq.cli.target import ClusterSink, check_partition, is_cluster, open_cluster
from logmq.codec.records import encode_batch
from logmq.types import Record, TopicPartition

if TYPE_CHECKING:
    from logmq.broker.broker import Broker

__all__ = ["replay"]

_MAX_BATCH_BYTES = 1 << 20
_MAX_BATCH_RECORDS = 5000


class _DestWriter:
    """Buffers records per destination partition and appends them as v2 batches."""

    def __init__(self, log: Broker, topic: str, same_partition: bool, batch_records: int
                 ) -> None:
        self.log = log
        self.topic = topic
        self.n = log.partitions_for(topic)
        self.same = same_partition
        self.batch_records = batch_records
        limit = int(log.topic_config(topic)["max.message.bytes"])  # also over --bootstrap
        self.batch_bytes = max(1, min(_MAX_BATCH_BYTES, limit // 2))
        self.buf: dict[int, list[tuple[Any, ...]]] = {}
        self.ts: dict[int, list[int]] = {}
        self.size: dict[int, int] = {}
        self.rr = itertools.count()
        self.written = 0
        self.sink = ClusterSink(log) if ClusterSink.wanted(log) else None  # a Kafka cluster

    def _partition(self, r: Record) -> int:
        if self.same:
            return r.partition
        if r.key is None:
            return next(self.rr) % self.n
        return key_partition(bytes(r.key), self.n)

    def add(self, r: Record) -> None:
        p = self._partition(r)
        recs = self.buf.setdefault(p, [])
        recs.append((r.key, r.value, r.headers) if r.headers else (r.key, r.value))
        self.ts.setdefault(p, []).append(r.timestamp)
        size = 24 + len(r.key or b"") + len(r.value or b"") + sum(
            len(k) + len(v or b"") + 8 for k, v in r.headers or ())
        self.size[p] = self.size.get(p, 0) + size
        if len(recs) >= self.batch_records or self.size[p] >= self.batch_bytes:
            self._flush(p)

    def _flush(self, p: int) -> None:
        recs = self.buf.pop(p, None)
        ts = self.ts.pop(p, None)
        self.size.pop(p, None)
        if recs and ts:
            if self.sink is not None:
                self.sink.send(self.topic, p, recs, ts)
            else:
                self.log.append_batches((self.topic, p), encode_batch(recs, timestamps=ts))
            self.written += len(recs)

    def flush(self) -> None:
        for p in list(self.buf):
            self._flush(p)
        if self.sink is not None:
            self.sink.close()


@click.command()
@click.argument("src")
@click.option("--to", "dest", metavar="DEST",
              help="append into topic DEST (created like SRC if missing); default: stdout")
@click.option("--partition", "-p", "partitions", type=click.IntRange(min=0), multiple=True,
              help="replay only this partition, repeatable (default: all)")
@click.option("--from-offset", type=click.IntRange(min=0), help="first offset (inclusive)")
@click.option("--to-offset", type=click.IntRange(min=0), help="stop offset (exclusive)")
@click.option("--from-time", type=TIME, help="window start (inclusive)")
@click.option("--to-time", type=TIME, help="window end (exclusive)")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True),
              help="at most N records per second")
@click.option("--to-cluster", metavar="HOST:PORT|kafka://URL",
              help="write DEST (default: a topic named like SRC) on this cluster instead")
@click.option("--progress/--no-progress", default=None,
              help="progress bar on stderr [default: when stderr is a terminal]")
@target_options
def replay(src: str, dest: str | None, partitions: tuple[int, ...], from_offset: int | None,
           to_offset: int | None, from_time: int | None, to_time: int | None,
           rate: float | None, to_cluster: str | None, progress: bool | None,
           data: str) -> None:
    """Copy records of SRC to stdout (JSON lines) or into topic DEST.

    The range is [--from-offset, --to-offset) in each selected partition, or the time window
    [--from-time, --to-time) mapped to offsets per partition by timestamp lookup (as Kafka's
    offsetsForTimes does); without bounds, the whole log as it is when the command starts.
    Keys, headers and timestamps are kept.
    """
    if (from_offset is not None or to_offset is not None) and (
            from_time is not None or to_time is not None):
        raise click.UsageError("use either offsets (--from/--to-offset) or times "
                               "(--from/--to-time), not both")
    with open_broker(data) as log, contextlib.ExitStack() as stack:
        out_log = log
        if to_cluster:  # another cluster: logmq/cli/target.py
            out_log = stack.enter_context(open_cluster(to_cluster))
            dest = dest or src
        n = log.partitions_for(src)
        for p in partitions:
            check_partition(log, src, p)  # InvalidPartitionError before anything is written
        tps = [TopicPartition(src, p) for p in (sorted(set(partitions)) or range(n))]
        ranges = _ranges(log, tps, from_offset, to_offset, from_time, to_time)
        total = sum(stop - start for start, stop in ranges.values())
        writer: _DestWriter | None = None
        if dest is not None:
            if dest not in out_log.list_topics():
                out_log.create_topic(dest, partitions=n)
                click.echo(f"created topic {dest!r} with {n} partition(s)", err=True)
            batch = _MAX_BATCH_RECORDS if rate is None else max(1, min(500, int(rate // 10)))
            writer = _DestWriter(out_log, dest, out_log.partitions_for(dest) >= n, batch)
        copied = _copy(log, ranges, writer, rate, total, progress)
    where = f"topic {dest!r}" if dest is not None else "stdout"
    if to_cluster:
        where += f" on {to_cluster}"
    msg = f"replayed {copied} record(s) from {src!r} to {where}"
    click.echo(msg, err=dest is None)


def _ranges(log: Broker, tps: list[TopicPartition], from_offset: int | None,
            to_offset: int | None, from_time: int | None, to_time: int | None
            ) -> dict[TopicPartition, tuple[int, int]]:
    """[start, stop) per partition, clamped to what the log holds (empty ranges dropped)."""
    out: dict[TopicPartition, tuple[int, int]] = {}
    by_from = log.offsets_for_times({tp: from_time for tp in tps}) if from_time is not None \
        else {}
    by_to = log.offsets_for_times({tp: to_time for tp in tps}) if to_time is not None else {}
    for tp in tps:
        lo, hi = log.offsets(tp)
        start, stop = lo, hi
        if from_offset is not None:
            start = min(max(from_offset, lo), hi)
        if to_offset is not None:
            stop = min(max(to_offset, lo), hi)
        if from_time is not None:
            hit = by_from[tp]
            start = hit.offset if hit is not None else hi
        if to_time is not None:
            hit = by_to[tp]
            stop = hit.offset if hit is not None else hi
        if stop > start:
            out[tp] = (start, stop)
    return out


def _copy(log: Broker, ranges: dict[TopicPartition, tuple[int, int]],
          writer: _DestWriter | None, rate: float | None, total: int,
          progress: bool | None) -> int:
    if not ranges:
        return 0
    consumer = log.consumer(max_poll_records=2000 if rate is None else max(1, int(rate // 10)))
    consumer.assign(list(ranges))
    for tp, (start, _) in ranges.items():
        consumer.seek(tp, start)
    stops = {tp: stop for tp, (_, stop) in ranges.items()}
    bucket = TokenBucket(rate) if rate is not None else None
    out: IO[bytes] = click.get_binary_stream("stdout")
    show = sys.stderr.isatty() if progress is None else progress
    copied = 0
    bar = click.progressbar(length=total, label="replaying", file=sys.stderr, width=30,
                            show_pos=True)
    if show and not getattr(bar, "_is_atty", True):
        bar._is_atty = True  # --progress asked for it on a pipe: render anyway
    try:
        if show:
            bar.__enter__()
        for chunk in read_records(consumer, stop_offsets=stops, wait=is_cluster(log)):
            for r in chunk:
                if bucket is not None:
                    bucket.acquire()
                if writer is not None:
                    writer.add(r)
                else:
                    out.write(record_to_json(r).encode("utf-8") + b"\n")
                copied += 1
            if writer is None:
                out.flush()
            if show:
                bar.update(len(chunk))
        if writer is not None:
            writer.flush()
        if show and bar.pos < total:  # compaction gaps: fewer records than offsets
            bar.update(total - bar.pos)
    finally:
        consumer.close(commit=False)
        if show:
            bar.__exit__(None, None, None)
    return copied
