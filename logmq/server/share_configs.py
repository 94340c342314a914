"""GROUP config resources (type 32) in DescribeConfigs / IncrementalAlterConfigs / AlterConfigs:
share-group settings under Kafka's names (see :mod:`logmq.broker.queues.kafka_configs`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from logmq.broker.queues.kafka_configs import SHARE_GROUP_CONFIGS, ShareGroupConfigs
from logmq.errors import ConfigError, InvalidGroupIdError, LogMQError
from logmq.kafka_codes import ErrorCode as _E

if TYPE_CHECKING:
    from logmq.broker.broker import Broker

__all__ = ["GROUP", "describe_group_resource", "alter_group_resource"]

GROUP = 32
_DYNAMIC_GROUP, _DEFAULT = 8, 5  # Kafka's ConfigSource ids
_T_STRING, _T_INT = 2, 3


def describe_group_resource(broker: Broker, resource: Mapping[str, Any],
                            with_doc: bool) -> dict[str, Any]:
    name = resource["resource_name"]
    keys = resource.get("configuration_keys")
    store = ShareGroupConfigs(broker.meta.env)
    configs: list[dict[str, Any]] = []
    for k, value, default in store.entries(name):
        if keys is not None and k not in keys:
            continue
        configs.append({
            "name": k, "value": value, "read_only": False, "is_default": default,
            "config_source": _DEFAULT if default else _DYNAMIC_GROUP, "is_sensitive": False,
            "synonyms": [], "config_type": _T_INT if k.endswith(".ms") or "count" in k
            else _T_STRING,
            "documentation": SHARE_GROUP_CONFIGS[k][1] if with_doc else None})
    return {"error_code": _E.NONE, "error_message": None, "resource_type": GROUP,
            "resource_name": name, "configs": configs}


def alter_group_resource(broker: Broker, resource: Mapping[str, Any], *, incremental: bool,
                         validate_only: bool) -> dict[str, Any]:
    name = resource["resource_name"]
    res: dict[str, Any] = {"error_code": _E.NONE, "error_message": None,
                           "resource_type": GROUP, "resource_name": name}
    try:
        changes: dict[str, str | None] = {}
        for c in resource.get("configs") or []:
            op = c.get("config_operation", 0) if incremental else 0
            if op == 0:
                if c.get("value") is None:
                    raise ConfigError(f"null value for {c['name']}")
                changes[c["name"]] = c["value"]
            elif op == 1:
                changes[c["name"]] = None
            else:
                raise ConfigError(f"append/subtract is not allowed for {c['name']}")
        ShareGroupConfigs(broker.meta.env).alter(name, changes, replace=not incremental,
                                                 validate_only=validate_only)
    except LogMQError as e:
        plain = isinstance(e, ConfigError) and not isinstance(e, InvalidGroupIdError)
        res["error_code"] = _E.INVALID_CONFIG if plain else e.kafka_code
        res["error_message"] = str(e)
    return res
