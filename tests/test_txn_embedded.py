"""Transactions in the embedded API, and their storage: markers, the last stable offset and
the aborted-transaction index (``.txnindex``, Kafka's 34-byte entries)."""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest

import logmq
from logmq.errors import InvalidTxnStateError, ProducerFencedError
from logmq.storage.txn_index import TXN_INDEX_SUFFIX
from logmq.storage.txn_ops import last_stable_offset, read_committed


def _values(log: Any, topic: str, isolation: str) -> list[bytes]:
    c = log.consumer(topic, auto_offset_reset="earliest", isolation_level=isolation)
    out: list[bytes] = []
    while True:
        got = c.poll(0)
        if not got:
            return out
        out.extend(r.value for r in got)


def _three_transactions(log: Any, topic: str = "t", tid: str = "tx") -> Any:
    p = log.producer(transactional_id=tid)
    for value, commit in ((b"c1", True), (b"a1", False), (b"c2", True)):
        p.begin_transaction()
        p.send(topic, value, partition=0)
        p.send(topic, value + b"'", partition=0)
        (p.commit_transaction if commit else p.abort_transaction)()
    return p


def test_commit_visible_abort_invisible_to_read_committed(tmp_path: Any) -> None:
    with logmq.open(str(tmp_path / "d")) as log:
        log.create_topic("t", partitions=1)
        _three_transactions(log)
        assert _values(log, "t", "read_committed") == [b"c1", b"c1'", b"c2", b"c2'"]
        assert _values(log, "t", "read_uncommitted") == [b"c1", b"c1'", b"a1", b"a1'", b"c2",
                                                         b"c2'"]
        plog = log.partition_log("t", 0)
        assert plog.next_offset == 9  # 6 records, 3 markers
        assert last_stable_offset(plog) == 9
        [aborted] = plog.txn_index.collect(0, 9)
        assert (aborted.first_offset, aborted.last_offset) == (3, 5)


def test_open_transaction_holds_the_last_stable_offset(tmp_path: Any) -> None:
    with logmq.open(str(tmp_path / "d")) as log:
        log.create_topic("t", partitions=1)
        plain = log.producer()
        plain.send("t", b"before", partition=0)
        plain.flush()
        p = log.producer(transactional_id="open")
        p.begin_transaction()
        p.send("t", b"pending", partition=0)
        p.flush()
        plain.send("t", b"after", partition=0)  # not transactional, but above the LSO
        plain.flush()
        plog = log.partition_log("t", 0)
        assert last_stable_offset(plog) == 1
        sl, lso, aborted = read_committed(plog, 0, 1 << 20)
        assert lso == 1 and aborted == [] and sl is not None
        assert _values(log, "t", "read_committed") == [b"before"]
        p.commit_transaction()
        assert _values(log, "t", "read_committed") == [b"before", b"pending", b"after"]


def test_a_new_instance_fences_the_old_one_and_aborts_its_transaction(tmp_path: Any) -> None:
    with logmq.open(str(tmp_path / "d")) as log:
        log.create_topic("t", partitions=1)
        old = log.producer(transactional_id="z")
        old.begin_transaction()
        old.send("t", b"zombie", partition=0)
        old.flush()
        new = log.producer(transactional_id="z")
        assert new.producer_id == old.producer_id
        assert new.producer_epoch > old.producer_epoch
        with pytest.raises(ProducerFencedError):
            old.commit_transaction()
        with new.transaction():
            new.send("t", b"fresh", partition=0)
        assert _values(log, "t", "read_committed") == [b"fresh"]


def test_send_outside_a_transaction_and_context_manager_abort(tmp_path: Any) -> None:
    with logmq.open(str(tmp_path / "d")) as log:
        log.create_topic("t", partitions=1)
        p = log.producer(transactional_id="cm")
        with pytest.raises(InvalidTxnStateError):
            p.send("t", b"x", partition=0)
        with pytest.raises(InvalidTxnStateError):
            p.commit_transaction()
        with pytest.raises(RuntimeError), p.transaction():
            p.send("t", b"doomed", partition=0)
            raise RuntimeError("boom")
        assert _values(log, "t", "read_committed") == []
        assert _values(log, "t", "read_uncommitted") == [b"doomed"]


def test_send_offsets_to_transaction_commits_with_it(tmp_path: Any) -> None:
    with logmq.open(str(tmp_path / "d")) as log:
        log.create_topic("in", partitions=1)
        log.create_topic("out", partitions=1)
        seed = log.producer()
        for i in range(4):
            seed.send("in", b"%d" % i, partition=0)
        seed.flush()
        c = log.consumer("in", group="g", auto_offset_reset="earliest",
                         enable_auto_commit=False)
        recs = c.poll(5)
        assert len(recs) == 4
        p = log.producer(transactional_id="ctp")
        p.begin_transaction()
        for r in recs[:2]:
            p.send("out", r.value * 2, partition=0)
        p.send_offsets_to_transaction({("in", 0): recs[1].offset + 1}, "g")
        assert c.committed(("in", 0)) is None
        p.commit_transaction()
        assert c.committed(("in", 0)) == 2
        p.begin_transaction()
        p.send("out", b"x", partition=0)
        p.send_offsets_to_transaction({("in", 0): 4}, "g")
        p.abort_transaction()
        assert c.committed(("in", 0)) == 2
        c.close(commit=False)
        assert _values(log, "out", "read_committed") == [b"00", b"11"]


