"""Does a cluster offer share groups? One ApiVersions request answers it.

librdkafka's share consumer, pointed at a broker without KIP-932, keeps retrying its
heartbeat instead of failing, so ``log.queue()`` asks first and raises a typed error at once.
The probe is a plain ApiVersions v0 exchange (request header v1, no tagged fields), which
every Kafka broker since 0.10 and ``logmq serve`` answer before authentication; on TLS or
SASL listeners it is skipped and the share consumer's own errors speak.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Mapping
from typing import Any

__all__ = ["api_versions", "supports_share_groups", "SHARE_APIS"]

#: ShareGroupHeartbeat, ShareFetch, ShareAcknowledge: what a share consumer needs
SHARE_APIS = (76, 78, 79)


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed during ApiVersions")
        buf += chunk
    return buf


def api_versions(host: str, port: int, timeout: float) -> dict[int, tuple[int, int]]:
    """api key -> (min, max) version the broker at host:port supports."""
    client = b"logmq-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client)) + client
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv(sock, 4))
        data = _recv(sock, size)
    _corr, err, n = struct.unpack_from(">ihi", data, 0)
    if err:
        raise ConnectionError(f"ApiVersions answered error {err}")
    out = {}
    for i in range(n):
        key, lo, hi = struct.unpack_from(">hhh", data, 10 + 6 * i)
        out[key] = (lo, hi)
    return out


def supports_share_groups(bootstrap: str, settings: Mapping[str, Any], timeout: float) -> bool:
    """True when the first reachable bootstrap broker offers the share-group APIs."""
    proto = str(settings.get("security_protocol", settings.get("security.protocol",
                                                               "PLAINTEXT"))).upper()
    if proto != "PLAINTEXT":
        return True
    last: Exception | None = None
    for hp in bootstrap.split(","):
        host, _, port = hp.rpartition(":")
        try:
            apis = api_versions(host.strip("[]"), int(port), min(timeout, 10.0))
        except (OSError, ValueError, struct.error) as e:
            last = e
            continue
        return all(k in apis for k in SHARE_APIS)
    from logmq.errors import KafkaTimeoutError

    raise KafkaTimeoutError(f"no broker of {bootstrap} answered ApiVersions ({last})")
