"""The figures of one open data directory, read at the moment they are asked for.

Everything here is read from state the broker keeps anyway (partition logs, committed
offsets, share-group counters, cleaner totals), so the produce and fetch paths pay nothing for
it: ``log.metrics()``, ``/metrics``, the JSON API and the dashboard all call :func:`snapshot`
or one of its parts when a person or a scraper asks. Only what cannot be derived afterwards
(request durations, refused batches, fsync times) is counted as it happens, elsewhere
(:mod:`logmq.ops.stats`).

Reading creates little: the group coordinator (which the Kafka server starts anyway) is
started if it is not running yet, and share groups are reported once something in this
process has opened them (``load_queues`` opens the stored ones, for the admin API).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logmq.ops.stats import ServerStats

__all__ = ["metrics_dict", "snapshot", "topics", "topic", "groups", "group", "queues", "cleaner", "storage"]


def _extension(broker: Any, name: str) -> Any:
    """A service (``groups``, ``queues``) only if it already runs: the facade creates them on
    first use, and a metrics scrape must not start a coordinator or a queue engine."""
    return getattr(broker, "_" + name, None)


def _partition(broker: Any, name: str, p: int) -> dict[str, Any]:
    lg = broker.partition_log(name, p)
    segs = lg.segments
    return {
        "partition": p,
        "start_offset": lg.log_start_offset,
        "end_offset": lg.next_offset,
        "size_bytes": sum(s.size for s in segs),
        "segments": len(segs),
        "records_appended": getattr(lg, "records_appended", 0),
        "bytes_in": getattr(lg, "bytes_appended", 0),
        "bytes_out": getattr(lg, "bytes_read", 0),
        "recovery_bytes_truncated": lg.recovered_bytes_truncated,
    }


def topic(broker: Any, name: str, *, configs: bool = True) -> dict[str, Any]:
    """One topic: partitions with offsets and sizes, totals since this process opened it."""
    parts = [_partition(broker, name, p) for p in range(broker.partitions_for(name))]
    out: dict[str, Any] = {
        "name": name,
        "partitions": parts,
        "records_produced": sum(p["records_appended"] for p in parts),
        "bytes_in": sum(p["bytes_in"] for p in parts),
        "bytes_out": sum(p["bytes_out"] for p in parts),
        "size_bytes": sum(p["size_bytes"] for p in parts),
        "end_offset": sum(p["end_offset"] for p in parts),
    }
    if configs:
        out["config"] = broker.topic_config(name)
    return out


def topics(broker: Any, *, configs: bool = True) -> list[dict[str, Any]]:
    from logmq.errors import UnknownTopicError

    out = []
    for name in broker.list_topics():
        try:
            out.append(topic(broker, name, configs=configs))
        except UnknownTopicError:  # deleted while we looked
            continue
    return out


def _coordinator(broker: Any) -> Any:
    """The broker's group coordinator (created if need be, like the Kafka server does).

    Never open the offsets sub-database beside it: two threads opening LMDB databases at once
    can deadlock, and the facade's ``groups`` property serializes the one creation.
    """
    return broker.groups


def _assignment(raw: bytes) -> dict[str, list[int]]:
    if not raw:
        return {}
    from logmq.errors import LogMQError
    from logmq.protocol.consumer import decode_assignment

    try:
        parts = decode_assignment(raw)["partitions"]
    except LogMQError:
        return {}
    return {t: sorted(ps) for t, ps in sorted(parts.items())}


def group(broker: Any, group_id: str, *, members: bool = True) -> dict[str, Any]:
    """State, members and per-partition committed offset, end offset and lag of one group."""
    coord = _coordinator(broker)
    committed = coord.fetch_offsets(group_id, None)
    desc = coord.describe_group(group_id)
    mlist = [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
              "client_id": m.client_id, "client_host": m.client_host,
              "assignment": _assignment(m.assignment)} for m in desc.members]
    offsets = []
    for (t, p), (off, meta) in sorted(committed.items()):
        try:
            end = broker.end_offset((t, p))
        except Exception:  # noqa: BLE001 - topic deleted meanwhile: no lag to report
            continue
        offsets.append({"topic": t, "partition": p, "committed": off, "metadata": meta,
                        "end_offset": end, "lag": max(0, end - off)})
    out: dict[str, Any] = {"group_id": group_id, "state": desc.state,
                           "protocol_type": desc.protocol_type, "protocol": desc.protocol,
                           "members": len(mlist), "offsets": offsets,
                           "lag": sum(o["lag"] for o in offsets)}
    if members:
        out["member_list"] = mlist
    return out


def groups(broker: Any, *, members: bool = True) -> list[dict[str, Any]]:
    ids = [gid for gid, _type, _state in _coordinator(broker).list_groups()]
    return [group(broker, gid, members=members) for gid in ids]


def queues(broker: Any, *, load: bool = False) -> list[dict[str, Any]]:
    """``stats()`` of every share group open in this process (``load``: every stored one)."""
    mgr = _extension(broker, "queues")
    if mgr is None and load:
        from logmq.broker.queues.manager import queue_manager

        mgr = queue_manager(broker)
    if mgr is None:
        return []
    if load:
        for t in broker.list_topics():
            for g in mgr.groups_of(t):
                mgr.share_group(t, g)
    with mgr._lock:
        share_groups = list(mgr._groups.values())
    out = []
    for sg in sorted(share_groups, key=lambda s: (s.topic, s.group)):
        if getattr(sg, "closed", False):
            continue
        try:
            out.append(asdict(sg.stats()))
        except Exception:  # noqa: BLE001 - its topic was deleted: nothing to report
            continue
    return out


def cleaner(broker: Any) -> dict[str, Any]:
    c = broker.cleaner
    if c is None:
        return {"running": False, "passes": 0}
    totals = dict(c.totals)
    totals.pop("errors", None)
    totals.pop("aborted", None)
    totals.pop("mb_per_sec", None)
    return {"running": bool(c.running), "passes": int(getattr(c, "passes", 0)), **totals}


def storage(broker: Any) -> dict[str, Any]:
    from logmq.ops.stats import FSYNC

    truncated = 0
    partitions = 0
    for name in broker.list_topics():
        for p in range(broker.partitions_for(name)):
            try:
                truncated += broker.partition_log(name, p).recovered_bytes_truncated
            except Exception:  # noqa: BLE001 - deleted meanwhile
                continue
            partitions += 1
    return {"path": broker.path, "opened_clean": broker.opened_clean,
            "topics": len(broker.list_topics()), "partitions": partitions,
            "recovery_bytes_truncated": truncated,
            "fsyncs": FSYNC.count, "fsync_seconds": FSYNC.total}


def snapshot(broker: Any, *, server: ServerStats | None = None,
             load_queues: bool = False) -> dict[str, Any]:
    """Everything at once: what ``log.metrics()`` returns and ``/metrics`` exposes."""
    out: dict[str, Any] = {
        "time_ms": int(time.time() * 1000),
        "storage": storage(broker),
        "topics": topics(broker, configs=False),
        "groups": groups(broker, members=False),
        "queues": queues(broker, load=load_queues),
        "cleaner": cleaner(broker),
    }
    if server is not None:
        out["server"] = server.as_dict()
    return out


def topic_totals(broker: Any) -> dict[str, dict[str, int]]:
    """Per topic: records and bytes appended, end offsets summed (cheap: no locks, no I/O)."""
    out: dict[str, dict[str, int]] = {}
    for (t, _p), lg in broker.partition_logs():
        d = out.get(t)
        if d is None:
            d = out[t] = {"records": 0, "bytes_in": 0, "bytes_out": 0, "end_offset": 0}
        d["records"] += getattr(lg, "records_appended", 0)
        d["bytes_in"] += getattr(lg, "bytes_appended", 0)
        d["bytes_out"] += getattr(lg, "bytes_read", 0)
        d["end_offset"] += lg.next_offset
    return out


def queue_depths(broker: Any) -> dict[str, int]:
    """``topic/group`` -> depth of every share group open in this process (no locks)."""
    mgr = _extension(broker, "queues")
    if mgr is None:
        return {}
    out = {}
    for sg in list(mgr._groups.values()):
        try:
            out[f"{sg.topic}/{sg.group}"] = sg.depth_fast()
        except Exception:  # noqa: BLE001 - its topic was deleted
            continue
    return out


def metrics_dict(broker: Any) -> dict[str, Any]:
    """``log.metrics()``: :func:`snapshot` with the Kafka server's figures if it is served."""
    from logmq.ops.stats import install_fsync_observer, server_stats_of

    install_fsync_observer()
    return snapshot(broker, server=server_stats_of(broker))