def test_txnindex_file_is_kafkas_format_and_survives_a_clean_reopen(tmp_path: Any) -> None:
    d = str(tmp_path / "d")
    with logmq.open(d) as log:
        log.create_topic("t", partitions=1)
        p = _three_transactions(log)
        pid = p.producer_id
        pdir = log.partition_log("t", 0).directory
    [name] = [n for n in os.listdir(pdir) if n.endswith(TXN_INDEX_SUFFIX)]
    assert name == f"{0:020d}{TXN_INDEX_SUFFIX}"
    raw = open(os.path.join(pdir, name), "rb").read()
    assert len(raw) == 34
    assert struct.unpack(">hqqqq", raw) == (0, pid, 3, 5, 9 - 3)  # LSO when the abort landed
    with logmq.open(d) as log:
        assert _values(log, "t", "read_committed") == [b"c1", b"c1'", b"c2", b"c2'"]


def test_txnindex_is_cut_to_whole_entries_and_pruned_past_the_log_end(tmp_path: Any) -> None:
    d = str(tmp_path / "d")
    with logmq.open(d) as log:
        log.create_topic("t", partitions=1)
        _three_transactions(log)
        pdir = log.partition_log("t", 0).directory
    path = os.path.join(pdir, f"{0:020d}{TXN_INDEX_SUFFIX}")
    with open(path, "ab") as f:  # a torn entry, and a whole one whose marker is not there
        f.write(struct.pack(">hqqqq", 0, 77, 100, 120, 120) + b"\x00" * 7)
    with logmq.open(d) as log:
        assert [e.first_offset for e in log.partition_log("t", 0).txn_index.collect(0, 200)] \
            == [3]
        assert os.path.getsize(path) == 34
        assert _values(log, "t", "read_committed") == [b"c1", b"c1'", b"c2", b"c2'"]


def test_retention_drops_entries_with_their_segment(tmp_path: Any) -> None:
    with logmq.open(str(tmp_path / "d")) as log:
        log.create_topic("t", partitions=1)
        _three_transactions(log)
        plog = log.partition_log("t", 0)
        plog.roll()
        plain = log.producer()
        plain.send("t", b"later", partition=0)
        plain.flush()
        assert plog.txn_index.collect(0, 100)
        log.delete_records(("t", 0), 9)
        assert plog.txn_index.collect(0, 100) == []
        assert not [n for n in os.listdir(plog.directory) if n.endswith(TXN_INDEX_SUFFIX)]


def test_compaction_drops_aborted_records_and_keeps_what_they_did_not_replace(
        tmp_path: Any) -> None:
    from logmq.broker.cleaner import Cleaner

    with logmq.open(str(tmp_path / "d"), cleaner=False) as log:
        log.create_topic("c", partitions=1, config={"cleanup.policy": "compact"})
        p = log.producer(transactional_id="compact")
        with p.transaction():
            p.send("c", b"v1", key=b"k", partition=0)
        p.begin_transaction()
        p.send("c", b"v2", key=b"k", partition=0)  # a later value of k, aborted
        p.abort_transaction()
        log.partition_log("c", 0).roll()
        Cleaner(log.logs).run_once(force=True)
        assert _values(log, "c", "read_uncommitted") == [b"v1"]
        assert _values(log, "c", "read_committed") == [b"v1"]


def test_aborted_list_includes_an_older_transaction_aborted_later(tmp_path: Any) -> None:
    """B starts first, A aborts first, then B: a read of A's range must list B too (the
    search stops by each entry's last stable offset, not its marker)."""
    with logmq.open(str(tmp_path / "d")) as log:
        log.create_topic("t", partitions=1)
        b = log.producer(transactional_id="B")
        a = log.producer(transactional_id="A")
        b.begin_transaction()
        b.send("t", b"b1", partition=0)
        b.flush()
        a.begin_transaction()
        a.send("t", b"a1", partition=0)
        a.flush()
        a.abort_transaction()
        log.partition_log("t", 0).roll()
        b.abort_transaction()
        tx = log.partition_log("t", 0).txn_index
        assert [e.first_offset for e in tx.collect(0, 3)] == [0, 1]
        assert _values(log, "t", "read_committed") == []


def test_a_failed_send_makes_the_transaction_abort_only(tmp_path: Any) -> None:
    from logmq.errors import RecordTooLargeError

    with logmq.open(str(tmp_path / "d")) as log:
        log.create_topic("t", partitions=1, config={"max.message.bytes": 2000})
        p = log.producer(transactional_id="partial")
        p.begin_transaction()
        p.send("t", b"small", partition=0)
        p.flush()
        with pytest.raises(RecordTooLargeError):
            p.send("t", b"x" * 5000, partition=0).result(5)  # raised by send or its future
        with pytest.raises(InvalidTxnStateError):
            p.commit_transaction()  # half a transaction must not become visible
        p.abort_transaction()
        assert _values(log, "t", "read_committed") == []
        with p.transaction():
            p.send("t", b"next", partition=0)
        assert _values(log, "t", "read_committed") == [b"next"]


def test_asyncio_transactional_producer(tmp_path: Any) -> None:
    import asyncio

    import logmq.aio

    async def main() -> tuple[list[bytes], list[bytes]]:
        async with logmq.aio.open(str(tmp_path / "d")) as log:
            log.sync.create_topic("t", partitions=1)
            async with log.producer(transactional_id="aio") as p:
                async with p.transaction():
                    await p.send("t", b"kept", partition=0)
                with pytest.raises(RuntimeError):
                    async with p.transaction():
                        await p.send("t", b"dropped", partition=0)
                        raise RuntimeError("abort")
            c = log.consumer("t", auto_offset_reset="earliest", isolation_level="read_committed")
            committed = [r.value for r in await c.poll(1.0)]
            await c.close()
            return committed, _values(log.sync, "t", "read_uncommitted")

    assert asyncio.run(main()) == ([b"kept"], [b"kept", b"dropped"])
