"""``logmq groups``: list, describe, reset offsets of and delete consumer groups.

Offsets are reset the way Kafka's ``kafka-consumer-groups --reset-offsets`` does it: the plan
is printed first and applied only with ``--execute``, and never while the group has active
members (they would overwrite the new offsets with their next commit, or keep reading from
their in-memory positions). The commit itself goes through the coordinator's admin path
(generation -1, no member id), which the coordinator accepts only for a group without
members, so a consumer joining between the check and the commit makes it fail instead of
racing it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from logmq.cli.common import DURATION, TIME, open_broker, print_table, target_options
from logmq.cli.target import check_partition
from logmq.errors import GroupIdNotFoundError, LogMQError, UnknownMemberError
from logmq.types import TopicPartition

if TYPE_CHECKING:
    from logmq.broker.broker import Broker
    from logmq.broker.groups import GroupCoordinator

__all__ = ["groups"]

_INACTIVE = ("Empty", "Dead")


def _coordinator(log: Broker) -> GroupCoordinator:
    from logmq.broker.membership import coordinator_for

    return coordinator_for(log)


def _assigned(assignment: bytes) -> list[TopicPartition]:
    """Partitions in a member's ConsumerProtocol assignment bytes ([] if not decodable)."""
    if not assignment:
        return []
    from logmq.protocol.consumer_protocol import decode_assignment

    try:
        parts = decode_assignment(assignment)["partitions"]
    except LogMQError:
        return []
    return [TopicPartition(t, p) for t, ps in sorted(parts.items()) for p in sorted(ps)]


def _fmt_tps(tps: list[TopicPartition]) -> str:
    by_topic: dict[str, list[int]] = {}
    for t, p in tps:
        by_topic.setdefault(t, []).append(p)
    return " ".join(f"{t}:{','.join(map(str, ps))}" for t, ps in sorted(by_topic.items())) or "-"


@click.group()
def groups() -> None:
    """Consumer groups: list, describe, reset-offsets, delete."""


@groups.command("list")
@target_options
def list_(data: str) -> None:
    """Every group, with its state (groups known only by committed offsets are Empty)."""
    with open_broker(data) as log:
        rows = [[gid, state, ptype] for gid, ptype, state in _coordinator(log).list_groups()]
    if rows:
        print_table(["GROUP", "STATE", "PROTOCOL-TYPE"], rows)


@groups.command("describe")
@click.argument("group")
@target_options
def describe(group: str, data: str) -> None:
    """Members with their assignments, and per partition: committed offset, end offset, lag."""
    with open_broker(data) as log:
        coord = _coordinator(log)
        desc = coord.describe_group(group)
        committed = coord.fetch_offsets(group, None)
        if desc.state == "Dead" and not committed:
            raise GroupIdNotFoundError(f"group {group!r} does not exist")
        owner: dict[TopicPartition, str] = {}
        member_rows = []
        for m in desc.members:
            tps = _assigned(m.assignment)
            for tp in tps:
                owner[tp] = m.member_id
            member_rows.append([m.member_id, m.group_instance_id or "-", m.client_id,
                                m.client_host, _fmt_tps(tps)])
        tps = sorted({TopicPartition(t, p) for t, p in committed} | set(owner))
        rows = []
        for tp in tps:
            hit = committed.get((tp.topic, tp.partition))
            off = hit[0] if hit is not None and hit[0] >= 0 else None
            try:
                end: int | None = log.end_offset(tp)
            except LogMQError:  # the topic or partition went away; its commit stays visible
                end = None
            lag = end - off if end is not None and off is not None else None
            rows.append([tp.topic, tp.partition, _dash(off), _dash(end), _dash(lag),
                         owner.get(tp, "-")])
    proto = f"{desc.protocol_type}/{desc.protocol}" if desc.protocol else desc.protocol_type
    click.echo(f"Group: {group}  state: {desc.state}  protocol: {proto or '-'}  "
               f"members: {len(desc.members)}")
    if member_rows:
        print_table(["MEMBER", "INSTANCE", "CLIENT-ID", "HOST", "ASSIGNMENT"], member_rows)
    print_table(["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"], rows)


def _dash(v: int | None) -> str:
    return "-" if v is None else str(v)


@groups.command("reset-offsets")
@click.argument("group")
@click.option("--topic", "-t", "topics", required=True, multiple=True,
              help="topic whose offsets to reset, repeatable")
@click.option("--partition", "-p", "partitions", type=click.IntRange(min=0), multiple=True,
              help="only these partitions, repeatable (default: all)")
