"""The small blocking wire client (used by the CLI's --bootstrap) against a real server."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_util import ServerProcess  # noqa: E402

from logmq.client import WireClient, WireError  # noqa: E402
from logmq.errors import LogMQError  # noqa: E402


def test_wire_client_admin_and_data(tmp_path):
    with ServerProcess(str(tmp_path / "d")) as s, WireClient(s.bootstrap) as c:
        c.create_topic("x", 2, {"retention.ms": 1000})
        assert c.list_topics() == ["x"] and c.partitions("x") == 2
        assert c.describe_configs("x")["retention.ms"] == ("1000", False)
        assert c.describe_configs("x")["cleanup.policy"] == ("delete", True)
        assert c.produce("x", 1, [(b"k", b"v"), (None, b"w", [("h", b"1")])], timestamp=5) == 0
        recs, hw = c.fetch("x", 1, 1)
        assert hw == 2 and recs == [(1, 5, None, b"w", [("h", b"1")])]
        assert (c.offsets("x", 1, -2), c.offsets("x", 1, -1), c.offsets("x", 1, 5)) == (0, 2, 0)
        with pytest.raises(WireError, match="TOPIC_ALREADY_EXISTS"):
            c.create_topic("x")
        with pytest.raises(WireError, match="UNKNOWN_TOPIC_OR_PARTITION"):
            c.fetch("nope", 0, 0)
        c.delete_topic("x")
        assert c.list_topics() == []


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(LogMQError, match="cannot connect"):
        WireClient("127.0.0.1:1", timeout=2)
    with pytest.raises(LogMQError, match="HOST:PORT"):
        WireClient("nonsense")
