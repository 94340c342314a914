"""``kafka-transactions`` (kafka-tools 4.4.0) against Kafka and logmq with a transaction left
open: list, describe, describe-producers, find-hanging, then abort of the partition's open
transaction (WriteTxnMarkers) and describe-producers again. Outputs are compared after
removing what differs between two clusters (addresses, ids, times)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from kafka_oracle import run_cli

pytestmark = pytest.mark.oracle

TOPIC, TID = "txcli", "txcli-open"
_NUM = re.compile(r"\b\d{4,}\b")  # producer ids, times, durations (1000 and up)


def _normalize(text: str, pid: int = -1) -> str:
    text = re.sub(r"127\.0\.0\.1:\d+", "HOST:PORT", text)
    rows = [line.split() for line in text.strip().splitlines()]
    if rows and "ProducerId" in rows[0]:  # Kafka's first producer id is 0, logmq's 1000
        col = rows[0].index("ProducerId")
        for r in rows[1:]:
            if len(r) == len(rows[0]) and r[col] == str(pid):
                r[col] = "PID"
    lines = [_NUM.sub("N", " ".join(r)) for r in rows]
    return "\n".join(line for line in lines if "txcli" in line or not line.startswith(TID))


def _script(bootstrap: str) -> dict[str, Any]:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": TID,
                  "transaction.timeout.ms": 300000, "linger.ms": 1})
    p.init_transactions(30)
    from wire_util import RawClient

    host, port = bootstrap.rsplit(":", 1)
    raw = RawClient(host, int(port))
    pid = raw.call(65, 0, {"transactional_ids": [TID]})["transaction_states"][0]["producer_id"]
    raw.close()
    p.begin_transaction()
    p.produce(TOPIC, b"open", partition=0)
    assert p.flush(30) == 0
    steps = {
        "list": ["list"],
        "describe": ["describe", "--transactional-id", TID],
        "describe_producers": ["describe-producers", "--topic", TOPIC, "--partition", "0"],
        "find_hanging": ["find-hanging", "--broker-id", "0"],
        "abort": ["abort", "--topic", TOPIC, "--partition", "0", "--start-offset", "0"],
        "describe_producers_after_abort": ["describe-producers", "--topic", TOPIC,
                                           "--partition", "0"],
    }
    out: dict[str, Any] = {}
    for name, args in steps.items():
        proc = run_cli("kafka-transactions", ["--bootstrap-server", bootstrap, *args],
                       timeout=90)
        stdout = _normalize(proc.stdout, pid)
        if name == "list":  # other tests' transactions share the brokers
            lines = stdout.splitlines()
            stdout = "\n".join(lines[:1] + sorted(x for x in lines[1:] if TID in x))
        out[name] = (proc.returncode, stdout, _normalize(proc.stderr)[-800:])
    return out


def test_kafka_transactions_tool_matches_kafka(bootstraps: dict[str, str]) -> None:
    theirs = _script(bootstraps["kafka"])
    ours = _script(bootstraps["logmq"])
    for name in theirs:
        print(name, theirs[name], ours[name], sep="\n  ")
    diff = {k: (theirs[k], ours[k]) for k in theirs if theirs[k][:2] != ours[k][:2]}
    assert not diff, diff
