"""Every bound the Kafka server puts on what clients may make it hold or do, in one place.

The defaults are meant for a broker on an untrusted network: each one is far above what a
well-behaved Kafka client sends, and low enough that a hostile client cannot turn a small
request into unbounded memory, CPU on the event loop, or held connections. ``logmq serve
--limit NAME=VALUE`` and ``KafkaServer(limits=...)`` change them; the README's "Limits" table
lists them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from logmq.codec.validate import MAX_UNCOMPRESSED_BYTES
from logmq.errors import ConfigError

__all__ = ["ServerLimits", "DEFAULT_API_ELEMENTS", "parse_limit"]

#: Array elements one request of each API may carry (all arrays of the request together).
#: Sized by what the API can sensibly hold: a consumer fetching 10,000 partitions sends about
#: 20,000 (topics + partitions); a Metadata request names topics, not millions of them.
DEFAULT_API_ELEMENTS: dict[int, int] = {
    0: 100_000,  # Produce: topics + partitions
    1: 100_000,  # Fetch
    2: 100_000,  # ListOffsets
    3: 10_000,  # Metadata: topic names
    8: 100_000,  # OffsetCommit
    9: 100_000,  # OffsetFetch
    10: 100,  # FindCoordinator
    11: 1_000,  # JoinGroup: protocols
    12: 10,  # Heartbeat
    13: 10_000,  # LeaveGroup: members
    14: 10_000,  # SyncGroup: assignments
    15: 1_000,  # DescribeGroups (each group's members are in the answer)
    16: 100,  # ListGroups
    18: 100,  # ApiVersions
    19: 10_000,  # CreateTopics: topics + configs + assignments
    20: 10_000,  # DeleteTopics
    21: 100_000,  # DeleteRecords
    22: 10,  # InitProducerId
    32: 10_000,  # DescribeConfigs: resources + keys
    33: 10_000,  # AlterConfigs: resources + configs
    35: 100_000,  # DescribeLogDirs: topics + partitions
    37: 100_000,  # CreatePartitions: topics + assignments + broker ids
    42: 10_000,  # DeleteGroups
    43: 100_000,  # ElectLeaders: topics + partitions
    44: 10_000,  # IncrementalAlterConfigs
    47: 100_000,  # OffsetDelete: topics + partitions
    61: 100_000,  # DescribeProducers: topics + partitions
    75: 10_000,  # DescribeTopicPartitions: topic names
}


@dataclass(frozen=True)
class ServerLimits:
    """Bounds of one :class:`~logmq.server.app.KafkaServer` (Kafka's names in the comments).

    Times are milliseconds, sizes bytes. 0 disables the idle and request-arrival timeouts.
    """

    #: Largest request frame (Kafka: socket.request.max.bytes, default 100 MiB). It is also the
    #: per-connection budget: a connection reads one request at a time, so it never holds more
    #: than one frame plus one read chunk.
    max_request_size: int = 100 * 1024 * 1024
    #: Bytes of announced-but-unfinished request frames all connections together may hold
    #: (Kafka: queued.max.request.bytes). A connection announcing a frame that does not fit
    #: waits (unread) until others finish; a frame must still arrive whole in time.
    queued_max_request_bytes: int = 256 * 1024 * 1024
    #: Close a connection with no request in progress after this long (connections.max.idle.ms).
    connections_max_idle_ms: int = 600_000
    #: A request must arrive whole within this time of its first byte (slowloris guard).
    request_arrival_timeout_ms: int = 60_000
    #: Open client connections (max.connections); never more than half the fd limit.
    max_connections: int = 4_096
    #: Open connections from one IP address (max.connections.per.ip).
    max_connections_per_ip: int = 1_024
    #: Longest a Fetch may wait for data (its max_wait_ms is cut to this).
    max_fetch_wait_ms: int = 30_000
    #: Longest a JoinGroup's rebalance may wait for members (its rebalance_timeout_ms is cut
    #: to this; Kafka Streams asks for 2^31-1 ms).
    max_rebalance_timeout_ms: int = 1_800_000
    #: Members one consumer group may hold (Kafka: group.max.size); a new member beyond it
    #: gets GROUP_MAX_SIZE_REACHED. Every member's metadata is in each rebalance's answer.
    max_group_members: int = 1_000
    #: Bytes of one member's JoinGroup protocol metadata (all protocols together) and of one
    #: member's SyncGroup assignment. The coordinator keeps both and repeats every member's
    #: metadata to the leader each rebalance, so without a cap one group could hold
    #: max_group_members x max_request_size. Java's subscription of 10,000 topics is ~300 KiB.
    max_group_member_metadata_bytes: int = 1024 * 1024
    #: Total array elements of one request; per-API values in ``api_elements`` win.
    max_request_elements: int = 100_000
    api_elements: Mapping[int, int] = field(default_factory=lambda: dict(DEFAULT_API_ELEMENTS))
    #: Partitions one CreateTopics topic may ask for, and all topics of one request together.
    max_partitions_per_create: int = 10_000
    #: Largest uncompressed payload one produced batch may expand to.
    max_uncompressed_batch_bytes: int = MAX_UNCOMPRESSED_BYTES
    #: Requests larger than this are handled in a worker thread, off the event loop.
    offload_request_bytes: int = 64 * 1024
    #: Malformed-input log lines per minute (the rest are counted, then summarized).
    malformed_log_per_minute: int = 10
    #: SASL: failed authentications one IP address may have a minute; beyond, its attempts
    #: are refused without checking credentials until the minute has passed.
    auth_failures_per_minute: int = 60
    #: SASL: a failed authentication is answered after this delay (Kafka:
    #: connection.failed.authentication.delay.ms).
    failed_auth_delay_ms: int = 100
    #: SASL: session lifetime; clients re-authenticate before it ends (KIP-368) and a
    #: connection whose session expired is closed (Kafka: connections.max.reauth.ms; 0: off).
    connections_max_reauth_ms: int = 0
    #: ``logmq serve``: SIGTERM/SIGINT to the data directory's close, whatever clients do.
    #: Requests in progress get half of it; then connections are cut and work still running
    #: in worker threads is abandoned (its requests get no answer). Closing the data
    #: directory follows and is always clean.
    shutdown_timeout_ms: int = 10_000

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "api_elements":
                if any(not isinstance(n, int) or n < 1 for n in v.values()):
                    raise ConfigError("api_elements values must be integers >= 1")
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"server limit {f.name} must be an integer >= 0, got {v!r}")
        if self.max_request_size < 1024:
            raise ConfigError("max_request_size must be at least 1024 bytes")
        if self.queued_max_request_bytes < self.max_request_size:
            raise ConfigError("queued_max_request_bytes must be >= max_request_size "
                              "(else a maximal request could never be read)")
        if self.max_connections < 1 or self.max_connections_per_ip < 1:
            raise ConfigError("max_connections and max_connections_per_ip must be >= 1")

    def elements_for(self, api_key: int) -> int:
        return min(self.api_elements.get(api_key, self.max_request_elements),
                   self.max_request_elements)

    def replace(self, **changes: Any) -> ServerLimits:
        """A copy with ``changes`` (names as the fields, or Kafka's dotted names)."""
        kw = {_field_name(k): v for k, v in changes.items()}
        if "max_request_size" in kw and "queued_max_request_bytes" not in kw:
            kw["queued_max_request_bytes"] = max(self.queued_max_request_bytes,
                                                 kw["max_request_size"])
        return dataclasses.replace(self, **kw)


def _field_name(key: str) -> str:
    name = key.replace(".", "_").replace("-", "_")
    names = {f.name for f in dataclasses.fields(ServerLimits)} - {"api_elements"}
    if name not in names:
        raise ConfigError(f"unknown server limit {key!r} (known: {', '.join(sorted(names))})")
    return name


def parse_limit(text: str) -> tuple[str, int]:
    """``NAME=VALUE`` of ``logmq serve --limit`` (VALUE an integer, with _ allowed)."""
    name, sep, value = text.partition("=")
    if not sep:
        raise ConfigError(f"expected NAME=VALUE, got {text!r}")
    try:
        return _field_name(name.strip()), int(value.strip().replace("_", ""))
    except ValueError:
        raise ConfigError(f"limit {name!r}: {value!r} is not an integer") from None
