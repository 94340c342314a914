"""What ``queues list`` and ``status`` show for a cluster (``--bootstrap``).

Share groups have no confluent-kafka admin calls yet (2.16), so their listing and lag come
from the Kafka protocol directly, with logmq's own wire client: ListGroups v5 filtered to
type "share" on every broker, FindCoordinator, then DescribeShareGroupOffsets v1, whose
``lag`` (KIP-1226) is what an embedded group calls depth. The dead-letter count is the size
of the group's ``errors.deadletterqueue.topic.name``. Plain-text listeners only: on TLS/SASL
the command says so and names Kafka's ``kafka-share-groups.sh``.
"""

from __future__ import annotations

from typing import Any

import click

from logmq.errors import LogMQError
from logmq.types import TopicPartition

__all__ = ["share_group_rows", "cluster_overview", "show_cluster_status"]


def _wire(log: Any, host_port: str | None = None) -> Any:
    from logmq.wire_client import WireClient

    settings = getattr(log, "settings", {}) or {}
    proto = str(settings.get("security_protocol", "PLAINTEXT")).upper()
    if proto != "PLAINTEXT":
        raise click.ClickException(
            f"share groups on a {proto} listener: logmq lists them over plain text only; "
            "use Kafka's kafka-share-groups.sh --describe")
    return WireClient(host_port or str(log.bootstrap).split(",")[0],
                      timeout=float(getattr(log, "request_timeout", 30.0)))


def _share_groups(log: Any) -> list[tuple[str, str]]:
    """(group id, state) of every share group on every broker."""
    with _wire(log) as c:
        brokers = [f"{b['host']}:{b['port']}" for b in
                   c.call(3, {"topics": [], "allow_auto_topic_creation": False})["brokers"]]
    found: dict[str, str] = {}
    for hp in brokers:
        with _wire(log, hp) as c:
            r = c.call(16, {"states_filter": [], "types_filter": ["share"]}, version=5)
        for g in r["groups"]:
            found[g["group_id"]] = g["group_state"]
    return sorted(found.items())


def _share_offsets(log: Any, group: str) -> dict[str, dict[int, tuple[int, int]]]:
    """topic -> partition -> (share-partition start offset, lag) of one share group."""
    with _wire(log) as c:
        (coord,) = c.call(10, {"key_type": 0, "coordinator_keys": [group]},
                          version=4)["coordinators"]
    if coord["error_code"]:
        raise LogMQError(f"no coordinator for share group {group!r} "
                         f"(error {coord['error_code']})")
    with _wire(log, f"{coord['host']}:{coord['port']}") as c:
        r = c.call(90, {"groups": [{"group_id": group, "topics": None}]}, version=1)
    out: dict[str, dict[int, tuple[int, int]]] = {}
    for g in r["groups"]:
        for t in g["topics"] or []:
            for p in t["partitions"]:
                if not p["error_code"]:
                    out.setdefault(t["topic_name"], {})[p["partition_index"]] = (
                        p["start_offset"], p["lag"])
    return out


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
    rows = []
    for group, state in _share_groups(log):
        dlq = _dlq_name(log, group)
        for topic, parts in sorted(_share_offsets(log, group).items()):
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
