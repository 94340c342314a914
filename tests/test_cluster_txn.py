"""Transactions through ``logmq.connect``: the same test functions on an embedded log and on
``kafka://`` (``logmq serve`` here; Apache Kafka 4.4 in tests/oracle/test_cluster_txn_kafka.py),
so exactly-once code moves to a cluster by its target string."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import test_cluster_api as api

from logmq.errors import InvalidTxnStateError
from logmq.types import TopicPartition

# the shared fixtures: embedded and ``kafka://`` (logmq serve)
log, served, target = api.log, api.served, api.target


def _values(log: Any, topic: str, isolation: str, want: int) -> list[bytes]:
    """Everything a fresh consumer at ``isolation`` reads, until ``want`` values or 15 s."""
    c = log.consumer(topic, auto_offset_reset="earliest", isolation_level=isolation)
    got: list[bytes] = []
    deadline = time.monotonic() + 15
    try:
        while len(got) < want and time.monotonic() < deadline:
            got += [r.value for r in c.poll(timeout=0.5)]
    finally:
        c.close()
    return got


def test_commit_is_seen_abort_is_not(log: Any) -> None:
    t = f"tx-{uuid.uuid4().hex[:8]}"
    log.create_topic(t, 1)
    p = log.producer(transactional_id=f"{t}-id")
    try:
        with pytest.raises(InvalidTxnStateError):
            p.send(t, b"outside", partition=0)  # sends belong to transactions
        with p.transaction():
            p.send(t, b"committed", partition=0)
        p.begin_transaction()
        p.send(t, b"aborted", partition=0)
        p.flush()
        p.abort_transaction()
        with p.transaction():
            p.send(t, b"after", partition=0)
    finally:
        p.close()
    assert _values(log, t, "read_committed", 2) == [b"committed", b"after"]
    assert _values(log, t, "read_uncommitted", 3) == [b"committed", b"aborted", b"after"]


def test_offsets_sent_to_a_transaction_count_only_on_commit(log: Any) -> None:
    t = f"tx-{uuid.uuid4().hex[:8]}"
    log.create_topic(t, 1)
    group = f"{t}-g"
    tp = TopicPartition(t, 0)
    p = log.producer(transactional_id=f"{t}-id")
    try:
        p.begin_transaction()
        p.send(t, b"x", partition=0)
        p.send_offsets_to_transaction({tp: 5}, group)
        p.abort_transaction()
        with p.transaction():
            p.send(t, b"y", partition=0)
            p.send_offsets_to_transaction({tp: 7}, group)
    finally:
        p.close()
    c = log.consumer(group=group)
    try:
        deadline = time.monotonic() + 15  # Kafka applies them a moment after the commit
        while c.committed(tp) != 7 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a condition with a deadline
        assert c.committed(tp) == 7
    finally:
        c.close()
