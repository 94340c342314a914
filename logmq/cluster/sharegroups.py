"""Share groups on a cluster as an admin sees them: which exist, where each one stands.

confluent-kafka 2.16 has no share-group admin calls, so these are Kafka protocol requests
made with logmq's own codec: ListGroups v5 filtered to type "share" (sent to every broker,
as groups live on their coordinators), FindCoordinator v4, and DescribeShareGroupOffsets v1,
whose ``lag`` (KIP-1226) counts the records not yet acknowledged or archived: what an
embedded queue calls its depth. Plain-text listeners only; on TLS or SASL the calls raise
UnsupportedOnClusterError naming Kafka's ``kafka-share-groups.sh``.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from logmq import errors
from logmq.protocol import decode_response, encode_request

__all__ = ["ShareGroupAdmin", "ShareGroupOffsets", "call"]

_SIZE = struct.Struct(">i")


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise errors.ProtocolError("the broker closed the connection")
        buf += chunk
    return bytes(buf)


def call(host_port: str, api: int, version: int, body: Mapping[str, Any],
         timeout: float) -> dict[str, Any]:
    """One request on a fresh connection; the decoded response body."""
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as s:
            s.sendall(encode_request(api, version, 1, "logmq-admin", dict(body)))
            (size,) = _SIZE.unpack(_recv(s, 4))
            _corr, resp = decode_response(api, version, _recv(s, size))
    except OSError as e:
        raise errors.KafkaTimeoutError(f"{host_port} did not answer api {api}: {e}") from None
    return resp


@dataclass
class ShareGroupOffsets:
    """Where one share group stands: per topic and partition, (start offset, lag)."""

    group: str
    state: str
    partitions: dict[str, dict[int, tuple[int, int]]] = field(default_factory=dict)

    def depth(self, topic: str | None = None) -> int:
        """Records not yet acknowledged (all topics, or one); unknown lags count as 0."""
        return sum(max(0, lag) for t, parts in self.partitions.items()
                   if topic is None or t == topic for _start, lag in parts.values())


class ShareGroupAdmin:
    """Listing and describing share groups of one cluster (``bootstrap``: host:port,...)."""

    def __init__(self, bootstrap: str, settings: Mapping[str, Any], timeout: float) -> None:
        proto = str(settings.get("security_protocol",
                                 settings.get("security.protocol", "PLAINTEXT"))).upper()
        if proto != "PLAINTEXT":
            raise errors.UnsupportedOnClusterError(
                f"share-group admin on a {proto} listener: logmq asks over plain text only; "
                "use Kafka's kafka-share-groups.sh --describe")
        self.bootstrap = bootstrap.split(",")[0]
        self.timeout = timeout

    def _brokers(self) -> list[str]:
        md = call(self.bootstrap, 3, 4, {"topics": [], "allow_auto_topic_creation": False},
                  self.timeout)
        return [f"{b['host']}:{b['port']}" for b in md["brokers"]] or [self.bootstrap]

    def list_groups(self) -> list[tuple[str, str]]:
        """(group id, state) of every share group, sorted."""
        found: dict[str, str] = {}
        for hp in self._brokers():
            r = call(hp, 16, 5, {"states_filter": [], "types_filter": ["share"]}, self.timeout)
            if r["error_code"]:
                raise errors.LogMQError(f"ListGroups on {hp}: error {r['error_code']}")
            for g in r["groups"]:
                found[g["group_id"]] = g["group_state"]
        return sorted(found.items())

    def describe(self, group: str, state: str = "") -> ShareGroupOffsets:
        r = call(self.bootstrap, 10, 4, {"key_type": 0, "coordinator_keys": [group]},
                 self.timeout)
        (coord,) = r["coordinators"]
        if coord["error_code"]:
            raise errors.LogMQError(f"no coordinator for share group {group!r} "
                                    f"(error {coord['error_code']})")
        resp = call(f"{coord['host']}:{coord['port']}", 90, 1,
                    {"groups": [{"group_id": group, "topics": None}]}, self.timeout)
        out = ShareGroupOffsets(group, state)
        for g in resp["groups"]:
            for t in g["topics"] or []:
                for p in t["partitions"]:
                    if not p["error_code"]:
                        out.partitions.setdefault(t["topic_name"], {})[p["partition_index"]] = (
                            p["start_offset"], p["lag"])
        return out
