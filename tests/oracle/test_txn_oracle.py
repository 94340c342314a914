"""The raw transaction-API walk (tests/txn_steps.py) against Apache Kafka 4.4 and logmq: the
same error codes and relative ids/offsets at every step."""

from __future__ import annotations

import json
from typing import Any

import pytest
from txn_steps import run_steps

pytestmark = pytest.mark.oracle


def _walk(bootstrap: str, name: str) -> dict[str, Any]:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
    host, port = bootstrap.rsplit(":", 1)
    # JSON round trip: tuples and lists compare alike on both sides
    return json.loads(json.dumps(run_steps(host, int(port), name, name + "-tx")))


def test_transaction_api_walk_matches_kafka(bootstraps: dict[str, str]) -> None:
    theirs = _walk(bootstraps["kafka"], "txn-walk")
    ours = _walk(bootstraps["logmq"], "txn-walk")
    print(json.dumps(theirs))
    diff = {k: (theirs.get(k), ours.get(k)) for k in theirs.keys() | ours.keys()
            if theirs.get(k) != ours.get(k)}
    assert not diff, diff
