"""A small blocking Kafka client on top of the sans-I/O codec, for tools talking to a server.

The CLI uses it for ``--bootstrap host:port``, so the same commands work on a data directory
and on a running ``logmq serve``. It speaks to a single node (which is what logmq is) and
covers the admin and inspection calls the tools need plus simple produce and fetch; an
application should use a full Kafka client (confluent-kafka, aiokafka) instead.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from logmq.codec.records import encode_batch, iter_records
from logmq.errors import LogMQError, ProtocolError
from logmq.protocol import decode_response, encode_request
from logmq.protocol.codec import SUPPORTED_VERSIONS

__all__ = ["WireClient", "WireError"]

_SIZE = struct.Struct(">i")
#: the versions this client speaks (bodies below name topics by name), whatever a newer
#: server advertises; every one is served by logmq and by Kafka 4.x
_VERSIONS = {0: 8, 1: 11, 2: 10, 3: 8, 8: 7, 9: 5, 10: 2, 11: 5, 12: 3, 13: 3, 14: 3,
             15: 4, 16: 2, 18: 2, 19: 4, 20: 3, 21: 1, 22: 1, 32: 3, 35: 4, 42: 2}


class WireError(LogMQError):
    """The server answered a request with a Kafka error code."""

    def __init__(self, what: str, code: int, message: str | None = None) -> None:
        from logmq.protocol.errors import ERROR_NAMES

        name = ERROR_NAMES.get(code, f"error {code}")
        super().__init__(f"{what}: {name}" + (f" ({message})" if message else ""))
        self.kafka_code = code


def parse_bootstrap(bootstrap: str) -> tuple[str, int]:
    host, _, port = bootstrap.rpartition(":")
    if not host or not port.isdigit():
        raise LogMQError(f"bootstrap must be HOST:PORT, got {bootstrap!r}")
    return host.strip("[]"), int(port)


class WireClient:
    """One connection to one logmq (or Kafka) node; requests are sent one at a time."""

    def __init__(self, bootstrap: str, *, timeout: float = 30.0, client_id: str = "logmq-cli"):
        self.host, self.port = parse_bootstrap(bootstrap)
        self.client_id = client_id
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except OSError as e:
            raise LogMQError(f"cannot connect to {bootstrap}: {e}") from None
        self._corr = 0

    def _recv_exact(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(min(n, 1 << 20))
            if not chunk:
                raise ProtocolError("the server closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def call(self, api: int, body: dict, version: int | None = None) -> dict:
        v = _VERSIONS.get(api, SUPPORTED_VERSIONS[api][1]) if version is None else version
        self._corr += 1
        self.sock.sendall(encode_request(api, v, self._corr, self.client_id, body))
        size = _SIZE.unpack(self._recv_exact(4))[0]
        corr, resp = decode_response(api, v, self._recv_exact(size))
        if corr != self._corr:
            raise ProtocolError(f"response for request {corr}, expected {self._corr}")
        return resp

    # ------------------------------------------------------------------ admin
    def metadata(self, topics: list[str] | None = None, create: bool = False) -> dict:
        body = {"topics": None if topics is None else [{"name": t} for t in topics],
                "allow_auto_topic_creation": create}
        return self.call(3, body)

    def partitions(self, topic: str) -> int:
        t = self.metadata([topic])["topics"][0]
        if t["error_code"]:
            raise WireError(f"topic {topic}", t["error_code"])
        return len(t["partitions"])

    def list_topics(self) -> list[str]:
        return sorted(t["name"] for t in self.metadata(None)["topics"])

    def create_topic(self, name: str, partitions: int = -1,
                     config: dict[str, Any] | None = None) -> None:
        resp = self.call(19, {"topics": [{
            "name": name, "num_partitions": partitions, "replication_factor": -1,
            "assignments": [], "configs": [{"name": k, "value": str(v)}
                                           for k, v in (config or {}).items()]}],
            "timeout_ms": 30_000})
        r = resp["topics"][0]
        if r["error_code"]:
            raise WireError(f"create topic {name}", r["error_code"], r.get("error_message"))

    def delete_topic(self, name: str) -> None:
        r = self.call(20, {"topic_names": [name], "timeout_ms": 30_000})["responses"][0]
        if r["error_code"]:
            raise WireError(f"delete topic {name}", r["error_code"])

    def describe_configs(self, topic: str) -> dict[str, tuple[str | None, bool]]:
        """{name: (value, is_default)} of a topic's effective config."""
        r = self.call(32, {"resources": [{"resource_type": 2, "resource_name": topic,
                                          "configuration_keys": None}]})["results"][0]
        if r["error_code"]:
            raise WireError(f"describe configs of {topic}", r["error_code"],
                            r.get("error_message"))
        return {c["name"]: (c["value"], c["config_source"] == 5) for c in r["configs"]}

    def offsets(self, topic: str, partition: int, timestamp: int) -> int:
        """ListOffsets: -2 earliest, -1 latest, else the first offset at/after the time."""
        resp = self.call(2, {"replica_id": -1, "isolation_level": 0, "topics": [{
            "name": topic, "partitions": [{"partition_index": partition,
                                           "timestamp": timestamp,
                                           "current_leader_epoch": -1}]}]})
        p = resp["topics"][0]["partitions"][0]
        if p["error_code"]:
            raise WireError(f"list offsets {topic}-{partition}", p["error_code"])
        return p["offset"]

    # ------------------------------------------------------------------ data
    def produce(self, topic: str, partition: int, records: list[tuple],
                timestamp: int | None = None, timestamps: list[int] | None = None) -> int:
        """Append records (key, value[, headers]) as one batch; returns the base offset."""
        batch = encode_batch(records, timestamp=timestamp, timestamps=timestamps)
        resp = self.call(0, {"acks": -1, "timeout_ms": 30_000, "transactional_id": None,
                             "topic_data": [{"name": topic, "partition_data": [
                                 {"index": partition, "records": batch}]}]})
        p = resp["responses"][0]["partition_responses"][0]
        if p["error_code"]:
            raise WireError(f"produce to {topic}-{partition}", p["error_code"],
                            p.get("error_message"))
        return p["base_offset"]

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = 1 << 20,
              max_wait_ms: int = 0) -> tuple[list[tuple], int]:
        """Raw records (offset, ts, key, value, headers) from ``offset``, and the high watermark."""
        resp = self.call(1, {
            "replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": 1,
            "max_bytes": max_bytes, "isolation_level": 0, "session_id": 0,
            "session_epoch": -1, "topics": [{"topic": topic, "partitions": [{
                "partition": partition, "current_leader_epoch": -1, "fetch_offset": offset,
                "log_start_offset": -1, "partition_max_bytes": max_bytes}]}],
            "forgotten_topics_data": [], "rack_id": ""})
        p = resp["responses"][0]["partitions"][0]
        if p["error_code"]:
            raise WireError(f"fetch {topic}-{partition}@{offset}", p["error_code"])
        data = p["records"] or b""
        return list(iter_records(data, min_offset=offset, validate=True)), p["high_watermark"]

    # ------------------------------------------------------------------ groups
    def list_groups(self) -> list[tuple[str, str]]:
        r = self.call(16, {})
        if r["error_code"]:
            raise WireError("list groups", r["error_code"])
        return sorted((g["group_id"], g["protocol_type"]) for g in r["groups"])

    def describe_group(self, group: str) -> dict:
        g = self.call(15, {"groups": [group], "include_authorized_operations": False})
        d = g["groups"][0]
        if d["error_code"]:
            raise WireError(f"describe group {group}", d["error_code"])
        return d

    def committed(self, group: str) -> dict[tuple[str, int], int]:
        r = self.call(9, {"group_id": group, "topics": None, "require_stable": False})
        if r.get("error_code"):
            raise WireError(f"committed offsets of {group}", r["error_code"])
        return {(t["name"], p["partition_index"]): p["committed_offset"]
                for t in r["topics"] for p in t["partitions"] if p["committed_offset"] >= 0}

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