@click.option("--to-earliest", is_flag=True, help="the log start offset")
@click.option("--to-latest", is_flag=True, help="the log end offset")
@click.option("--to-offset", type=click.IntRange(min=0), help="this offset (clamped to the log)")
@click.option("--to-datetime", type=TIME, help="first offset at/after this time")
@click.option("--shift-by", type=int, help="current committed offset plus N (may be negative)")
@click.option("--by-duration", type=DURATION,
              help="first offset at/after now minus this (PT1H, 1h30m, P1D)")
@click.option("--execute", is_flag=True, help="apply the plan (default: print it only)")
@target_options
def reset_offsets(group: str, topics: tuple[str, ...], partitions: tuple[int, ...],
                  to_earliest: bool, to_latest: bool, to_offset: int | None,
                  to_datetime: int | None, shift_by: int | None, by_duration: int | None,
                  execute: bool, data: str) -> None:
    """Plan (and with --execute, commit) new offsets for GROUP; the group must be inactive."""
    chosen = [name for name, on in (
        ("--to-earliest", to_earliest), ("--to-latest", to_latest),
        ("--to-offset", to_offset is not None), ("--to-datetime", to_datetime is not None),
        ("--shift-by", shift_by is not None), ("--by-duration", by_duration is not None),
    ) if on]
    if len(chosen) != 1:
        raise click.UsageError(
            "give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, "
            "--shift-by, --by-duration" + (f" (got {', '.join(chosen)})" if chosen else ""))
    if by_duration is not None:
        to_datetime = int(time.time() * 1000) - by_duration
    with open_broker(data) as log:
        coord = _coordinator(log)
        _refuse_if_active(coord, group)
        tps: list[TopicPartition] = []
        for t in topics:
            n = log.partitions_for(t)
            for p in partitions or range(n):
                check_partition(log, t, p)  # InvalidPartitionError for one out of range
                tps.append(TopicPartition(t, p))
        current = coord.fetch_offsets(group, [(tp.topic, tp.partition) for tp in tps])
        by_time = log.offsets_for_times({tp: to_datetime for tp in tps}) \
            if to_datetime is not None else {}
        plan: dict[TopicPartition, int] = {}
        rows: list[list[object]] = []
        skipped: list[str] = []
        for tp in tps:
            start, end = log.offsets(tp)
            hit = current.get((tp.topic, tp.partition))
            cur = hit[0] if hit is not None and hit[0] >= 0 else None
            if to_earliest:
                new = start
            elif to_latest:
                new = end
            elif to_offset is not None:
                new = to_offset
            elif to_datetime is not None:
                found = by_time[tp]
                new = found.offset if found is not None else end
            else:
                assert shift_by is not None
                if cur is None:  # nothing to shift from: leave it alone, and say so
                    rows.append([tp.topic, tp.partition, "-", "-", "-"])
                    skipped.append(f"{tp.topic}-{tp.partition}")
                    continue
                new = cur + shift_by
            new = min(max(new, start), end)  # like Kafka's tool: never outside the log
            plan[tp] = new
            rows.append([tp.topic, tp.partition, _dash(cur), new, end - new])
        print_table(["TOPIC", "PARTITION", "CURRENT", "NEW", "LAG-AFTER"], rows)
        if skipped:
            click.echo(f"no committed offset to shift, left unchanged: {', '.join(skipped)}",
                       err=True)
        if not plan:
            raise click.ClickException("nothing to reset")
        if not execute:
            click.echo("dry run: nothing changed (add --execute to commit these offsets)")
            return
        try:
            coord.commit_offsets(group, -1, "",
                                 {(tp.topic, tp.partition): (off, None) for tp, off in plan.items()})
        except UnknownMemberError:  # a member joined after the check: the admin commit is refused
            _refuse_if_active(coord, group)
            raise
    click.echo(f"committed {len(plan)} offset(s) for group {group!r}")


def _refuse_if_active(coord: GroupCoordinator, group: str) -> None:
    desc = coord.describe_group(group)
    if desc.members or desc.state not in _INACTIVE:
        raise click.ClickException(
            f"group {group!r} has {len(desc.members)} active member(s) (state {desc.state}): "
            "offsets can only be reset while the group is inactive; stop its consumers first")


@groups.command("delete")
@click.argument("group")
@target_options
def delete(group: str, data: str) -> None:
    """Delete GROUP and its committed offsets (only a group without members)."""
    with open_broker(data) as log:
        err = _coordinator(log).delete_groups([group]).get(group)
    if err is not None:
        raise err
    click.echo(f"deleted group {group!r}")
