"""Every setting logmq reads, in two tables, resolved once into frozen typed objects.

* :data:`TOPIC_CONFIGS`: per-topic keys under Kafka's dotted names (``retention.ms``), so one
  dict works in ``create_topic(config=...)``, the CLI and over the wire (CreateTopics,
  DescribeConfigs). Python keyword arguments may use underscores (``retention_ms``).
  :class:`TopicConfig` is the resolved, typed view the storage layer and the cleaner act on.
* :data:`BROKER_KEYS`: data-directory-wide settings (partitions of auto-created topics, the
  cleaner's and the group coordinator's knobs, the server's listen address...).
  :func:`load_broker_config` builds a :class:`BrokerConfig` from built-in defaults, a TOML
  file, ``LOGMQ_*`` environment variables and keyword arguments (later wins) and records
  where each value came from, so a ``--print-config`` can show provenance.

This module sits below every other layer (it imports only :mod:`logmq.errors`): storage,
services and surfaces all read their settings from here, so a default exists exactly once.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from logmq.errors import ConfigError, ConfigKeyError

__all__ = [
    "FSYNC_MODES",
    "ConfigKey",
    "TopicConfigDef",
    "TOPIC_CONFIGS",
    "TopicConfig",
    "normalize_key",
    "validate_topic_config",
    "resolve",
    "topic_config_from",
    "BROKER_KEYS",
    "BrokerConfig",
    "load_broker_config",
]

FSYNC_MODES = ("always", "interval", "never")
_WEEK_MS = 7 * 24 * 3600 * 1000


# ---------------------------------------------------------------------------- parsers
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
    if isinstance(v, bool):
        raise ValueError("expected an integer")
    n = int(v)
    if n < 1:
        raise ValueError("must be >= 1")
    return n


def _float(lo: float | None = None) -> Callable[[Any], float]:
    def parse(v: Any) -> float:
        if isinstance(v, bool):
            raise ValueError("expected a number")
        x = float(v)
        if lo is not None and x < lo:
            raise ValueError(f"must be >= {lo}")
        return x

    return parse


def _opt_rate(v: Any) -> float | None:
    if v is None or v == "" or v == "null" or v == "none":
        return None
    x = _float()(v)
    if x <= 0:
        raise ValueError("must be > 0 (or unset for no limit)")
    return x


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("expected a string")
    return v


def _opt_str(v: Any) -> str | None:
    return None if v is None or v == "" else _str(v)


def _opt_table(v: Any) -> dict[str, Any] | None:
    if v is None:
        return None
    if not isinstance(v, Mapping):
        raise ValueError("expected a table")
    return dict(v)


def _policy(v: Any) -> str:
    parts = sorted(p.strip() for p in str(v).split(",") if p.strip())
    if not parts or any(p not in ("delete", "compact") for p in parts):
        raise ValueError("must be delete, compact or compact,delete")
    return ",".join(sorted(set(parts)))


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


# ---------------------------------------------------------------------------- topic keys
@dataclass(frozen=True)
class ConfigKey:
    """One setting: its name, Python attribute, type, default, parser and a one-line doc.

    ``kafka`` is False for logmq-only topic keys (Kafka has no ``fsync``), so the wire server
    can tell Kafka's keys from ours; for broker keys ``env`` is the environment variable.
    """

    name: str
    attr: str
    type: type
    default: Any
    parse: Callable[[Any], Any]
    doc: str
    kafka: bool = True
    env: str | None = None


#: the old name of a topic key's row (``broker/config.py`` exported it)
TopicConfigDef = ConfigKey


def _topic(name: str, typ: type, default: Any, parse: Callable[[Any], Any], doc: str,
           kafka: bool = True) -> ConfigKey:
    return ConfigKey(name, name.replace(".", "_"), typ, default, parse, doc, kafka)


_TOPIC_DEFS = [
    _topic("cleanup.policy", str, "delete", _policy,
           "delete (retention), compact (latest value per key), or compact,delete"),
    _topic("retention.ms", int, _WEEK_MS, _int(-1),
           "age after which closed segments are deleted; -1 keeps forever"),
    _topic("retention.bytes", int, -1, _int(-1),
           "size per partition beyond which the oldest closed segments go; -1 = no limit"),
    _topic("segment.bytes", int, 1 << 30, _int(1024), "roll the active segment at this size"),
    _topic("segment.ms", int, _WEEK_MS, _int(1), "roll the active segment after this age"),
    _topic("index.interval.bytes", int, 4096, _int(1),
           "bytes of log between two offset-index entries"),
    _topic("max.message.bytes", int, 1048588, _int(64), "largest batch accepted"),
    _topic("delete.retention.ms", int, 24 * 3600 * 1000, _int(0),
           "how long compaction keeps tombstones"),
    _topic("min.compaction.lag.ms", int, 0, _int(0),
           "records younger than this are never compacted"),
    _topic("min.cleanable.dirty.ratio", float, 0.5, float,
           "compact when this share of the closed log is not yet cleaned"),
    _topic("fsync", str, "interval", _fsync,
           "always: fsync each append before acknowledging; interval: every flush.ms or "
           "flush.messages; never: leave it to the OS (fsync on close only)", kafka=False),
    _topic("flush.ms", int, 1000, _int(1), "fsync interval for fsync=interval"),
    _topic("flush.messages", int, None, _opt_int,
           "also fsync after this many messages for fsync=interval (unset: time only)"),
    _topic("message.timestamp.type", str, "CreateTime", _ts_type,
           "record timestamps are the producer's"),
    _topic("message.timestamp.before.max.ms", int, (1 << 63) - 1, _int(0),
           "produce refuses records older than this (broker clock); default unbounded"),
    _topic("message.timestamp.after.max.ms", int, 3_600_000, _int(0),
           "produce refuses records this far in the future (broker clock)"),
    _topic("max.queue.depth", int, None, _opt_int,
           "queue topics: producers block (then QueueFullError) while a share group "
           "holds this many unacknowledged records (unset: no limit)", kafka=False),
]

TOPIC_CONFIGS: dict[str, ConfigKey] = {d.name: d for d in _TOPIC_DEFS}


@dataclass(frozen=True)
class TopicConfig:
    """A topic's effective settings, typed (defaults < broker defaults < topic overrides).

    Constructing it with keyword arguments (``TopicConfig(segment_bytes=1 << 20)``) skips
    validation: it is how the storage layer's tests build one; :func:`topic_config_from`
    is the validated path everything else takes.
    """

    cleanup_policy: str = "delete"
    retention_ms: int = _WEEK_MS
    retention_bytes: int = -1
    segment_bytes: int = 1 << 30
    segment_ms: int = _WEEK_MS
    index_interval_bytes: int = 4096
    max_message_bytes: int = 1048588
    delete_retention_ms: int = 24 * 3600 * 1000
    min_compaction_lag_ms: int = 0
    min_cleanable_dirty_ratio: float = 0.5
    fsync: str = "interval"
    flush_ms: int = 1000
    flush_messages: int | None = None
    message_timestamp_type: str = "CreateTime"
    message_timestamp_before_max_ms: int = (1 << 63) - 1
    message_timestamp_after_max_ms: int = 3_600_000
    max_queue_depth: int | None = None

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy.split(",")

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy.split(",")



def normalize_key(key: str) -> str:
    k = key.replace("_", ".")
    if k not in TOPIC_CONFIGS:
        raise ConfigKeyError(key, f"unknown topic config {key!r}")
    return k


def validate_topic_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Normalize names and parse values; raises ConfigError naming the bad key."""
    out: dict[str, Any] = {}
    for key, value in (config or {}).items():
        k = normalize_key(key)
        try:
            out[k] = TOPIC_CONFIGS[k].parse(value)
        except (TypeError, ValueError) as e:
            raise ConfigKeyError(k, f"invalid value {value!r} for {k}: {e}") from None
    return out


