"""``logmq produce`` and ``logmq consume``: lines on stdin into a topic, records out to stdout."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import click

from logmq.cli.common import (
    TIME,
    open_broker,
    parse_kv,
    parse_time,
    read_records,
    record_from_json,
    record_to_json,
    target_options,
)
from logmq.cli.target import check_partition, is_cluster
from logmq.errors import OffsetOutOfRangeError, UnknownTopicError
from logmq.types import Record, TopicPartition

if TYPE_CHECKING:
    from logmq.broker.broker import Broker
    from logmq.broker.producer import RecordFuture

__all__ = ["produce", "consume"]


# ---------------------------------------------------------------------- produce
class _Summary:
    """Offsets per partition, filled from send callbacks so no future list grows with input."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ranges: dict[int, list[int]] = {}
        self.count = 0
        self.error: BaseException | None = None

    def __call__(self, fut: RecordFuture) -> None:
        err = fut.exception()
        with self.lock:
            if err is not None:
                self.error = self.error or err
                return
            md = fut.result()
            r = self.ranges.get(md.partition)
            if r is None:
                self.ranges[md.partition] = [md.offset, md.offset]
            else:
                r[0] = min(r[0], md.offset)
                r[1] = max(r[1], md.offset)
            self.count += 1


def _strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\n"):
        line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
    return line


@click.command()
@click.argument("topic")
@click.option("--key-separator", "-K", metavar="SEP",
              help="split each line at the first SEP into key and value (else: no key)")
@click.option("--header", "-H", "headers", multiple=True, metavar="KEY=VALUE",
              help="header added to every record, repeatable")
@click.option("--partition", "-p", type=click.IntRange(min=0),
              help="write every record to this partition (default: by key)")
@click.option("--null-marker", metavar="TEXT",
              help="a key or value equal to TEXT is sent as null (a value: a tombstone)")
@click.option("--format", "fmt", type=click.Choice(["raw", "json"]), default="raw",
              show_default=True, help="json: lines as 'consume --format json' prints them")
@click.option("--partitions", "new_partitions", type=click.IntRange(min=1),
              help="partitions of TOPIC if this command creates it  [default: the broker's "
                   "num_partitions, 1 unless configured]")
@click.option("--no-create", is_flag=True, help="fail if TOPIC does not exist")
@target_options
def produce(topic: str, key_separator: str | None, headers: tuple[str, ...],
            partition: int | None, null_marker: str | None, fmt: str,
            new_partitions: int | None, no_create: bool, data: str) -> None:
    """Send each line of stdin to TOPIC as one record; print how many and their offsets.

    A missing TOPIC is created first (broker defaults, --partitions) unless --no-create.
    Lines are sent as they arrive (an interactive terminal works); records are acknowledged
    once written to the segment file, as with the embedded producer.
    """
    if no_create and new_partitions is not None:
        raise click.UsageError("--partitions is for creating TOPIC; it contradicts --no-create")
    if fmt == "json" and key_separator is not None:
        raise click.UsageError("--key-separator applies to --format raw only")
    common_headers: list[tuple[str, bytes | None]] = [
        (k, v.encode()) for k, v in parse_kv(headers, "--header").items()]
    sep = key_separator.encode() if key_separator is not None else None
    null = null_marker.encode() if null_marker is not None else None
    stdin: IO[bytes] = click.get_binary_stream("stdin")
    with open_broker(data, create=not no_create) as log:
        try:
            log.partitions_for(topic)  # unknown topic: fail before reading any input
        except UnknownTopicError:
            if no_create:
                raise
            log.create_topic(topic, partitions=new_partitions, exist_ok=True)
            click.echo(f"created topic {topic!r} with {log.partitions_for(topic)} "
                       "partition(s)", err=True)
        summary = _Summary()
        with log.producer(linger_ms=5) as producer:
            for lineno, raw in enumerate(stdin, 1):
                line = _strip_eol(raw)
                ts: int | None = None
                hdrs: list[tuple[str, bytes | None]] = list(common_headers)
                if fmt == "json":
                    if not line.strip():
                        continue
                    try:
                        key, value, line_headers, ts = record_from_json(line.decode("utf-8"))
                    except (ValueError, KeyError, TypeError, IndexError) as e:
                        raise click.ClickException(f"line {lineno}: not a record: {e}") from None
                    hdrs.extend(line_headers)
                elif sep is not None:
                    key_part, found, value_part = line.partition(sep)
                    if not found:
                        raise click.ClickException(
                            f"line {lineno}: no key separator {key_separator!r} "
                            f"({summary.count} earlier record(s) were sent)")
                    key, value = key_part, value_part
                else:
                    key, value = None, line
                if null is not None:
                    key = None if key == null else key
                    value = None if value == null else value
                fut = producer.send(topic, value, key=key, headers=hdrs or None,
                                    partition=partition, timestamp=ts)
                fut.add_done_callback(summary)
        if summary.error is not None:
            raise summary.error
    parts = "; ".join(
        f"partition {p}: offset{'s' if a != b else ''} {a}{f'..{b}' if a != b else ''}"
        for p, (a, b) in sorted(summary.ranges.items()))
    click.echo(f"produced {summary.count} record(s) to {topic!r}" + (f" ({parts})" if parts else ""))


