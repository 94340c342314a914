"""``logmq acls add|list|remove`` on a data directory, then a server enforcing them."""

from __future__ import annotations

import json
import os
import sys

from click.testing import CliRunner

from logmq.cli import cli

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from acl_util import Wire, secure_server  # noqa: E402
from test_acl_wire import produce  # noqa: E402


def run(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_cli_acls_then_served(tmp_path):
    data = str(tmp_path / "d")
    out = run("acls", "add", "--allow", "User:alice", "--operation", "WRITE,DESCRIBE",
              "--topic", "orders", "--prefixed", "--data", data)
    assert out.count("added:") == 2
    run("acls", "add", "--deny", "User:alice", "--operation", "WRITE", "--topic",
        "orders-secret", "--data", data)
    run("acls", "add", "--allow", "User:bob", "--operation", "read", "--group", "g",
        "--data", data)
    listed = [json.loads(line) for line in run("acls", "list", "--json", "--principal",
                                               "User:alice", "--data", data).splitlines()]
    assert {(a["permission"], a["operation"], a["pattern_type"], a["resource_name"])
            for a in listed} == {("ALLOW", "WRITE", "PREFIXED", "orders"),
                                 ("ALLOW", "DESCRIBE", "PREFIXED", "orders"),
                                 ("DENY", "WRITE", "LITERAL", "orders-secret")}
    assert "removed:" in run("acls", "remove", "--group", "g", "--data", data)
    assert "User:bob" not in run("acls", "list", "--data", data)
    audit = [json.loads(line) for line in open(os.path.join(data, "audit.jsonl"))]
    assert [e["event"] for e in audit] == ["acl.create"] * 4 + ["acl.delete"]

    srv = secure_server(data)
    try:
        srv.create_topic("orders-eu")
        srv.create_topic("orders-secret")
        with Wire(srv, "alice") as w:
            assert produce(w, "orders-eu") == 0
            assert produce(w, "orders-secret") == 29
    finally:
        srv.stop()


def test_cli_refuses_bad_input(tmp_path):
    data = str(tmp_path / "d")
    runner = CliRunner()
    res = runner.invoke(cli, ["acls", "add", "--allow", "alice", "--operation", "READ",
                              "--topic", "t", "--data", data])
    assert res.exit_code == 1 and "Type:name" in res.output
    res = runner.invoke(cli, ["acls", "add", "--allow", "User:a", "--operation", "FLY",
                              "--topic", "t", "--data", data])
    assert res.exit_code == 1 and "unknown ACL operation" in res.output
    res = runner.invoke(cli, ["acls", "add", "--allow", "User:a", "--operation", "READ",
                              "--topic", "t", "--group", "g", "--data", data])
    assert res.exit_code == 2
    res = runner.invoke(cli, ["acls", "remove", "--data", data])
    assert res.exit_code == 2 and "--all" in res.output
