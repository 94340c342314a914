"""``logmq mirror SRC DST``: the command-line face of :mod:`logmq.mirror`."""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from logmq.cli.common import print_table
from logmq.mirror import MirrorReport
from logmq.mirror import mirror as run_mirror
from logmq.types import TopicPartition

__all__ = ["mirror"]


def _patterns(values: tuple[str, ...]) -> list[str] | None:
    out = [p.strip() for v in values for p in v.split(",") if p.strip()]
    return out or None


@click.command()
@click.argument("source")
@click.argument("destination")
@click.option("--topics", "topics", multiple=True, metavar="PATTERN",
              help="Topics to copy (fnmatch patterns, comma-separated or repeated; default "
                   "all).")
@click.option("--groups", "groups", multiple=True, metavar="PATTERN",
              help="Consumer groups whose offsets to translate (default all).")
@click.option("--no-groups", is_flag=True, help="Copy records only, no group offsets.")
@click.option("--no-verify", is_flag=True,
              help="Skip the final count and checksum comparison per partition.")
@click.option("--follow", is_flag=True,
              help="Keep copying new records and offsets until interrupted (Ctrl-C).")
@click.option("--follow-interval", type=float, default=1.0, show_default=True,
              help="Seconds between passes with --follow.")
@click.option("--follow-for", type=float, default=None,
              help="Stop --follow after this many seconds.")
def mirror(source: str, destination: str, topics: tuple[str, ...], groups: tuple[str, ...],
           no_groups: bool, no_verify: bool, follow: bool, follow_interval: float,
           follow_for: float | None) -> None:
    """Copy topics (config, partitions, records) and consumer-group offsets from SOURCE to
    DESTINATION, each a data directory or a kafka://host:port URL. Rerunning resumes where
    the last run stopped, copying nothing twice."""
    stopping = {"now": False}

    def on_signal(*_: Any) -> None:
        stopping["now"] = True

    old = signal.signal(signal.SIGINT, on_signal) if follow else None
    shown: dict[TopicPartition, int] = {}

    def progress(tp: TopicPartition, copied: int, total: int) -> None:
        if sys.stderr.isatty() or copied != shown.get(tp):
            click.echo(f"  {tp.topic}-{tp.partition}: {copied} copied (source holds {total})",
                       err=True)
            shown[tp] = copied

    try:
        report = run_mirror(source, destination, topics=_patterns(topics),
                            groups=_patterns(groups), verify=not no_verify,
                            copy_groups=not no_groups, progress=progress, follow=follow,
                            follow_interval=follow_interval, follow_for=follow_for,
                            stop=lambda: stopping["now"])
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    _print(report)
    if not report.ok:
        raise click.ClickException("mirror finished with differences (see above)")


def _print(report: MirrorReport) -> None:
    rows = [[p.tp.topic, p.tp.partition, p.copied,
             p.src_count if report.verified else "-", p.dst_count if report.verified else "-",
             ("ok" if p.ok else "DIFFERENT") if report.verified else "not verified"]
            for p in report.partitions]
    print_table(["TOPIC", "PARTITION", "COPIED", "SOURCE", "DESTINATION", "CHECK"], rows)
    for topic, keys in report.skipped_configs.items():
        click.echo(f"{topic}: not copied (no such setting on the destination): "
                   f"{', '.join(keys)}", err=True)
    for gid, offs in sorted(report.groups.items()):
        moved = ", ".join(f"{tp.topic}-{tp.partition} {a}->{b}" for tp, (a, b) in sorted(offs.items()))
        click.echo(f"group {gid}: {moved}")
    for gid, err in sorted(report.group_errors.items()):
        click.echo(f"group {gid}: NOT copied: {err}", err=True)
    click.echo(f"copied {report.total_copied or report.copied} record(s)")