# ---------------------------------------------------------------------- consume
def _parse_until(text: str) -> tuple[int | None, int | None]:
    """``--until``: a plain integer is an (exclusive) offset, ``@MS`` or a datetime a time."""
    s = text.strip()
    if s.isdigit():
        return int(s), None
    if s.startswith("@") and s[1:].isdigit():
        return None, int(s[1:])
    try:
        return None, parse_time(s)
    except ValueError as e:
        raise click.BadParameter(f"{e}; or a plain offset, or @EPOCH_MS",
                                 param_hint="--until") from None


def start_positions(log: Broker, tps: list[TopicPartition], *, from_beginning: bool,
                    from_end: bool, offset: int | None, from_time: int | None
                    ) -> dict[TopicPartition, int]:
    """Where an explicit start option puts each partition (empty: no option was given).

    A negative ``offset`` counts back from the end (``-10``: the last ten offsets); an offset
    outside the log is an error rather than a silent reset.
    """
    out: dict[TopicPartition, int] = {}
    if from_time is not None:
        found = log.offsets_for_times({tp: from_time for tp in tps})
        for tp in tps:
            hit = found[tp]
            out[tp] = hit.offset if hit is not None else log.end_offset(tp)
        return out
    for tp in tps:
        start, end = log.offsets(tp)
        if from_beginning:
            out[tp] = start
        elif from_end:
            out[tp] = end
        elif offset is not None:
            pos = end + offset if offset < 0 else offset
            if not start <= pos <= end:
                raise OffsetOutOfRangeError(tp.topic, tp.partition, pos, start, end)
            out[tp] = pos
    return out


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm() -> None:
    """Make SIGTERM end ``--follow`` like ^C does: positions committed, log closed cleanly.

    Without it ``kill``/``docker stop`` would skip the clean close and the next open would
    run crash recovery.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _writer(fmt: str, key_separator: str | None) -> Callable[[Record, IO[bytes]], None]:
    sep = key_separator.encode() if key_separator is not None else None

    def raw(r: Record, out: IO[bytes]) -> None:
        if sep is not None:
            out.write(b"null" if r.key is None else bytes(r.key))
            out.write(sep)
        out.write(b"null" if r.value is None else bytes(r.value))
        out.write(b"\n")

    def as_json(r: Record, out: IO[bytes]) -> None:
        out.write(record_to_json(r).encode("utf-8"))
        out.write(b"\n")

    return as_json if fmt == "json" else raw


@click.command()
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="start at the log start")
@click.option("--from-end", is_flag=True, help="start at the log end (with --follow)")
@click.option("--offset", type=int, help="start at this offset (negative: from the end)")
@click.option("--from-time", type=TIME, help="start at the first record at/after this time")
@click.option("--partition", "-p", type=click.IntRange(min=0), help="read only this partition")
@click.option("--group", "-g", help="consume as this consumer group, committing as it goes")
@click.option("--format", "fmt", type=click.Choice(["raw", "json"]), default="raw",
              show_default=True)
@click.option("--key-separator", metavar="SEP", help="raw format: print KEY SEP VALUE")
@click.option("--max", "max_records", type=click.IntRange(min=1), help="stop after N records")
@click.option("--until", metavar="OFFSET|TIME",
              help="stop before this offset (a plain integer) or time (@EPOCH_MS or a datetime)")
@click.option("--follow", "-f", is_flag=True,
              help="keep waiting at the end of the log (stop with ^C or SIGTERM); while it "
                   "waits on a data directory no other process can write to it, so to follow "
                   "a live log use --bootstrap against `logmq serve`")
@target_options
def consume(topic: str, from_beginning: bool, from_end: bool, offset: int | None,
            from_time: int | None, partition: int | None, group: str | None, fmt: str,
            key_separator: str | None, max_records: int | None, until: str | None,
            follow: bool, data: str) -> None:
    """Print TOPIC's records, one per line, and exit at the end of the log.

    Start: the group's committed offsets with --group (else the beginning), unless
    --from-beginning, --from-end, --offset or --from-time says otherwise. With --group and
    without --partition the command joins the group like any consumer; with --partition it
    reads that partition and commits as an admin (the group must have no other members).
    Raw format writes values as they are (null as 'null'); json writes one object per record
    with key/value as UTF-8 text or base64.
    """
    starts_given = sum([from_beginning, from_end, offset is not None, from_time is not None])
    if starts_given > 1:
        raise click.UsageError(
            "choose one of --from-beginning, --from-end, --offset, --from-time")
    if key_separator is not None and fmt != "raw":
        raise click.UsageError("--key-separator applies to --format raw only")
    stop_offset, stop_time = _parse_until(until) if until is not None else (None, None)
    write = _writer(fmt, key_separator)
    out = click.get_binary_stream("stdout")
    with open_broker(data) as log:
        n = log.partitions_for(topic)
        if partition is not None:
            check_partition(log, topic, partition)  # InvalidPartitionError before anything
        if offset is not None and partition is None and n > 1:
            raise click.UsageError(f"--offset needs --partition ({topic!r} has {n} partitions)")
        tps = ([TopicPartition(topic, partition)] if partition is not None
               else [TopicPartition(topic, p) for p in range(n)])

        def positions(assigned: list[TopicPartition]) -> dict[TopicPartition, int]:
            return start_positions(log, assigned, from_beginning=from_beginning,
                                   from_end=from_end, offset=offset, from_time=from_time)

        config: dict[str, Any] = {"auto_offset_reset": "earliest", "max_poll_records": 2000}
        if group is not None:
            config.update(group=group, enable_auto_commit=False, client_id="logmq-cli")
        consumer = log.consumer(**config)
        try:
            if group is not None and partition is None:
                def on_assign(assigned: list[TopicPartition]) -> None:
                    for tp, pos in positions(list(assigned)).items():
                        consumer.seek(tp, pos)

                consumer.subscribe([topic], on_assign=on_assign)
            else:
                consumer.assign(tps)
                for tp, pos in positions(tps).items():
                    consumer.seek(tp, pos)
            if follow:
                _stop_on_sigterm()
            stops = None
            if stop_offset is not None:
                stops = {tp: stop_offset for tp in tps}
            wait = is_cluster(log)
            if wait and not follow:  # a cluster: end at the log end as it is now
                stops = {tp: min(log.end_offset(tp), (stops or {}).get(tp, 1 << 62))
                         for tp in tps}
            try:
                emitted = 0
                for chunk in read_records(consumer, stop_offsets=stops, stop_time=stop_time,
                                          follow=follow, limit=max_records, wait=wait):
                    for r in chunk:
                        write(r, out)
                    out.flush()
                    emitted += len(chunk)
                    if group is not None:
                        last: dict[TopicPartition, int] = {}
                        for r in chunk:
                            last[r.tp] = r.offset + 1
                        consumer.commit(last)
                cut = until is not None or (max_records is not None and emitted >= max_records)
                if group is not None and not cut:
                    # Reached the end of the log: commit the positions, which may lie past
                    # the last record printed (compaction gaps, control batches), so the
                    # group's lag reads 0 rather than counting offsets that hold nothing.
                    consumer.commit({tp: consumer.position(tp) for tp in consumer.assignment()})
            except KeyboardInterrupt:  # --follow ends with ^C: a normal way to stop
                pass
        finally:
            consumer.close(commit=False)
