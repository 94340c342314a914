"""``logmq status --http HOST:PORT``: one screen on a running ``logmq serve``.

It reads the server's read-only JSON API (``serve --http``), so looking never needs the data
directory (which the server owns) and never disturbs the server beyond one HTTP request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from logmq.cli.common import print_table

__all__ = ["status", "http_option"]

F = TypeVar("F", bound=Callable[..., Any])


def http_option(required: bool = False) -> Callable[[F], F]:
    return click.option("--http", "http", envvar="LOGMQ_HTTP", metavar="HOST:PORT",
                        required=required,
                        help="a running `logmq serve --http` (env LOGMQ_HTTP)")


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _age(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:.0f} s"


def queue_rows(http: str) -> list[dict[str, Any]]:
    """The share groups of a running server (``queues list --http``)."""
    from logmq.ops.client import get_json

    return list(get_json(http, "queues"))


@click.command()
@http_option()
@click.option("--bootstrap", "-b", envvar="LOGMQ_BOOTSTRAP", metavar="HOST:PORT",
              help="a cluster instead (Apache Kafka or `logmq serve`; HOST:PORT or kafka://)")
@click.option("--json", "as_json", is_flag=True, help="the whole overview as JSON")
def status(http: str | None, bootstrap: str | None, as_json: bool) -> None:
    """Readiness, topics, consumer group lag, queues and warnings of a running server."""
    import json

    from logmq.ops.client import get_json

    if bootstrap and not http:  # a cluster's brokers, topics and lag: cli/cluster_info.py
        from logmq.cli.cluster_info import show_cluster_status
        from logmq.cli.target import open_cluster

        with open_cluster(bootstrap) as log:
            show_cluster_status(log, as_json)
        return
    if not http:
        raise click.UsageError("give --http HOST:PORT (logmq serve --http) or --bootstrap")
    o = get_json(http, "overview")
    if as_json:
        click.echo(json.dumps(o, indent=2))
        return
    cfg = o.get("config", {})
    st = o.get("storage", {})
    srv = o.get("server", {})
    click.echo(f"logmq {o.get('version')} at {cfg.get('path') or cfg.get('data')}: "
               f"{'READY' if o.get('ready') else 'NOT READY'} ({o.get('reason')}), "
               f"up {o.get('uptime_seconds', 0):.0f} s")
    click.echo(f"kafka {cfg.get('listen', '-')} (advertised {cfg.get('advertised', '-')}), "
               f"{srv.get('connections', 0)} connection(s); "
               f"{st.get('topics', 0)} topic(s), {st.get('partitions', 0)} partition(s); "
               f"recovery cut {st.get('recovery_bytes_truncated', 0)} bytes")
    topics = o.get("topics", [])
    if topics:
        click.echo()
        print_table(["TOPIC", "PARTITIONS", "END-OFFSETS", "SIZE", "PRODUCED", "IN", "OUT"],
                    [[t["name"], t["partitions"], t["end_offset"], _bytes(t["size_bytes"]),
                      t["records_produced"], _bytes(t["bytes_in"]), _bytes(t["bytes_out"])]
                     for t in topics])
    groups = o.get("groups", [])
    if groups:
        click.echo()
        print_table(["GROUP", "STATE", "MEMBERS", "LAG"],
                    [[g["group_id"], g["state"], g["members"], g["lag"]] for g in groups])
    queues = o.get("queues", [])
    if queues:
        click.echo()
        print_table(["TOPIC", "GROUP", "DEPTH", "IN-FLIGHT", "SCHEDULED", "OLDEST-UNACKED",
                     "DLQ"],
                    [[q["topic"], q["group"], q["depth"], q["in_flight"], q["scheduled"],
                      _age(q["oldest_unacked_age_ms"]), q["dlq_size"]] for q in queues])
    refused = srv.get("refused_batches") or {}
    if refused:
        click.echo("\nrefused batches: " + ", ".join(f"{k} {v}" for k, v in refused.items()))
    if o.get("warnings"):
        click.echo()
        for w in get_json(http, "warnings")[-5:]:
            click.echo(f"{w['level']} {w['logger']}: {w['message']}")
