"""A logmq server with the authorizer on, whose principals come from the client id (tests
only: until the SASL listener sets ``ClientInfo.principal``, ``client.id=alice`` stands for
``User:alice``), and raw wire calls under a chosen client id."""

from __future__ import annotations

import socket
import struct
from typing import Any

from logmq.broker.acls import AclBinding, AclOperation, AclPermission, PatternType, ResourceType
from logmq.protocol import decode_response, encode_request
from logmq.testing.server import LogMQServer

Op, RT, PT, P = AclOperation, ResourceType, PatternType, AclPermission


def principal_of(client: Any) -> str:
    cid = client.client_id or ""
    return f"User:{cid}" if cid and cid.isalnum() else "User:ANONYMOUS"


def secure_server(data: str, **config: Any) -> LogMQServer:
    config.setdefault("authorizer", True)
    config.setdefault("super_users", "User:admin")
    srv = LogMQServer(data, **config).start()
    srv._server.security.principal_hook = principal_of  # type: ignore[union-attr]
    return srv


def security(srv: LogMQServer) -> Any:
    return srv._server.security  # type: ignore[union-attr]


def grant(srv: LogMQServer, principal: str, ops: str, name: str, *, rtype: RT = RT.TOPIC,
          pattern: PT = PT.LITERAL, perm: P = P.ALLOW, host: str = "*") -> None:
    security(srv).acls.add([AclBinding.of(rtype, name, pattern, principal, host, Op[o], perm)
                            for o in ops.split(",")])


class Wire:
    """Blocking raw Kafka calls with a client id of our choosing."""

    def __init__(self, srv: LogMQServer, client_id: str) -> None:
        self.sock = socket.create_connection((srv.host, srv.port), timeout=10)
        self.client_id = client_id
        self.corr = 0

    def call(self, api: int, version: int, body: dict) -> dict:
        self.corr += 1
        self.sock.sendall(encode_request(api, version, self.corr, self.client_id, body))
        size = struct.unpack(">i", self._exact(4))[0]
        corr, resp = decode_response(api, version, self._exact(size))
        assert corr == self.corr
        return resp

    def _exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        return bytes(buf)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
