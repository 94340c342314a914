"""``logmq topics``: create, list, describe, alter and delete topics of a data directory."""

from __future__ import annotations

import click

from logmq.cli.common import open_broker, parse_kv, print_table, target_options


@click.group()
def topics() -> None:
    """Manage topics: create, list, describe, alter, delete."""


@topics.command("create")
@click.argument("name")
@click.option("--partitions", "-p", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--config", "-c", "configs", multiple=True, metavar="KEY=VALUE",
              help="topic config override, repeatable (e.g. cleanup.policy=compact)")
@click.option("--if-not-exists", is_flag=True,
              help="an existing topic is fine (left as it is); exit 0")
@target_options
def create(name: str, partitions: int, configs: tuple[str, ...], if_not_exists: bool,
           data: str) -> None:
    """Create topic NAME (creates the data directory if needed)."""
    config = parse_kv(configs, "--config")
    with open_broker(data, create=True) as log:
        existed = if_not_exists and name in log.list_topics()
        log.create_topic(name, partitions=partitions, config=config, exist_ok=if_not_exists)
    if existed:
        click.echo(f"topic {name!r} already exists (left unchanged)")
        return
    extra = f" ({', '.join(f'{k}={v}' for k, v in config.items())})" if config else ""
    click.echo(f"created topic {name!r} with {partitions} partition(s){extra}")


@topics.command("list")
@click.option("--long", "-l", "long_", is_flag=True,
              help="also show partitions, offsets and size")
@target_options
def list_(long_: bool, data: str) -> None:
    """List topic names, one per line."""
    with open_broker(data) as log:
        names = log.list_topics()
        if not long_:
            for name in names:
                click.echo(name)
            return
        rows = []
        for name in names:
            d = log.describe_topic(name)
            rows.append([name, len(d.partitions),
                         sum(p.end_offset - p.start_offset for p in d.partitions),
                         "?" if any(p.size_bytes < 0 for p in d.partitions)
                         else sum(p.size_bytes for p in d.partitions),
                         d.config["cleanup.policy"]])
    print_table(["TOPIC", "PARTITIONS", "OFFSETS", "BYTES", "POLICY"], rows)


@topics.command("describe")
@click.argument("name")
@target_options
def describe(name: str, data: str) -> None:
    """Partitions (start/end offsets, size, segments) and effective config of NAME.

    Config lines marked ``*`` are overrides set on this topic; the rest are defaults.
    """
    with open_broker(data) as log:
        d = log.describe_topic(name)
    click.echo(f"Topic: {d.name}  partitions: {len(d.partitions)}")
    print_table(
        ["PARTITION", "START", "END", "OFFSETS", "BYTES", "SEGMENTS"],
        [[p.partition, p.start_offset, p.end_offset, p.end_offset - p.start_offset,
          p.size_bytes, p.segments] for p in d.partitions],
    )
    click.echo("Config (* = override):")
    width = max(len(k) for k in d.config)
    for key in sorted(d.config):
        mark = "*" if key in d.overrides else " "
        value = d.config[key]
        click.echo(f"  {mark} {key.ljust(width)} = {'null' if value is None else value}")


@topics.command("alter")
@click.argument("name")
@click.option("--config", "-c", "configs", multiple=True, metavar="KEY=VALUE",
              help="set an override, repeatable")
@click.option("--delete-config", "deletes", multiple=True, metavar="KEY",
              help="remove an override (back to the default), repeatable")
@target_options
def alter(name: str, configs: tuple[str, ...], deletes: tuple[str, ...], data: str) -> None:
    """Change NAME's config overrides; effective at once, no restart."""
    if not configs and not deletes:
        raise click.UsageError("nothing to change: give --config KEY=VALUE or --delete-config KEY")
    changes: dict[str, str | None] = dict(parse_kv(configs, "--config"))
    for key in deletes:
        if key in changes:
            raise click.UsageError(f"{key!r} is both set and deleted")
        changes[key] = None
    with open_broker(data) as log:
        overrides = log.alter_topic_config(name, changes)
    click.echo(f"altered topic {name!r}; overrides now: "
               + (", ".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "(none)"))


@topics.command("delete")
@click.argument("name")
@target_options
def delete(name: str, data: str) -> None:
    """Delete topic NAME and all its data (committed group offsets for it go too)."""
    from logmq.broker.membership import coordinator_for

    with open_broker(data) as log:
        # Start the group coordinator first: the broker tells its extensions about deleted
        # topics, and only a running coordinator drops the topic's committed offsets. Stale
        # commits would make consumers of a re-created topic skip its first records.
        coordinator_for(log)
        log.delete_topic(name)
    click.echo(f"deleted topic {name!r}")
