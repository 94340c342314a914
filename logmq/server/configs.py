"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs: logmq's config table as Kafka
names and values.

Why a translation layer: tools compare what they describe with what they set (librdkafka's
test 0092 describes a topic, then alters it with the values it read back), so every value
must be one Kafka itself would accept, never null. logmq's own keys (``fsync``,
``max.queue.depth``) are described too; Kafka keys logmq does not implement but whose only
possible value here is Kafka's default (``compression.type=producer``,
``min.insync.replicas=1``) are described with that value, and altering them to it is a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from logmq.config import TOPIC_CONFIGS, resolve
from logmq.errors import ConfigError, LogMQError
from logmq.kafka_codes import ErrorCode as _E

if TYPE_CHECKING:
    from logmq.broker.broker import Broker

__all__ = ["describe_resource", "alter_resource", "topic_entries", "LONG_MAX", "TOPIC", "BROKER"]

TOPIC = 2
BROKER = 4
LONG_MAX = (1 << 63) - 1
# Kafka's ConfigSource values
_DYNAMIC_TOPIC, _DYNAMIC_DEFAULT_BROKER, _STATIC_BROKER, _DEFAULT = 1, 3, 4, 5
# Kafka's ConfigType values (DescribeConfigs v3+)
_T_BOOLEAN, _T_STRING, _T_INT, _T_SHORT, _T_LONG, _T_DOUBLE, _T_LIST = 1, 2, 3, 4, 5, 6, 7

#: Kafka topic keys with a single possible value on one logmq node (value, doc)
FIXED_TOPIC_KEYS: dict[str, tuple[str, str]] = {
    "compression.type": ("producer", "batches are stored as the producer compressed them"),
    "min.insync.replicas": ("1", "one node: the leader is the only in-sync replica"),
    "unclean.leader.election.enable": ("false", "one node: there is no other replica"),
    "preallocate": ("false", "segments are not preallocated"),
}
_LIST_KEYS = {"cleanup.policy"}
_TYPES = {bool: _T_BOOLEAN, str: _T_STRING, int: _T_LONG, float: _T_DOUBLE}


def _kafka_value(key: str, eff: Mapping[str, Any]) -> str | None:
    """A topic config's value as Kafka would print it (never null for Kafka's keys).

    flush.messages and flush.ms say what the fsync policy really does: ``fsync=always`` is
    Kafka's flush.messages=1; ``never`` and an unset flush.messages are Kafka's Long.MAX_VALUE
    ("leave it to the OS"). flush.ms under ``interval`` stays logmq's real timer (deliberately
    not Kafka's default, see tests/oracle/expected.py).
    """
    val = eff.get(key)
    fsync = eff.get("fsync", "interval")
    if key == "flush.messages":
        if fsync == "always":
            return "1"
        return str(LONG_MAX) if val is None or fsync == "never" else str(val)
    if key == "flush.ms" and fsync == "never":
        return str(LONG_MAX)
    if val is None:
        return None
    if isinstance(val, bool):
        return "true" if val else "false"
    return str(val)


def _entry(name: str, value: str | None, *, default: bool, source: int, doc: str | None,
           typ: int, with_doc: bool) -> dict[str, Any]:
    return {"name": name, "value": value, "read_only": False, "is_default": default,
            "config_source": source, "is_sensitive": False, "synonyms": [],
            "config_type": typ, "documentation": doc if with_doc else None}


def _topic_entries(broker: Broker, name: str, with_doc: bool) -> list[dict[str, Any]]:
    return topic_entries(broker.topic_config(name), broker.describe_topic(name).overrides,
                         with_doc)


