"""The HTTP listener under the authorizer: credentials required, ACLs decide what is shown."""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.error
import urllib.request

import logmq
from logmq.broker.acls import AclBinding, AclOperation, AclPermission, AclStore, PatternType
from logmq.broker.acls import ResourceType as RT
from logmq.ops.http_auth import TokenStore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ops_util import ServerProcess, get_json, http_address, wait_for  # noqa: E402


def call(addr: str, path: str, auth: str | None = None) -> tuple[int, object, dict]:
    req = urllib.request.Request(f"http://{addr}{path}")
    if auth:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
            ctype = r.headers.get("Content-Type", "")
            return r.status, json.loads(body) if "json" in ctype else body, dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


def test_http_uses_the_kafka_principals_and_acls(tmp_path):
    data = str(tmp_path / "d")
    with logmq.open(data, cleaner=False) as log:
        log.create_topic("orders")
        log.create_topic("secret")
        AclStore(log.meta.env).add([AclBinding.of(RT.TOPIC, "orders", PatternType.LITERAL,
                                                  "User:alice", "*", AclOperation.READ,
                                                  AclPermission.ALLOW)])
        tokens = TokenStore(log.meta.env)
        alice, admin = tokens.issue("User:alice"), tokens.issue("User:admin")
    with ServerProcess(data, "--http", "127.0.0.1:0", "--authorizer", "--super-users",
                       "User:admin") as srv:
        addr = http_address(srv)
        wait_for(lambda: get_json(addr, "/readyz")[0] == 200, what="ready")  # probes open
        status, body, headers = call(addr, "/api/v1/topics")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        assert call(addr, "/api/v1/topics", "Bearer nope")[0] == 401
        status, body, _ = call(addr, "/api/v1/topics", f"Bearer {alice}")
        assert status == 200 and [t["name"] for t in body] == ["orders"]
        assert call(addr, "/api/v1/topics/orders", f"Bearer {alice}")[0] == 200
        assert call(addr, "/api/v1/topics/secret", f"Bearer {alice}")[0] == 403
        assert call(addr, "/api/v1/overview", f"Bearer {alice}")[0] == 403
        assert call(addr, "/metrics", f"Bearer {alice}")[0] == 403
        assert call(addr, "/metrics", f"Bearer {admin}")[0] == 200
        status, body, _ = call(addr, "/api/v1/topics", f"Bearer {admin}")
        assert sorted(t["name"] for t in body) == ["orders", "secret"]
        basic = base64.b64encode(f"anyone:{alice}".encode()).decode()
        status, body, _ = call(addr, "/api/v1/topics", f"Basic {basic}")
        assert status == 200 and [t["name"] for t in body] == ["orders"]
        assert call(addr, "/", None)[0] == 200  # the dashboard page itself holds no data
    with open(os.path.join(data, "audit.jsonl")) as f:
        auth = [json.loads(line) for line in f if '"authenticate"' in line]
    assert [e["outcome"] for e in auth].count("failed") == 1
    assert {e["principal"] for e in auth if e["outcome"] == "ok"} == {"User:alice",
                                                                       "User:admin"}


def test_http_stays_open_without_the_authorizer(tmp_path):
    data = str(tmp_path / "d")
    with ServerProcess(data, "--http", "127.0.0.1:0") as srv:
        addr = http_address(srv)
        wait_for(lambda: get_json(addr, "/readyz")[0] == 200, what="ready")
        assert call(addr, "/api/v1/topics")[0] == 200
