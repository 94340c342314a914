"""Every setting logmq reads, in two tables, resolved once into frozen typed objects.

* :data:`TOPIC_CONFIGS`: per-topic keys under Kafka's dotted names (``retention.ms``), so one
  dict works in ``create_topic(config=...)``, the CLI and over the wire (CreateTopics,
  DescribeConfigs). Python keyword arguments may use underscores (``retention_ms``).
  :class:`TopicConfig` is the resolved, typed view the storage layer and the cleaner act on.
* :data:`BROKER_KEYS`: data-directory-wide settings (partitions of auto-created topics, the
  cleaner's and the group coordinator's knobs, the server's listen address...).
  :data:`LIMIT_KEYS` (``limits.<name>``) are the Kafka server's bounds.
  :func:`logmq.config_load.load_broker_config` builds a :class:`BrokerConfig` from built-in
  defaults, a TOML file, ``LOGMQ_*`` environment variables, keyword arguments and command-line flags (later
  wins) and records where each value came from, so ``--print-config`` can show provenance
  and docs/configuration.md is generated from here (tools/gen_config_docs.py).

This module sits below every other layer (it imports only base modules): storage,
services and surfaces all read their settings from here, so a default exists exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from logmq.config_parsers import (
    FSYNC_MODES,
    LOG_FORMATS,
    LOG_LEVELS,
    _advertised,
    _bool,
    _choice,
    _fsync,
    _hostport,
    _int,
    _listeners,
    _opt_int,
    _opt_rate,
    _opt_str,
    _opt_table,
    _policy,
    _str,
    _ts_type,
)
from logmq.errors import ConfigKeyError

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
    "LIMIT_KEYS",
    "LOG_LEVELS",
    "LOG_FORMATS",
    "flag_for",
    "env_for",
]

_WEEK_MS = 7 * 24 * 3600 * 1000


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


def _encryption(v: Any) -> str:
    """``none`` or ``aes-256-gcm`` (encryption at rest, logmq.codec.seal)."""
    s = "none" if v is None or v == "" else _str(v).strip().lower()
    if s not in ("none", "aes-256-gcm"):
        raise ValueError("must be none or aes-256-gcm")
    return s


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
    _topic("encryption", str, "none", _encryption,
           "aes-256-gcm: seal each stored batch's records (encryption at rest, keys from "
           "encryption_key_file or LOGMQ_ENCRYPTION_KEYS; docs/encryption.md); none: plain. "
           "Cannot be turned off again on a topic that had it", kafka=False),
    _topic("encryption.key.id", str, "", lambda v: "" if v is None else _str(v).strip(),
           "the key id new batches of an encrypted topic are sealed under (empty: the key "
           "ring's active key)", kafka=False),
    _topic("errors.deadletterqueue.group.enable", bool, False, _bool,
           "Kafka 4.4's opt-in (KIP-1191) for a topic to receive a share group's dead "
           "letters; kept for Kafka clients and tools that set it: logmq writes dead letters "
           "to any topic a group names"),
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
    encryption: str = "none"
    encryption_key_id: str = ""
    errors_deadletterqueue_group_enable: bool = False

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
    _broker("data", str, "logmq-data", _str,
            "data directory of every command and the server; `:memory:` for a log that lives "
            "in memory and is gone when the process ends"),
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
    _broker("group_consumer_session_timeout_ms", int, 45_000, _int(1),
            "session timeout of consumer-protocol (KIP-848) group members (Kafka's "
            "group.consumer.session.timeout.ms)"),
    _broker("group_consumer_heartbeat_interval_ms", int, 5_000, _int(1),
            "how often consumer-protocol (KIP-848) members heartbeat (Kafka's "
            "group.consumer.heartbeat.interval.ms)"),
    _broker("transaction_max_timeout_ms", int, 900_000, _int(1),
            "largest transaction.timeout.ms a transactional producer may ask for (Kafka's "
            "transaction.max.timeout.ms)"),
    _broker("map_size", int, 16 << 30, _int(1 << 20), "LMDB map size (address space, bytes)"),
    _broker("repair", bool, False, _bool,
            "cut a partition at damage found in cleanly closed data instead of refusing"),
    _broker("listen", str, "127.0.0.1:9092", _listeners, "server: [PROTOCOL://]HOST:PORT to "
            "listen on (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL); repeatable, `listeners`"),
    _broker("advertised_host", str, None, _opt_str,
            "server: host Metadata tells clients to connect to (prefer `advertise`)"),
    _broker("max_request_size", int, 100 * 1024 * 1024, _int(1024),
            "server: largest request frame accepted"),
    _broker("max_partitions", int, 100_000, _int(1),
            "partitions of all topics together; a create beyond it is refused before anything "
            "is written (each partition costs descriptors and memory)"),
    _broker("max_partitions_per_topic", int, 10_000, _int(1),
            "partitions one topic may have (CreateTopics / CreatePartitions beyond it refused)"),
    _broker("http", str, None, _hostport(optional=True),
            "server: HOST:PORT of the HTTP listener (metrics, health, JSON API, dashboard); "
            "off when unset"),
    _broker("advertise", str, None, _advertised,
            "server: HOST[:PORT] Metadata tells clients to connect to (default: the listen "
            "address); or per listener, Kafka style: `advertised_listeners = "
            "\"SASL_SSL://HOST:PORT,PLAINTEXT://HOST:PORT\"`"),
    _broker("ssl_certfile", str, None, _opt_str, "server: PEM certificate of TLS listeners"),
    _broker("ssl_keyfile", str, None, _opt_str, "server: its PEM key (unset: in certfile)"),
    _broker("ssl_cafile", str, None, _opt_str, "server: PEM CA; TLS clients must present a "
            "certificate it signed (mTLS; SSL principal `User:<subject DN>`)"),
    _broker("sasl_mechanisms", str, "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN", _str,
            "server: what SASL_* listeners offer (users: `logmq users`)"),
    _broker("allow_insecure", bool, False, _bool, "server: serve a non-loopback address without "
            "authentication (PLAINTEXT, SSL without ssl_cafile, queue_listen)"),
    _broker("log_level", str, None, _choice(*LOG_LEVELS),
            "server: " + ", ".join(LOG_LEVELS) + " (unset: info, or debug with -v)"),
    _broker("log_format", str, None, _choice(*LOG_FORMATS),
            "server: text, or json (one object a line; unset: text)"),
    _broker("queue_listen", str, None, _hostport(optional=True),
            "server: HOST:PORT where RemoteQueue workers in other processes join share groups "
            "(off when unset)"),
    _broker("queue_authkey_file", str, None, _opt_str,
            "server: hex key file RemoteQueue clients must present (unset: DATA/queue.authkey, "
            "created with mode 0600 if missing; required with data = :memory:)"),
    _broker("encryption_key_file", str, None, _opt_str,
            "encryption at rest: JSON or TOML file of key ids to base64 256-bit keys and the "
            "active id (docs/encryption.md); unset: keys from LOGMQ_ENCRYPTION_KEYS, if any"),
    # security (issue 14: ACLs, audit; logmq/broker/acls.py, logmq/server/authz.py)
    _broker("authorizer", bool, False, _bool,
            "server: check Kafka ACLs on every request (`logmq acls`, kafka-acls); off: every "
            "client may do everything"),
    _broker("super_users", str, None, _opt_str,
            "server: comma-separated principals the authorizer never refuses (User:admin)"),
    _broker("allow_everyone_if_no_acl_found", bool, False, _bool,
            "server: with the authorizer, allow a resource no ACL names (Kafka's "
            "allow.everyone.if.no.acl.found)"),
    _broker("audit_log", str, None, _opt_str,
            "server: JSON-lines audit file (unset: DATA/audit.jsonl when the authorizer is "
            "on, none when off; `off` disables it)"),
    _broker("audit_topic", str, None, _opt_str,
            "server: also append audit entries to this topic (created if missing; key: the "
            "event, value: the JSON line)"),
    _broker("limits", dict, None, _opt_table,
            "server: connection and request limits, one `limits.<name>` key each (below)"),
]}

# ---------------------------------------------------------------------------- server limits
#: ``limits.<name>``: the bounds of logmq.server.limits.ServerLimits (its defaults are the
#: defaults; this table holds what may be set, the lower bound and the doc). max_request_size
#: is the top-level key of the same name.
_LIMIT_ROWS: list[tuple[str, int, str]] = [
    ("queued_max_request_bytes", 1024,
     "bytes of unfinished request frames all connections together may hold (at least "
     "max_request_size); Kafka's queued.max.request.bytes"),
    ("connections_max_idle_ms", 0,
     "close a connection idle this long (0: never); Kafka's connections.max.idle.ms"),
    ("request_arrival_timeout_ms", 0,
     "a request must arrive whole within this time of its first byte (0: no limit)"),
    ("max_connections", 1, "open client connections (never more than half the fd limit)"),
    ("max_connections_per_ip", 1, "open connections from one IP address"),
    ("max_fetch_wait_ms", 0, "longest a Fetch may wait for data (its max_wait_ms is cut)"),
    ("max_group_members", 1, "members of one consumer group (Kafka's group.max.size)"),
    ("max_group_member_metadata_bytes", 1, "bytes of one member's JoinGroup protocol metadata "
     "and of one member's SyncGroup assignment (logmq's own; Kafka has no such cap)"),
    ("max_rebalance_timeout_ms", 0, "longest a JoinGroup's rebalance may wait for members "
     "(its rebalance_timeout_ms is cut)"),
    ("max_request_elements", 0, "array elements of one request, all arrays together"),
    ("max_partitions_per_create", 0, "partitions one CreateTopics request may ask for"),
    ("max_uncompressed_batch_bytes", 0, "largest payload one produced batch may expand to"),
    ("offload_request_bytes", 0, "requests larger than this are handled off the event loop"),
    ("malformed_log_per_minute", 0, "log lines about malformed input per minute (the rest "
     "are counted)"),
    ("auth_failures_per_minute", 1, "failed SASL logins per IP a minute, then refused"),
    ("failed_auth_delay_ms", 0, "delay before answering a failed SASL authentication"),
    ("connections_max_reauth_ms", 0, "SASL session lifetime: clients re-authenticate "
     "(KIP-368), expired connections are closed (0: off; Kafka's connections.max.reauth.ms)"),
    ("shutdown_timeout_ms", 0, "SIGTERM to the data directory's close, whatever clients do: "
     "requests in progress get half, then connections are cut and worker-thread jobs "
     "abandoned"),
]
LIMIT_KEYS: dict[str, ConfigKey] = {
    f"limits.{n}": ConfigKey(f"limits.{n}", n, int, None, _int(lo), doc, kafka=False,
                             env=f"LOGMQ_LIMITS_{n.upper()}")
    for n, lo, doc in _LIMIT_ROWS}
#: ``limits.api_elements.<API>``: array elements one request of that API may carry
API_ELEMENTS_PREFIX = "limits.api_elements."


def api_label(api_key: int) -> str:
    """``produce`` for 0: how ``limits.api_elements.<API>`` names an API."""
    from logmq.kafka_codes import ApiKey

    try:
        return ApiKey(api_key).name.lower()
    except ValueError:
        return str(api_key)


def _api_key(name: str) -> int:
    from logmq.kafka_codes import ApiKey

    s = name.strip()
    if s.isdigit():
        return int(s)
    try:
        return int(ApiKey[s.upper().replace("-", "_")])
    except KeyError:
        raise ValueError(f"unknown Kafka API {name!r} (a number or a name such as "
                         "produce, fetch, metadata)") from None


_FILE_TOPIC_TABLE = "topic_defaults"
_ENV_TOPIC_PREFIX = "LOGMQ_TOPIC_"
_ENV_LIMIT_PREFIX = "LOGMQ_LIMITS_"


def flag_for(key: str) -> str:
    """The ``logmq serve`` option that sets ``key`` (a broker, limit or topic-default key)."""
    if key.startswith("limits."):
        return "--limit"
    if key.startswith(_FILE_TOPIC_TABLE + "."):
        return "--topic-default"
    return "--" + key.replace("_", "-")


def env_for(key: str) -> str:
    """The ``LOGMQ_*`` variable that sets ``key``."""
    if key.startswith(_FILE_TOPIC_TABLE + "."):
        return _ENV_TOPIC_PREFIX + key.split(".", 1)[1].replace(".", "_").upper()
    return "LOGMQ_" + key.replace(".", "_").upper()


@dataclass(frozen=True)
class BrokerConfig:
    """Settings of one open data directory (see :data:`BROKER_KEYS` for each one).

    ``topic_defaults`` are validated topic overrides applied to every topic (Kafka-named);
    ``limits`` the server limits that were set (``{name: value}``, ``api_elements`` a dict of
    API key to count); ``sources`` maps each key (``topic_defaults.<name>``,
    ``limits.<name>``) to where its value came from: ``default``, ``file:<path>``,
    ``env:<VAR>``, ``kwarg`` or ``flag:<option>``.
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
    group_consumer_session_timeout_ms: int = 45_000
    group_consumer_heartbeat_interval_ms: int = 5_000
    transaction_max_timeout_ms: int = 900_000
    map_size: int = 16 << 30
    repair: bool = False
    listen: str = "127.0.0.1:9092"
    advertised_host: str | None = None
    max_request_size: int = 100 * 1024 * 1024
    max_partitions: int = 100_000
    max_partitions_per_topic: int = 10_000
    http: str | None = None
    advertise: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cafile: str | None = None
    sasl_mechanisms: str = "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN"
    allow_insecure: bool = False
    log_level: str | None = None
    log_format: str | None = None
    queue_listen: str | None = None
    queue_authkey_file: str | None = None
    encryption_key_file: str | None = None
    authorizer: bool = False
    super_users: str | None = None
    allow_everyone_if_no_acl_found: bool = False
    audit_log: str | None = None
    audit_topic: str | None = None
    limits: Mapping[str, Any] | None = None
    topic_defaults: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def items(self) -> list[tuple[str, Any, str]]:
        """(key, value, source) of every setting, limits then topic defaults last: for
        ``--print-config``. A limit not set shows None (the server's default)."""
        out = [(k, getattr(self, k), self.sources.get(k, "default"))
               for k in BROKER_KEYS if k != "limits"]
        lim = dict(self.limits or {})
        for k in LIMIT_KEYS:
            out.append((k, lim.get(k[7:]), self.sources.get(k, "default")))
        for api, n in sorted(dict(lim.get("api_elements") or {}).items()):
            k = f"{API_ELEMENTS_PREFIX}{api_label(api)}"
            out.append((k, n, self.sources.get(k, "default")))
        for k, v in sorted(self.topic_defaults.items()):
            out.append((f"{_FILE_TOPIC_TABLE}.{k}", v,
                        self.sources.get(f"{_FILE_TOPIC_TABLE}.{k}", "default")))
        return out


assert {f.name for f in fields(BrokerConfig)} == set(BROKER_KEYS) | {"topic_defaults", "sources"}
assert all(getattr(BrokerConfig(), k) == d.default for k, d in BROKER_KEYS.items())