def topic_entries(eff: Mapping[str, Any], overrides: Mapping[str, Any],
                  with_doc: bool = False) -> list[dict[str, Any]]:
    """A topic's config entries from its effective config and overrides (CreateTopics v5+
    answers with these before, or without, the topic existing)."""
    out = []
    for k, d in TOPIC_CONFIGS.items():
        over = k in overrides
        out.append(_entry(k, _kafka_value(k, eff), default=not over,
                          source=_DYNAMIC_TOPIC if over else _DEFAULT, doc=d.doc,
                          typ=_T_LIST if k in _LIST_KEYS else _TYPES.get(d.type, _T_STRING),
                          with_doc=with_doc))
    for k, (v, doc) in FIXED_TOPIC_KEYS.items():
        # Kafka 4.x formats KRaft clusters with a cluster-wide min.insync.replicas (eligible
        # leader replicas need one), so it is described as a broker default, not the built-in
        # one, and kafka-topics --describe lists it among the topic's "Configs:"
        src = _DYNAMIC_DEFAULT_BROKER if k == "min.insync.replicas" else _DEFAULT
        out.append(_entry(k, v, default=src == _DEFAULT, source=src, doc=doc,
                          typ=_T_STRING if k == "compression.type" else _T_INT,
                          with_doc=with_doc))
    return sorted(out, key=lambda e: e["name"])


