"""The ``logmq`` command: one click group; each subcommand family lives in its own module."""

from __future__ import annotations

import click

from logmq.cli.demo import demo

__all__ = ["main", "cli"]

DEFAULT_DATA = "logmq-data"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="logmq")
def cli() -> None:
    """logmq: an embedded Kafka-style log. Commands work on a data directory (--data)."""


cli.add_command(demo)


def main() -> None:
    cli()
