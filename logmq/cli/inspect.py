"""``logmq dump``, ``verify``, ``stats`` and ``compact``: look inside, check, and clean a log.

``dump`` and ``verify`` read segment files directly instead of opening the log: opening runs
recovery, which *repairs* (truncates at the first bad batch of an unchecked segment), and a
checking tool must report damage, not remove it. ``verify`` still takes the directory's lock,
so it never races a writer and never reports a half-written tail as corruption; ``dump``
takes no lock (it is a viewer, like Kafka's DumpLogSegments).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import click

from logmq.cli.common import (
    data_option,
    open_broker,
    print_table,
    show_bytes,
    target_options,
    utc_iso,
)
from logmq.codec.batch import (
    COMPRESSION_MASK,
    HEADER_SIZE,
    BatchHeader,
    batch_size_at,
    parse_header,
    validate_batch,
)
from logmq.codec.seal import check_sealed_framing, is_sealed, sealed_key_id
from logmq.codec.validate import check_stored_batch
from logmq.errors import CorruptRecordError, DirectoryLockedError, LogMQError
from logmq.storage.files import LEFTOVER_SUFFIXES

__all__ = ["dump", "verify", "stats", "compact", "scan_log", "verify_partition"]

_CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
_OFFSET_ENTRY = struct.Struct(">II")
_TIME_ENTRY = struct.Struct(">qI")
_SEGMENT_RE = re.compile(r"^(\d{20})\.log$")
_PARTITION_RE = re.compile(r"^(.+)-(\d+)$")
_LEFTOVER = LEFTOVER_SUFFIXES


@dataclass
class BatchInfo:
    """One batch as found in a ``.log`` file; ``error`` set when it failed validation."""

    position: int
    header: BatchHeader | None
    size: int
    error: str | None = None


@dataclass
class Problem:
    path: str
    position: int | None
    message: str

    def __str__(self) -> str:
        where = f" at byte {self.position}" if self.position is not None else ""
        return f"{self.path}{where}: {self.message}"


@dataclass
class SegmentReport:
    path: str
    base_offset: int
    batches: int = 0
    records: int = 0
    next_offset: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------- scanning
def _map(path: str) -> tuple[Any, memoryview | bytes]:
    """Read-only view of a file (mmap; empty files cannot be mapped)."""
    f = open(path, "rb")  # noqa: SIM115 - closed by the caller via the returned handle
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        f.close()
        return None, b""
    m = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
    f.close()
    return m, memoryview(m)


def scan_log(view: memoryview | bytes) -> Iterator[BatchInfo]:
    """Every batch of a segment's bytes, validated (framing, magic, counts, CRC-32C).

    A batch with a bad CRC but sane framing is reported and skipped over (its length field
    still says where the next one starts); broken framing ends the scan, since nothing after
    it can be located.
    """
    pos = 0
    end = len(view)
    while pos < end:
        size = batch_size_at(view, pos)
        if size < 0:
            yield BatchInfo(pos, None, end - pos, f"truncated batch: {end - pos} trailing bytes")
            return
        try:
            h = validate_batch(view, pos)
        except CorruptRecordError as e:
            try:
                h = parse_header(view, pos)
            except CorruptRecordError:
                yield BatchInfo(pos, None, end - pos, e.args[0])
                return
            framing_ok = HEADER_SIZE <= h.size and pos + h.size <= end
            yield BatchInfo(pos, h, h.size, e.args[0])
            if not framing_ok:
                return
            pos += h.size
            continue
        yield BatchInfo(pos, h, h.size)
        pos += h.size


def _read_entries(path: str, entry: struct.Struct) -> tuple[list[tuple[int, int]], str | None]:
    with open(path, "rb") as f:
        raw = f.read()
    err = None
    if len(raw) % entry.size:
        err = f"length {len(raw)} is not a multiple of {entry.size} (torn last entry)"
        raw = raw[: len(raw) - len(raw) % entry.size]
    return [tuple(e) for e in entry.iter_unpack(raw)], err


def verify_segment(log_path: str, expected_min: int, deep: bool) -> SegmentReport:
    """Check one segment: every batch, offset order, and both index files against the log."""
    name = os.path.basename(log_path)
    base = int(name[:20])
    rep = SegmentReport(log_path, base, next_offset=max(base, expected_min))
    if base < expected_min:
        rep.problems.append(Problem(log_path, None, f"segment base offset {base} overlaps the "
                                                    f"previous segment (ends at {expected_min})"))
    starts: dict[int, int] = {}  # position -> base offset of the batch starting there
    lost_at: int | None = None  # where broken framing ended the scan
    max_ts = -1
    m, view = _map(log_path)
    try:
        nxt = max(base, expected_min)
        for b in scan_log(view):
            h = b.header
            if h is not None:
                starts[b.position] = h.base_offset
            if b.error is not None:
                rep.problems.append(Problem(log_path, b.position, b.error))
                if h is None:
                    lost_at = b.position
                continue
            assert h is not None
            if h.base_offset < nxt:
                rep.problems.append(Problem(
                    log_path, b.position,
                    f"offsets go backwards: batch starts at {h.base_offset}, expected >= {nxt}"))
            try:  # every record's framing, count and offset deltas, not only the CRC
                sealed = is_sealed(h)  # encrypted: framing and CRC only, no key needed
                if sealed:
                    check_sealed_framing(view, b.position, h)
                else:
                    check_stored_batch(view, b.position)
                if deep and not h.is_control and not sealed:
                    from logmq.codec.records import decode_batch

                    decode_batch(view, b.position, validate=False)
            except LogMQError as e:
                rep.problems.append(Problem(log_path, b.position, f"records: {e}"))
            nxt = max(nxt, h.next_offset)
            max_ts = max(max_ts, h.max_timestamp)
            rep.batches += 1
            rep.records += h.record_count
        rep.next_offset = nxt
    finally:
        if isinstance(view, memoryview):
            view.release()
        if m is not None:
            m.close()
    log_ok = not rep.problems  # else the segment's true offset/time range is unknown
    _verify_index(rep, starts, lost_at)
    _verify_time_index(rep, max_ts, complete=log_ok)
    return rep


def _verify_index(rep: SegmentReport, starts: dict[int, int], checked_until: int | None) -> None:
    path = rep.path[:-4] + ".index"
    if not os.path.exists(path):
        if starts:
            rep.warnings.append(f"{path}: missing (rebuilt when the log is opened)")
        return
    entries, err = _read_entries(path, _OFFSET_ENTRY)
    if err:
        rep.problems.append(Problem(path, len(entries) * _OFFSET_ENTRY.size, err))
    prev: tuple[int, int] | None = None
    for i, (rel, pos) in enumerate(entries):
        at = i * _OFFSET_ENTRY.size
        if prev is not None and (rel <= prev[0] or pos <= prev[1]):
            rep.problems.append(Problem(path, at, f"entry {i} ({rel} -> {pos}) is not after "
                                                  f"the previous one ({prev[0]} -> {prev[1]})"))
        prev = (rel, pos)
        if checked_until is not None and pos >= checked_until:
            continue  # beyond a corrupt batch: the log itself is already reported there
        if pos not in starts:
            rep.problems.append(Problem(path, at, f"entry {i} points at byte {pos} of the log, "
                                                  "which is not the start of a batch"))
        elif starts[pos] != rep.base_offset + rel:
            rep.problems.append(Problem(
                path, at, f"entry {i} says offset {rep.base_offset + rel} is at byte {pos}, "
                          f"but the batch there starts at offset {starts[pos]}"))


def _verify_time_index(rep: SegmentReport, max_ts: int, complete: bool) -> None:
    """Order, and (when the whole log could be scanned) offsets and timestamps in range."""
    path = rep.path[:-4] + ".timeindex"
    if not os.path.exists(path):
        return
    entries, err = _read_entries(path, _TIME_ENTRY)
    if err:
        rep.problems.append(Problem(path, len(entries) * _TIME_ENTRY.size, err))
    prev: tuple[int, int] | None = None
    for i, (ts, rel) in enumerate(entries):
        at = i * _TIME_ENTRY.size
        off = rep.base_offset + rel
        if prev is not None and (ts <= prev[0] or rel < prev[1]):
            rep.problems.append(Problem(path, at, f"entry {i} ({ts} -> {off}) is out of order"))
        prev = (ts, rel)
        if not complete:
            continue  # the log is damaged (reported already): its range is unknown
        if not rep.base_offset <= off < max(rep.next_offset, rep.base_offset + 1):
            rep.problems.append(Problem(path, at, f"entry {i} points at offset {off}, outside "
                                                  f"the segment [{rep.base_offset}, "
                                                  f"{rep.next_offset})"))
        elif ts > max_ts >= 0:
            rep.problems.append(Problem(path, at, f"entry {i} has timestamp {ts}, above the "
                                                  f"segment's largest ({max_ts})"))


def _segments(directory: str) -> list[str]:
    names = sorted(n for n in os.listdir(directory) if _SEGMENT_RE.match(n))
    return [os.path.join(directory, n) for n in names]


def verify_partition(directory: str, deep: bool = False) -> list[SegmentReport]:
    reports = []
    expected = 0
    for path in _segments(directory):
        rep = verify_segment(path, expected, deep)
        expected = rep.next_offset
        reports.append(rep)
    leftovers = [n for n in os.listdir(directory) if any(n.endswith(s) for s in _LEFTOVER)]
    if leftovers and reports:
        reports[-1].warnings.append(
            f"{directory}: files of an interrupted compaction ({', '.join(sorted(leftovers))}); "
            "they are finished or removed when the log is opened")
    return reports


def _partition_dirs(data: str) -> list[str]:
    """``<topic>-<n>`` directories of a data directory, by topic then partition number."""
    found: list[tuple[str, int, str]] = []
    for name in os.listdir(data):
        m = _PARTITION_RE.match(name)
        path = os.path.join(data, name)
        if m and os.path.isdir(path):
            found.append((m.group(1), int(m.group(2)), path))
    return [path for _, _, path in sorted(found)]


# ---------------------------------------------------------------------- commands
@click.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--records", "-r", "show_records", is_flag=True, help="print every record too")
@click.option("--index", "-i", "show_index", is_flag=True,
              help="print the .index and .timeindex entries")
def dump(path: str, show_records: bool, show_index: bool) -> None:
    """Print the batches of a segment file (.log/.index/.timeindex) or partition directory.

    Each batch: base and last offset, record count, byte position and size, timestamps, CRC
    check and attributes. Reads the files only (no lock, no recovery).
    """
    if os.path.isdir(path):
        logs = _segments(path)
        if not logs:
            raise click.ClickException(f"no segment (.log) files in {path!r}")
    elif path.endswith((".index", ".timeindex")):
        _dump_index_file(path)
        return
    elif path.endswith(".log"):
        logs = [path]
    else:
        raise click.BadParameter("expected a .log, .index or .timeindex file or a partition "
                                 "directory", param_hint="PATH")
    bad = 0
    for log_path in logs:
        bad += _dump_log(log_path, show_records)
        if show_index:
            for suffix in (".index", ".timeindex"):
                ipath = log_path[:-4] + suffix
                if os.path.exists(ipath):
                    _dump_index_file(ipath)
    if bad:
        raise click.ClickException(f"{bad} invalid batch(es) found")


def _dump_log(log_path: str, show_records: bool) -> int:
    click.echo(f"Dumping {log_path}")
    bad = 0
    m, view = _map(log_path)
    try:
        for b in scan_log(view):
            h = b.header
            if h is None:
                click.echo(f"position: {b.position} INVALID: {b.error}")
                bad += 1
                break
            a = h.attributes
            flags = [f"compression: {_CODECS.get(a & COMPRESSION_MASK, a & COMPRESSION_MASK)}"]
            if h.is_transactional:
                flags.append("transactional")
            if h.is_control:
                flags.append("control")
            if a & 0x08:
                flags.append("LogAppendTime")
            if is_sealed(h):
                flags.append(f"sealed(key={sealed_key_id(view, b.position, h)})")
            crc = "ok" if b.error is None else f"INVALID ({b.error})"
            click.echo(
                f"baseOffset: {h.base_offset} lastOffset: {h.last_offset} "
                f"count: {h.record_count} position: {b.position} size: {h.size} "
                f"baseTimestamp: {h.base_timestamp} maxTimestamp: {h.max_timestamp} "
                f"({utc_iso(h.max_timestamp)}) crc: {h.crc:#010x} {crc} "
                f"attributes: {a:#06x} {' '.join(flags)} producerId: {h.producer_id} "
                f"producerEpoch: {h.producer_epoch} baseSequence: {h.base_sequence}")
            if b.error is not None:
                bad += 1
                continue
            if show_records and is_sealed(h):
                click.echo("| records sealed (encryption at rest): not shown")
            elif show_records and not h.is_control:
                from logmq.codec.records import decode_batch

                try:
                    _, recs = decode_batch(view, b.position, validate=False)
                except LogMQError as e:
                    click.echo(f"| records not decodable: {e}")
                    bad += 1
                    continue
                for off, ts, key, value, headers in recs:
                    hs = ", ".join(f"{k}={show_bytes(v)}" for k, v in headers)
                    click.echo(f"| offset: {off} timestamp: {ts} key: {show_bytes(key)} "
                               f"value: {show_bytes(value)} headers: [{hs}]")
    finally:
        if isinstance(view, memoryview):
            view.release()
        if m is not None:
            m.close()
    return bad


def _dump_index_file(path: str) -> None:
    base = int(os.path.basename(path)[:20]) if os.path.basename(path)[:20].isdigit() else 0
    if path.endswith(".timeindex"):
        entries, err = _read_entries(path, _TIME_ENTRY)
        click.echo(f"Dumping {path} ({len(entries)} entries)")
        for ts, rel in entries:
            click.echo(f"timestamp: {ts} ({utc_iso(ts)}) offset: {base + rel}")
    else:
        entries, err = _read_entries(path, _OFFSET_ENTRY)
        click.echo(f"Dumping {path} ({len(entries)} entries)")
        for rel, pos in entries:
            click.echo(f"offset: {base + rel} position: {pos}")
    if err:
        click.echo(f"INVALID: {err}")


@click.command()
@data_option
@click.option("--deep", is_flag=True, help="also decode every record's values (slower)")
@click.option("--quiet", "-q", is_flag=True, help="print problems and the summary only")
def verify(data: str, deep: bool, quiet: bool) -> None:
    """Check every segment of every partition: batches, their records, offset order, indexes.

    Exits 1 and names the file and byte position of every problem found. Takes the data
    directory's lock (a running owner must be stopped first) and changes nothing.
    """
    if not os.path.isdir(data):
        raise click.ClickException(f"no data directory at {data!r}")
    fd = os.open(os.path.join(data, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DirectoryLockedError(
                f"data directory {data!r} is open in another process; stop it to verify"
            ) from None
        problems, segments, partitions = _verify_all(data, deep, quiet)
    finally:
        os.close(fd)
    if not os.path.exists(os.path.join(data, ".clean_shutdown")) and problems:
        click.echo("note: the directory was not closed cleanly; opening it runs recovery, "
                   "which truncates a damaged tail of the newest segments", err=True)
    if problems:
        click.echo(f"{problems} problem(s) in {segments} segment(s) of {partitions} "
                   "partition(s)", err=True)
        raise SystemExit(1)
    click.echo(f"ok: {segments} segment(s) of {partitions} partition(s) verified")


def _verify_all(data: str, deep: bool, quiet: bool) -> tuple[int, int, int]:
    problems = segments = 0
    dirs = _partition_dirs(data)
    for d in dirs:
        reports = verify_partition(d, deep)
        segments += len(reports)
        n_bad = sum(len(r.problems) for r in reports)
        problems += n_bad
        for r in reports:
            for p in r.problems:
                click.echo(f"CORRUPT {p}")
            for w in r.warnings:
                click.echo(f"warning: {w}", err=True)
        if not quiet and not n_bad:
            click.echo(f"ok {os.path.basename(d)}: {len(reports)} segment(s), "
                       f"{sum(r.batches for r in reports)} batch(es), "
                       f"{sum(r.records for r in reports)} record(s)")
    return problems, segments, len(dirs)


@click.command()
@click.argument("topic", required=False)
@click.option("--roll", is_flag=True,
              help="first close the active segments, so their records can be compacted too")
@target_options
def compact(topic: str | None, roll: bool, data: str) -> None:
    """Run one retention and compaction pass now (every topic, or TOPIC) and print its stats.

    Compaction only rewrites closed segments (as in Kafka); --roll closes the active ones
    first. Topics without cleanup.policy=compact only get retention applied.
    """
    from logmq.broker.cleaner import Cleaner

    with open_broker(data) as log:
        names = [topic] if topic is not None else log.list_topics()
        for name in names:
            log.partitions_for(name)  # UnknownTopicError for a typo
        if roll:
            for name in names:
                for p in range(log.partitions_for(name)):
                    log.partition_log(name, p).roll()
        cleaner = log.cleaner or Cleaner(log, max_bytes_per_sec=None)
        stats = cleaner.run_once(force=True, topics=names, max_bytes_per_sec=None)
        if topic is not None and "compact" not in str(log.topic_config(topic)["cleanup.policy"]):
            click.echo(f"note: {topic!r} has cleanup.policy="
                       f"{log.topic_config(topic)['cleanup.policy']}: retention only", err=True)
    errors = stats.pop("errors", [])
    for key, value in stats.items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        click.echo(f"{key}: {shown}")
    for e in errors:
        click.echo(f"error: {e}", err=True)
    if errors:
        raise SystemExit(1)


@click.command()
@target_options
@click.option("--json", "as_json", is_flag=True, help="one JSON object instead of text")
def stats(data: str, as_json: bool) -> None:
    """Totals of the data directory: topics, partitions, records, bytes, segments, groups.

    "records" counts offsets (end - start); a compacted topic holds fewer records.
    """
    from logmq.broker.membership import coordinator_for

    with open_broker(data) as log:
        per_topic: list[tuple[str, int, int, int, int]] = []
        for name in log.list_topics():
            d = log.describe_topic(name)
            per_topic.append((name, len(d.partitions),
                              sum(p.end_offset - p.start_offset for p in d.partitions),
                              sum(p.size_bytes for p in d.partitions),
                              sum(p.segments for p in d.partitions)))
        n_groups = len(coordinator_for(log).list_groups())
    totals = {
        "topics": len(per_topic),
        "partitions": sum(r[1] for r in per_topic),
        "records": sum(r[2] for r in per_topic),
        "bytes": sum(r[3] for r in per_topic),
        "segments": sum(r[4] for r in per_topic),
        "groups": n_groups,
    }
    if as_json:
        import json

        keys = ["partitions", "records", "bytes", "segments"]
        click.echo(json.dumps({**totals, "per_topic": {
            r[0]: dict(zip(keys, r[1:], strict=True)) for r in per_topic}}))
        return
    width = max(len(k) for k in totals)
    for k, v in totals.items():
        click.echo(f"{k.ljust(width)}  {v:,}")
    if per_topic:
        click.echo("")
        print_table(["TOPIC", "PARTITIONS", "RECORDS", "BYTES", "SEGMENTS"], per_topic)
