"""The transaction coordinator on its own: state transitions, fencing and timeouts with a
manual clock (no waiting), state surviving a reopen."""

from __future__ import annotations

from typing import Any

import pytest

import logmq
from logmq.clock import ManualClock
from logmq.errors import (
    ConcurrentTransactionsError,
    InvalidTransactionTimeoutError,
    InvalidTxnStateError,
    ProducerFencedError,
)


def test_timeout_aborts_bumps_the_epoch_and_lets_that_instance_recover(tmp_path: Any) -> None:
    clock = ManualClock()
    with logmq.open(str(tmp_path / "d"), clock=clock) as log:
        log.create_topic("t", partitions=1)
        c = log.transactions
        pid, epoch = c.init_producer_id("slow", 1000)
        c.add_partitions("slow", pid, epoch, [("t", 0)])
        c.add_offsets("slow", pid, epoch, "g")
        c.txn_offset_commit("slow", "g", pid, epoch, {("t", 0): (5, None)})
        assert c.pending_offsets("g") == {("t", 0)}
        clock.advance(0.5)
        c.abort_expired()
        assert c.describe("slow").state == "Ongoing"
        clock.advance(0.6)
        c.abort_expired()
        md = c.describe("slow")
        assert (md.state, md.producer_epoch, md.partitions) == ("CompleteAbort", epoch + 1,
                                                                set())
        assert c.pending_offsets("g") == set()
        with pytest.raises(ProducerFencedError):
            c.end_txn("slow", pid, epoch, True)
        # InitProducerId v3+: the timed-out instance (its id and old epoch) may go on
        assert c.init_producer_id("slow", 1000, pid, epoch) == (pid, epoch + 2)
        with pytest.raises(ProducerFencedError):  # but only once: that epoch is gone now
            c.init_producer_id("slow", 1000, pid, epoch)


def test_states_and_refusals(tmp_path: Any) -> None:
    with logmq.open(str(tmp_path / "d"), transaction_max_timeout_ms=5000) as log:
        log.create_topic("t", partitions=2)
        c = log.transactions
        with pytest.raises(InvalidTransactionTimeoutError):
            c.init_producer_id("x", 5001)
        pid, epoch = c.init_producer_id("x", 5000)
        with pytest.raises(InvalidTxnStateError):
            c.end_txn("x", pid, epoch, False)  # Empty: nothing to abort
        with pytest.raises(InvalidTxnStateError):
            c.txn_offset_commit("x", "g", pid, epoch, {("t", 0): (1, None)})
        assert c.add_partitions("x", pid, epoch, [("t", 0), ("nope", 0)]) == {
            ("t", 0): 55, ("nope", 0): 3}  # OPERATION_NOT_ATTEMPTED, UNKNOWN_TOPIC
        assert c.add_partitions("x", pid, epoch, [("t", 0), ("t", 1)]) == {
            ("t", 0): 0, ("t", 1): 0}
        md = c.describe("x")
        assert (md.state, md.partitions) == ("Ongoing", {("t", 0), ("t", 1)})
        md_live = c.txns["x"]
        md_live.state = "PrepareCommit"  # as if another thread were completing it
        with pytest.raises(ConcurrentTransactionsError):
            c.add_partitions("x", pid, epoch, [("t", 0)])
        md_live.state = "Ongoing"
        c.end_txn("x", pid, epoch, True)
        c.end_txn("x", pid, epoch, True)  # a retry after a lost answer
        with pytest.raises(InvalidTxnStateError):
            c.end_txn("x", pid, epoch, False)
        assert [m.transactional_id for m in c.list(["CompleteCommit"])] == ["x"]
        assert c.list(["Ongoing"]) == []


def test_state_survives_a_reopen(tmp_path: Any) -> None:
    d = str(tmp_path / "d")
    with logmq.open(d) as log:
        log.create_topic("t", partitions=1)
        c = log.transactions
        pid, epoch = c.init_producer_id("keep", 60000)
        c.add_partitions("keep", pid, epoch, [("t", 0)])
    with logmq.open(d) as log:
        md = log.transactions.describe("keep")
        assert (md.producer_id, md.producer_epoch, md.state, md.partitions) == (
            pid, epoch, "Ongoing", {("t", 0)})
        assert log.transactions.init_producer_id("keep", 60000) == (pid, epoch + 2)
        assert log.transactions.describe("keep").state == "CompleteAbort"
