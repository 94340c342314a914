"""Topic configuration: Kafka's names, logmq's defaults, and validation in one table.

Keys use Kafka's dotted names (``retention.ms``) so the same dict works in
``create_topic(config=...)``, in the CLI and over the wire (CreateTopics, DescribeConfigs).
Python keyword arguments may use underscores instead (``retention_ms``); both are accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from logmq.errors import ConfigError
from logmq.storage.log import FSYNC_MODES, LogConfig

__all__ = ["TopicConfigDef", "TOPIC_CONFIGS", "normalize_key", "validate_topic_config",
           "resolve", "log_config_from"]


@dataclass(frozen=True)
class TopicConfigDef:
    name: str
    default: Any
    parse: Callable[[Any], Any]
    doc: str


def _int(lo: int | None = None) -> Callable[[Any], int]:
    def parse(v: Any) -> int:
        if isinstance(v, bool):
            raise ValueError("expected an integer")
        n = int(v)
        if lo is not None and n < lo:
            raise ValueError(f"must be >= {lo}")
        return n

    return parse


def _opt_int(v: Any) -> int | None:
    if v is None or v == "" or v == "null":
        return None
    n = int(v)
    if n < 1:
        raise ValueError("must be >= 1")
    return n


def _policy(v: Any) -> str:
    parts = sorted(p.strip() for p in str(v).split(",") if p.strip())
    if not parts or any(p not in ("delete", "compact") for p in parts):
        raise ValueError("must be delete, compact or compact,delete")
    return ",".join(sorted(set(parts), reverse=False))


def _fsync(v: Any) -> str:
    s = str(v)
    if s not in FSYNC_MODES:
        raise ValueError(f"must be one of {', '.join(FSYNC_MODES)}")
    return s


def _ts_type(v: Any) -> str:
    s = str(v)
    if s != "CreateTime":
        raise ValueError("only CreateTime is supported")
    return s


_DEFS = [
    TopicConfigDef("cleanup.policy", "delete", _policy,
                   "delete (retention), compact (latest value per key), or compact,delete"),
    TopicConfigDef("retention.ms", 7 * 24 * 3600 * 1000, _int(-1),
                   "age after which closed segments are deleted; -1 keeps forever"),
    TopicConfigDef("retention.bytes", -1, _int(-1),
                   "size per partition beyond which the oldest closed segments go; -1 = no limit"),
    TopicConfigDef("segment.bytes", 1 << 30, _int(1024), "roll the active segment at this size"),
    TopicConfigDef("segment.ms", 7 * 24 * 3600 * 1000, _int(1),
                   "roll the active segment after this age"),
    TopicConfigDef("index.interval.bytes", 4096, _int(1),
                   "bytes of log between two offset-index entries"),
    TopicConfigDef("max.message.bytes", 1048588, _int(64), "largest batch accepted"),
    TopicConfigDef("delete.retention.ms", 24 * 3600 * 1000, _int(0),
                   "how long compaction keeps tombstones"),
    TopicConfigDef("min.compaction.lag.ms", 0, _int(0),
                   "records younger than this are never compacted"),
    TopicConfigDef("min.cleanable.dirty.ratio", 0.5, float,
                   "compact when this share of the closed log is not yet cleaned"),
    TopicConfigDef("fsync", "interval", _fsync,
                   "always: fsync each append before acknowledging; interval: every flush.ms or "
                   "flush.messages; never: leave it to the OS (fsync on close only)"),
    TopicConfigDef("flush.ms", 1000, _int(1), "fsync interval for fsync=interval"),
    TopicConfigDef("flush.messages", None, _opt_int,
                   "also fsync after this many messages for fsync=interval (unset: time only)"),
    TopicConfigDef("message.timestamp.type", "CreateTime", _ts_type,
                   "record timestamps are the producer's"),
    TopicConfigDef("message.timestamp.before.max.ms", (1 << 63) - 1, _int(0),
                   "produce refuses records older than this (broker clock); default unbounded"),
    TopicConfigDef("message.timestamp.after.max.ms", 3_600_000, _int(0),
                   "produce refuses records this far in the future (broker clock)"),
    TopicConfigDef("max.queue.depth", None, _opt_int,
                   "queue topics: producers block (then QueueFullError) while a share group "
                   "holds this many unacknowledged records (unset: no limit)"),
]

TOPIC_CONFIGS: dict[str, TopicConfigDef] = {d.name: d for d in _DEFS}


def normalize_key(key: str) -> str:
    k = key.replace("_", ".")
    if k not in TOPIC_CONFIGS:
        raise ConfigError(f"unknown topic config {key!r}")
    return k


def validate_topic_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Normalize names and parse values; raises ConfigError naming the bad key."""
    out: dict[str, Any] = {}
    for key, value in (config or {}).items():
        k = normalize_key(key)
        try:
            out[k] = TOPIC_CONFIGS[k].parse(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"invalid value {value!r} for {k}: {e}") from None
    return out


def resolve(broker_defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Effective config: built-in defaults < broker defaults < topic overrides."""
    eff = {k: d.default for k, d in TOPIC_CONFIGS.items()}
    eff.update(broker_defaults)
    eff.update(overrides)
    return eff


def log_config_from(eff: Mapping[str, Any]) -> LogConfig:
    return LogConfig(
        segment_bytes=eff["segment.bytes"],
        segment_ms=eff["segment.ms"],
        index_interval_bytes=eff["index.interval.bytes"],
        max_message_bytes=eff["max.message.bytes"],
        fsync=eff["fsync"],
        flush_ms=eff["flush.ms"],
        flush_messages=eff["flush.messages"],
    )
