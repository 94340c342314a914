"""``logmq queues``: the share groups of a data directory and how far behind they are.

Operators ask one question of a work queue: is it keeping up? So the one table answers it:
depth (everything not yet acknowledged), what is waiting, what is being worked on, what is
held back for a delay or a retry backoff, how old the oldest unacknowledged record is, and
how many records went to dead letters.
"""

from __future__ import annotations

import json

import click

from logmq.cli.common import open_broker, print_table, target_options
from logmq.cli.status import http_option, queue_rows
from logmq.cli.target import is_cluster

__all__ = ["queues"]


def _age(ms: int | None) -> str:
    if ms is None:
        return "-"
    if ms < 10_000:
        return f"{ms} ms"
    s = ms / 1000
    if s < 3600:
        return f"{s:.0f} s"
    return f"{s / 3600:.1f} h"


@click.group()
def queues() -> None:
    """Work queues (share groups): depth, in flight, dead letters."""


@queues.command("list")
@click.option("--topic", "-t", "topics", multiple=True, help="only these topics (repeatable)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per group")
@http_option()
@target_options
def list_(topics: tuple[str, ...], as_json: bool, http: str | None, data: str) -> None:
    """Every share group with its numbers (dead letters counted in ``<topic>.dlq``)."""
    from logmq.broker.queues.manager import queue_manager

    if http:  # a running server's, through its JSON API (serve --http)
        found = [s for s in queue_rows(http) if not topics or s["topic"] in topics]
    else:
        with open_broker(data) as log:
            if is_cluster(log):  # Kafka share groups (--bootstrap): logmq/cli/cluster_info.py
                from logmq.cli.cluster_info import share_group_rows

                found = share_group_rows(log, topics)
            else:
                mgr = queue_manager(log)
                found = [dict(mgr.share_group(topic, group).stats().__dict__)
                         for topic in sorted(topics or log.list_topics())
                         for group in sorted(mgr.groups_of(topic))]
    if as_json:
        for st in found:
            click.echo(json.dumps(st))
        return
    rows = [[st["topic"], st["group"], st["depth"], st["available"], st["in_flight"],
             st["scheduled"], _age(st["oldest_unacked_age_ms"]), st["dlq_size"]]
            for st in found]
    if rows:
        print_table(["TOPIC", "GROUP", "DEPTH", "AVAILABLE", "IN-FLIGHT", "SCHEDULED",
                     "OLDEST-UNACKED", "DLQ"], rows)