def _broker_entries(broker: Broker, auto_create: bool, with_doc: bool) -> list[dict[str, Any]]:
    """The broker keys tools read, from logmq's settings (topic defaults under log.*)."""
    eff = resolve(broker.defaults, {})
    retention_ms = int(eff["retention.ms"])
    rows: dict[str, tuple[str | None, int, str]] = {
        "broker.id": ("0", _T_INT, "one node, id 0"),
        "node.id": ("0", _T_INT, "one node, id 0"),
        "num.partitions": (str(broker.num_partitions), _T_INT,
                           "partitions of a topic created without a count"),
        "auto.create.topics.enable": ("true" if auto_create else "false", _T_BOOLEAN,
                                      "create a topic the first time a client asks for it"),
        "log.dirs": (broker.path, _T_STRING, "the data directory"),
        "log.retention.hours": (str(retention_ms // 3_600_000) if retention_ms >= 0 else "-1",
                                _T_INT, "retention.ms of topics without an override, hours"),
        "log.retention.bytes": (str(eff["retention.bytes"]), _T_LONG, "retention.bytes default"),
        "log.segment.bytes": (str(eff["segment.bytes"]), _T_INT, "segment.bytes default"),
        "log.cleanup.policy": (str(eff["cleanup.policy"]), _T_LIST, "cleanup.policy default"),
        "message.max.bytes": (str(eff["max.message.bytes"]), _T_INT,
                              "max.message.bytes default"),
        "log.flush.interval.messages": (_kafka_value("flush.messages", eff), _T_LONG,
                                        "flush.messages default"),
        "log.flush.interval.ms": (_kafka_value("flush.ms", eff), _T_LONG, "flush.ms default"),
        "default.replication.factor": ("1", _T_INT, "one node"),
        "min.insync.replicas": ("1", _T_INT, "one node"),
        "compression.type": ("producer", _T_STRING, "batches are kept as produced"),
    }
    return [_entry(k, v, default=False, source=_STATIC_BROKER, doc=doc, typ=t,
                   with_doc=with_doc) for k, (v, t, doc) in sorted(rows.items())]


def describe_resource(broker: Broker, resource: Mapping[str, Any], *, auto_create: bool,
                      with_doc: bool) -> dict[str, Any]:
    rt, name = resource["resource_type"], resource["resource_name"]
    keys = resource.get("configuration_keys")
    res: dict[str, Any] = {"error_code": _E.NONE, "error_message": None, "resource_type": rt,
                           "resource_name": name, "configs": []}
    if rt == 32:  # GROUP: share-group configs
        from logmq.server.share_configs import describe_group_resource
        return describe_group_resource(broker, resource, with_doc)
    try:
        if rt == TOPIC:
            entries = _topic_entries(broker, name, with_doc)
        elif rt == BROKER:
            if name not in ("", "0"):
                res["error_code"] = _E.INVALID_REQUEST
                res["error_message"] = f"unexpected broker id {name!r}: this node is 0"
                return res
            entries = _broker_entries(broker, auto_create, with_doc)
        else:
            res["error_code"] = _E.INVALID_REQUEST
            res["error_message"] = f"resource type {rt} is not supported"
            return res
    except LogMQError as e:
        res["error_code"] = e.kafka_code
        res["error_message"] = str(e)
        return res
    res["configs"] = [e for e in entries if keys is None or e["name"] in keys]
    return res


def _check_fixed(key: str, value: str | None) -> None:
    want = FIXED_TOPIC_KEYS[key][0]
    if value is not None and value != want:
        raise ConfigError(f"logmq supports only {key}={want} (got {value!r})")


def _append(current: str, value: str | None) -> str:
    items = [s for s in current.split(",") if s]
    for s in (value or "").split(","):
        s = s.strip()
        if s and s not in items:
            items.append(s)
    return ",".join(items)


def _subtract(current: str, value: str | None) -> str:
    drop = {s.strip() for s in (value or "").split(",")}
    return ",".join(s for s in current.split(",") if s and s not in drop)


def _changes(broker: Broker, name: str, configs: list[dict[str, Any]],
             incremental: bool) -> dict[str, Any]:
    """The override changes one resource asks for (None removes an override)."""
    out: dict[str, Any] = {}
    seen: set[str] = set()
    eff = broker.topic_config(name)
    for c in configs:
        key, value = c["name"], c.get("value")
        if key in seen:
            raise _InvalidRequest(f"duplicate config key {key!r} in one resource")
        seen.add(key)
        op = c.get("config_operation", 0) if incremental else 0
        if key in FIXED_TOPIC_KEYS:
            if op in (0, 1):
                _check_fixed(key, value if op == 0 else None)
                continue
            raise ConfigError(f"config value append/subtract is not allowed for {key}")
        if key not in TOPIC_CONFIGS:
            raise ConfigError(f"unknown topic config name: {key}")
        if op == 0:  # SET
            if value is None:
                raise ConfigError(f"null value for {key}")
            out[key] = value
        elif op == 1:  # DELETE
            out[key] = None
        elif op in (2, 3):  # APPEND, SUBTRACT: list-typed keys only
            if key not in _LIST_KEYS:
                raise ConfigError(f"config value append/subtract is not allowed for config "
                                  f"key: {key}")
            cur = str(eff.get(key, ""))
            out[key] = _append(cur, value) if op == 2 else _subtract(cur, value)
            if not out[key]:
                raise ConfigError(f"{key} cannot be empty")
        else:
            raise _InvalidRequest(f"unknown config operation {op}")
    return out


class _InvalidRequest(LogMQError):
    kafka_code = _E.INVALID_REQUEST


def alter_resource(broker: Broker, resource: Mapping[str, Any], *, incremental: bool,
                   validate_only: bool) -> dict[str, Any]:
    """Apply one resource of an (Incremental)AlterConfigs request.

    Non-incremental AlterConfigs replaces the topic's whole override set, as Kafka does: keys
    not named go back to their defaults.
    """
    rt, name = resource["resource_type"], resource["resource_name"]
    res: dict[str, Any] = {"error_code": _E.NONE, "error_message": None, "resource_type": rt,
                           "resource_name": name}
    if rt == 32:  # GROUP: share-group configs
        from logmq.server.share_configs import alter_group_resource
        return alter_group_resource(broker, resource, incremental=incremental,
                                    validate_only=validate_only)
    try:
        if rt == BROKER:
            raise ConfigError("logmq's broker settings are static: set them in the config "
                              "file or LOGMQ_* variables and restart")
        if rt != TOPIC:
            raise _InvalidRequest(f"resource type {rt} is not supported")
        changes = _changes(broker, name, list(resource.get("configs") or []), incremental)
        if validate_only:
            from logmq.config import validate_topic_config

            validate_topic_config({k: v for k, v in changes.items() if v is not None})
        else:
            broker.alter_topic_config(name, changes, replace=not incremental)
    except LogMQError as e:
        res["error_code"] = e.kafka_code
        res["error_message"] = str(e)
    return res
