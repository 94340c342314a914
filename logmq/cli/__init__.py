"""The ``logmq`` command: one click group; each subcommand family lives in its own module."""

from __future__ import annotations

import click

from logmq.cli.acls import acls
from logmq.cli.common import DEFAULT_DATA, LogMQGroup
from logmq.cli.demo import demo
from logmq.cli.groups import groups
from logmq.cli.inspect import compact, dump, stats, verify
from logmq.cli.io import consume, produce
from logmq.cli.mirror import mirror
from logmq.cli.queues import queues
from logmq.cli.replay import replay
from logmq.cli.serve import serve
from logmq.cli.status import status
from logmq.cli.topics import topics
from logmq.cli.users import users

__all__ = ["main", "cli", "DEFAULT_DATA"]


@click.group(cls=LogMQGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="logmq")
def cli() -> None:
    """logmq: an embedded Kafka-style log. Commands work on a data directory (--data)."""


cli.add_command(demo)
cli.add_command(serve)
cli.add_command(users)
for _command in (topics, produce, consume, replay, groups, queues, dump, verify, compact,
                 stats, status, mirror):
    cli.add_command(_command)


cli.add_command(acls)


def main() -> None:
    cli(prog_name="logmq")