def resolve(broker_defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Effective config as a Kafka-named dict: built-in < broker defaults < topic overrides."""
    eff = {k: d.default for k, d in TOPIC_CONFIGS.items()}
    eff.update(broker_defaults)
    eff.update(overrides)
    return eff


def topic_config_from(eff: Mapping[str, Any]) -> TopicConfig:
    """The typed view of an effective (already validated, Kafka-named) config dict."""
    return TopicConfig(**{TOPIC_CONFIGS[k].attr: v for k, v in eff.items() if k in TOPIC_CONFIGS})


assert {f.name for f in fields(TopicConfig)} == {d.attr for d in _TOPIC_DEFS}
assert all(getattr(TopicConfig(), d.attr) == d.default for d in _TOPIC_DEFS)


# ---------------------------------------------------------------------------- broker keys
def _broker(name: str, typ: type, default: Any, parse: Callable[[Any], Any],
            doc: str) -> ConfigKey:
    return ConfigKey(name, name, typ, default, parse, doc, kafka=False,
                     env="LOGMQ_" + name.upper())


BROKER_KEYS: dict[str, ConfigKey] = {d.name: d for d in [
    _broker("data", str, "logmq-data", _str, "data directory (CLI and server)"),
    _broker("auto_create_topics", bool, True, _bool,
            "create a topic the first time a producer writes to it"),
    _broker("num_partitions", int, 1, _int(1), "partitions of a topic created without a count"),
    _broker("cleaner", bool, True, _bool, "run the retention/compaction thread"),
    _broker("cleaner_check_interval_ms", int, 30_000, _int(1),
            "sleep between two cleaner passes"),
    _broker("cleaner_max_bytes_per_sec", float, float(50 << 20), _opt_rate,
            "cap on the cleaner's disk reads plus writes (unset: no cap)"),
    _broker("group_initial_rebalance_delay_ms", int, 0, _int(0),
            "how long a new consumer group waits for more members before the first rebalance"),
    _broker("group_min_session_timeout_ms", int, 1000, _int(1),
            "smallest session timeout a group member may ask for"),
    _broker("group_max_session_timeout_ms", int, 1_800_000, _int(1),
            "largest session timeout a group member may ask for"),
    _broker("map_size", int, 16 << 30, _int(1 << 20), "LMDB map size (address space, bytes)"),
    _broker("repair", bool, False, _bool,
            "cut a partition at damage found in cleanly closed data instead of refusing"),
    _broker("listen", str, "127.0.0.1:9092", _str, "server: HOST:PORT to listen on"),
    _broker("advertised_host", str, None, _opt_str,
            "server: host Metadata tells clients to connect to (default: the listen host)"),
    _broker("max_request_size", int, 100 * 1024 * 1024, _int(1024),
            "server: largest request frame accepted"),
    _broker("max_partitions", int, 100_000, _int(1),
            "partitions of all topics together; a create beyond it is refused before anything "
            "is written (each partition costs descriptors and memory)"),
    _broker("max_partitions_per_topic", int, 10_000, _int(1),
            "partitions one topic may have (CreateTopics / CreatePartitions beyond it refused)"),
    _broker("http", str, None, _opt_str,
            "server: HOST:PORT of the HTTP listener (metrics, health, JSON API, dashboard); "
            "off when unset"),
    _broker("advertise", str, None, _opt_str,
            "server: HOST[:PORT] Metadata tells clients to connect to (default: the listen "
            "address)"),
    _broker("log_level", str, None, _opt_str, "server: debug, info, warning or error"),
    _broker("log_format", str, None, _opt_str, "server: text or json (one object a line)"),
    _broker("limits", dict, None, _opt_table,
            "server: a table of connection/request limits (see README, Limits), e.g. "
            "{max_connections = 100}"),
]}

_FILE_TOPIC_TABLE = "topic_defaults"
_ENV_TOPIC_PREFIX = "LOGMQ_TOPIC_"


@dataclass(frozen=True)
class BrokerConfig:
    """Settings of one open data directory (see :data:`BROKER_KEYS` for each one).

    ``topic_defaults`` are validated topic overrides applied to every topic (Kafka-named);
    ``sources`` maps each key (topic defaults as ``topic_defaults.<name>``) to where its value
    came from: ``default``, ``file:<path>``, ``env:<VAR>`` or ``kwarg``.
    """

    data: str = "logmq-data"
    auto_create_topics: bool = True
    num_partitions: int = 1
    cleaner: bool = True
    cleaner_check_interval_ms: int = 30_000
    cleaner_max_bytes_per_sec: float | None = float(50 << 20)
    group_initial_rebalance_delay_ms: int = 0
    group_min_session_timeout_ms: int = 1000
    group_max_session_timeout_ms: int = 1_800_000
    map_size: int = 16 << 30
    repair: bool = False
    listen: str = "127.0.0.1:9092"
    advertised_host: str | None = None
    max_request_size: int = 100 * 1024 * 1024
    max_partitions: int = 100_000
    max_partitions_per_topic: int = 10_000
    http: str | None = None
    advertise: str | None = None
    log_level: str | None = None
    log_format: str | None = None
    limits: Mapping[str, Any] | None = None
    topic_defaults: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def items(self) -> list[tuple[str, Any, str]]:
        """(key, value, source) of every setting, topic defaults last: for ``--print-config``."""
        out = [(k, getattr(self, k), self.sources.get(k, "default")) for k in BROKER_KEYS]
        for k, v in sorted(self.topic_defaults.items()):
            out.append((f"{_FILE_TOPIC_TABLE}.{k}", v,
                        self.sources.get(f"{_FILE_TOPIC_TABLE}.{k}", "default")))
        return out


assert {f.name for f in fields(BrokerConfig)} == set(BROKER_KEYS) | {"topic_defaults", "sources"}


def _parse_broker(key: str, value: Any, source: str) -> Any:
    d = BROKER_KEYS.get(key)
    if d is None:
        raise ConfigKeyError(key, f"unknown setting {key!r} ({source})", source)
    try:
        return d.parse(value)
    except (TypeError, ValueError) as e:
        raise ConfigKeyError(key, f"invalid value {value!r} for {key} ({source}): {e}",
                             source) from None


def _parse_topic(key: str, value: Any, source: str) -> tuple[str, Any]:
    try:
        k = normalize_key(key)
    except ConfigError:
        raise ConfigKeyError(key, f"unknown setting {key!r} ({source})", source) from None
    try:
        return k, TOPIC_CONFIGS[k].parse(value)
    except (TypeError, ValueError) as e:
        raise ConfigKeyError(k, f"invalid value {value!r} for {k} ({source}): {e}",
                             source) from None


def load_broker_config(
    kwargs: Mapping[str, Any] | None = None,
    *,
    file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> BrokerConfig:
    """Defaults < TOML ``file`` < ``LOGMQ_*`` variables of ``env`` < ``kwargs``.

    ``kwargs`` may mix broker keys and topic keys (``segment_bytes=...``: a default for every
    topic). In the file, topic defaults go in a ``[topic_defaults]`` table; in the
    environment, ``LOGMQ_TOPIC_RETENTION_MS=...``. Unknown ``LOGMQ_*`` variables that are not
    settings (``LOGMQ_PURE``, ``LOGMQ_BOOTSTRAP``) are left alone. ``env=None`` reads nothing
    from the environment. Raises :class:`~logmq.errors.ConfigKeyError` naming the key and
    the source.
    """
    values: dict[str, Any] = {}
    topics: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if file is not None:
        src = f"file:{os.fspath(file)}"
        try:
            with open(file, "rb") as f:
                doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{os.fspath(file)}: not valid TOML: {e}") from None
        for key, value in doc.items():
            if key == _FILE_TOPIC_TABLE:
                if not isinstance(value, dict):
                    raise ConfigKeyError(key, f"{key} must be a table ({src})", src)
                for tk, tv in value.items():
                    k, v = _parse_topic(tk, tv, src)
                    topics[k] = v
                    sources[f"{_FILE_TOPIC_TABLE}.{k}"] = src
            else:
                values[key] = _parse_broker(key, value, src)
                sources[key] = src
    if env is not None:
        for var, value in env.items():
            if var.startswith(_ENV_TOPIC_PREFIX):
                name = var[len(_ENV_TOPIC_PREFIX):].lower()
                k, v = _parse_topic(name, value, f"env:{var}")
                topics[k] = v
                sources[f"{_FILE_TOPIC_TABLE}.{k}"] = f"env:{var}"
            elif var.startswith("LOGMQ_"):
                key = var[len("LOGMQ_"):].lower()
                if key in BROKER_KEYS:
                    values[key] = _parse_broker(key, value, f"env:{var}")
                    sources[key] = f"env:{var}"
    for key, value in (kwargs or {}).items():
        if key == _FILE_TOPIC_TABLE:
            for tk, tv in dict(value).items():
                k, v = _parse_topic(tk, tv, "kwarg")
                topics[k] = v
                sources[f"{_FILE_TOPIC_TABLE}.{k}"] = "kwarg"
        elif key in BROKER_KEYS:
            values[key] = _parse_broker(key, value, "kwarg")
            sources[key] = "kwarg"
        else:
            k, v = _parse_topic(key, value, "kwarg")
            topics[k] = v
            sources[f"{_FILE_TOPIC_TABLE}.{k}"] = "kwarg"
    return BrokerConfig(**values, topic_defaults=topics, sources=sources)
