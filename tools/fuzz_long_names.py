"""Long names against ``logmq serve``: every string field of every API made long.

Names become parts of LMDB keys, which stop at 511 bytes: a long group id once reached a
commit and raised ``lmdb.BadValsizeError`` in five handlers (OffsetCommit,
IncrementalAlterConfigs of a group, AlterUserScramCredentials, AlterClientQuotas,
AlterShareGroupOffsets). The random campaign (``fuzz_wire.py``) sends these frames before its
mutated ones, so its check of the server's log covers them.
"""

from __future__ import annotations

import copy
import socket
import struct
from typing import Any

from fuzz_wire import _leaves, bodies

from logmq.protocol import SUPPORTED_VERSIONS, encode_request

__all__ = ["long_string_frames", "send_frames"]


def long_string_frames(lengths: tuple[int, ...] = (400, 1000)) -> list[tuple[int, int, bytes]]:
    """Frames whose string fields are long, one field at a time (each API's newest version)
    and all at once (every version): names are keys in LMDB, whose keys stop at 511 bytes,
    so a long group id, principal or user name must get an error code, not an exception."""
    out: list[tuple[int, int, bytes]] = []
    newest = {api: hi for api, (_lo, hi) in SUPPORTED_VERSIONS.items()}
    every = bodies()
    create = (19, 4, encode_request(19, 4, 1, "fuzz", {
        "topics": [{"name": "fz", "num_partitions": 1, "replication_factor": 1,
                    "assignments": [], "configs": []}],
        "timeout_ms": 1000, "validate_only": False}))
    for api, v, body in every:
        strings = [p for p in _leaves(body) if isinstance(_get(body, p), str)]
        # the corpus topic exists (an earlier frame may have deleted it), and the plain
        # request ran once, so the long variants reach past "unknown topic" into the stores
        out += [create, (api, v, encode_request(api, v, 1, "fuzz", body))]
        for n in lengths:
            cases = [strings] + ([[p] for p in strings] if v == newest[api] else [])
            for paths in cases:
                if not paths:
                    continue
                b = copy.deepcopy(body)
                for p in paths:
                    _get(b, p[:-1])[p[-1]] = "n" * n
                out.append((api, v, encode_request(api, v, len(out) + 1, "fuzz", b)))
    return out


def _get(node: Any, path: tuple) -> Any:
    for k in path:
        node = node[k]
    return node


def send_frames(host: str, port: int, frames: list[tuple[int, int, bytes]],
                timeout: float = 10.0) -> int:
    """Send each frame and read its answer, one at a time; how many closed the connection
    (a frame the server refuses to parse is answered so, and a new connection is made)."""
    sock: socket.socket | None = None
    closed = 0
    for _api, _v, frame in frames:
        if sock is None:
            sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.sendall(frame)
            head = _exact(sock, 4)
            _exact(sock, struct.unpack(">i", head)[0])
        except OSError:
            closed += 1
            sock.close()
            sock = None
    if sock is not None:
        sock.close()
    return closed


def _exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 16))
        if not chunk:
            raise ConnectionResetError("closed by the server")
        buf += chunk
    return bytes(buf)
