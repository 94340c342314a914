"""What ``queues list`` and ``status`` show for a cluster (``--bootstrap``).

Share groups and their lag come from :mod:`logmq.cluster.sharegroups` (Kafka protocol
requests: confluent-kafka 2.16 has no share-group admin calls); the dead-letter count is the
size of the group's ``errors.deadletterqueue.topic.name``. Plain-text listeners only: on
TLS/SASL the command says so and names Kafka's ``kafka-share-groups.sh``.
"""

from __future__ import annotations

from typing import Any

import click

from logmq.errors import LogMQError
from logmq.types import TopicPartition

__all__ = ["share_group_rows", "cluster_overview", "show_cluster_status"]


def _dlq_name(log: Any, group: str) -> str | None:
    from confluent_kafka.admin import ConfigResource, ResourceType

    res = ConfigResource(ResourceType.GROUP, group)
    try:
        entries = log.result(log.admin.describe_configs([res])[res], what="group configs")
    except LogMQError:
        return None
    e = entries.get("errors.deadletterqueue.topic.name")
    return e.value if e is not None and e.value else None


def _records(log: Any, topic: str) -> int:
    try:
        return sum(p.end_offset - p.start_offset for p in log.describe_topic(topic).partitions)
    except LogMQError:
        return 0


def share_group_rows(log: Any, topics: tuple[str, ...] | list[str] = ()) -> list[dict[str, Any]]:
    """One row per (topic, share group), with the keys ``queues list`` prints."""
    from logmq.cluster.probe import supports_share_groups

    if not hasattr(log, "admin") or not supports_share_groups(
            log.bootstrap, log.settings, log.request_timeout):
        return []
    from logmq.cluster.sharegroups import ShareGroupAdmin

    admin = ShareGroupAdmin(log.bootstrap, log.settings, log.request_timeout)
    rows = []
    for group, state in admin.list_groups():
        dlq = _dlq_name(log, group)
        for topic, parts in sorted(admin.describe(group, state).partitions.items()):
            if topics and topic not in topics:
                continue
            lag = sum(max(0, lg) for _s, lg in parts.values())
            rows.append({"topic": topic, "group": group, "state": state, "depth": lag,
                         "available": "-", "in_flight": "-", "scheduled": "-",
                         "oldest_unacked_age_ms": None,
                         "dlq_size": _records(log, dlq) if dlq else 0,
                         "dead_letter_topic": dlq,
                         "start_offsets": {str(p): s for p, (s, _lg) in sorted(parts.items())}})
    return rows


def cluster_overview(log: Any) -> dict[str, Any]:
    """Brokers, topics, consumer groups with lag, share groups: ``status --bootstrap``."""
    md = log.admin.list_topics(timeout=log.request_timeout)
    topics = []
    for name in log.list_topics():
        d = log.describe_topic(name)
        topics.append({"name": name, "partitions": len(d.partitions),
                       "end_offset": sum(p.end_offset for p in d.partitions),
                       "records": sum(p.end_offset - p.start_offset for p in d.partitions)})
    groups = []
    for gid, _ptype, state in log.groups.list_groups():
        desc = log.groups.describe_group(gid)
        lag = 0
        for (t, p), (off, _meta) in log.groups.fetch_offsets(gid, None).items():
            try:
                lag += max(0, log.end_offset(TopicPartition(t, p)) - off)
            except LogMQError:
                continue
        groups.append({"group_id": gid, "state": state, "members": len(desc.members),
                       "lag": lag})
    try:
        queues = share_group_rows(log)
    except (LogMQError, click.ClickException, OSError):
        queues = []
    return {"cluster_id": md.cluster_id, "controller_id": md.controller_id,
            "brokers": sorted(f"{b.id}@{b.host}:{b.port}" for b in md.brokers.values()),
            "topics": topics, "groups": groups, "queues": queues}


def show_cluster_status(log: Any, as_json: bool) -> None:
    from logmq.cli.common import print_table

    o = cluster_overview(log)
    if as_json:
        import json

        click.echo(json.dumps(o, indent=2))
        return
    click.echo(f"cluster {o['cluster_id']} at {log.bootstrap}: {len(o['brokers'])} broker(s) "
               f"({', '.join(o['brokers'])}), controller {o['controller_id']}; "
               f"{len(o['topics'])} topic(s), "
               f"{sum(t['partitions'] for t in o['topics'])} partition(s)")
    if o["topics"]:
        click.echo()
        print_table(["TOPIC", "PARTITIONS", "END-OFFSETS", "RECORDS"],
                    [[t["name"], t["partitions"], t["end_offset"], t["records"]]
                     for t in o["topics"]])
    if o["groups"]:
        click.echo()
        print_table(["GROUP", "STATE", "MEMBERS", "LAG"],
                    [[g["group_id"], g["state"], g["members"], g["lag"]] for g in o["groups"]])
    if o["queues"]:
        click.echo()
        print_table(["TOPIC", "SHARE-GROUP", "STATE", "DEPTH", "DLQ"],
                    [[q["topic"], q["group"], q["state"], q["depth"], q["dlq_size"]]
                     for q in o["queues"]])
