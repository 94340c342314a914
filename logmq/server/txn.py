"""Kafka's transaction APIs on the wire: InitProducerId with a transactional id,
AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn, DescribeTransactions and
ListTransactions, WriteTxnMarkers (``kafka-transactions abort``), plus the two hooks the existing Produce and Fetch handlers call.

A mixin of :class:`logmq.server.handlers.Handlers`; the semantics live in
:mod:`logmq.broker.transactions` (the coordinator) and :mod:`logmq.storage.txn_index` (last
stable offset, aborted transactions). Calls that write LMDB or markers run in a thread, so an
fsync never stalls the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from logmq.broker.transactions import describe_row
from logmq.broker.txn_store import STATES
from logmq.codec.batch import TRANSACTIONAL_MASK, BatchHeader
from logmq.errors import LogMQError
from logmq.kafka_codes import ErrorCode as _E
from logmq.storage.txn_ops import last_stable_offset, read_committed

if TYPE_CHECKING:
    from logmq.broker.broker import Broker
    from logmq.storage.log import LogSlice, PartitionLog

__all__ = ["TxnHandlers"]

#: the first version of each API that knows PRODUCER_FENCED (older ones get
#: INVALID_PRODUCER_EPOCH, as Kafka converts it)
_FENCED_SINCE = {22: 4, 24: 2, 25: 2, 26: 2, 28: 3}


def _code(e: LogMQError, api: int, v: int) -> int:
    code = e.kafka_code
    if code == _E.PRODUCER_FENCED and v < _FENCED_SINCE.get(api, 0):
        return int(_E.INVALID_PRODUCER_EPOCH)
    return code


class TxnHandlers:
    """Transaction handlers; mixed into ``Handlers`` (which sets ``broker``)."""

    broker: Broker

    # ------------------------------------------------------------------ hooks
    def txn_append(self, plog: PartitionLog, topic: str, partition: int,
                   data: bytes | bytearray | memoryview,
                   headers: Sequence[tuple[int, BatchHeader]]) -> tuple[int, int]:
        """Produce's append: a transactional batch must belong to an open transaction that
        added the partition (checked and appended under the coordinator's lock)."""
        h = headers[0][1]
        if not h.attributes & TRANSACTIONAL_MASK:
            return plog.append(data, validate=False, headers=headers)
        return self.broker.transactions.append_transactional(
            topic, partition, h.producer_id, h.producer_epoch,
            lambda: plog.append(data, validate=False, headers=headers))

    @staticmethod
    def txn_read(plog: PartitionLog, offset: int, max_bytes: int, isolation: int, pr: dict
                 ) -> LogSlice | None:
        """Fetch's read: read_committed (isolation 1) stops at the last stable offset and
        lists the aborted transactions overlapping what it returns."""
        if not isolation:
            sl = plog.read(offset, max_bytes)
            # after the read: an append racing it must not put records past the LSO we answer
            pr["last_stable_offset"] = last_stable_offset(plog)
            return sl
        sl, lso, aborted = read_committed(plog, offset, max_bytes)
        pr["last_stable_offset"] = lso
        pr["aborted_transactions"] = [{"producer_id": a.producer_id,
                                       "first_offset": a.first_offset} for a in aborted]
        return sl

    # ------------------------------------------------------------------ InitProducerId
    async def txn_init_producer_id(self, body: dict, v: int) -> dict:
        out = {"throttle_time_ms": 0, "error_code": _E.NONE, "producer_id": -1,
               "producer_epoch": -1}
        try:
            pid, epoch = await asyncio.to_thread(
                self.broker.transactions.init_producer_id, body["transactional_id"],
                body.get("transaction_timeout_ms", 60000), body.get("producer_id", -1),
                body.get("producer_epoch", -1))
            out["producer_id"], out["producer_epoch"] = pid, epoch
        except LogMQError as e:
            out["error_code"] = _code(e, 22, v)
        return out

    # ------------------------------------------------------------------ the transaction
    async def add_partitions_to_txn(self, body: dict, v: int, client: Any) -> dict:
        topics = body.get("v3_and_below_topics") or []
        wanted = [(t["name"], p) for t in topics for p in t["partitions"]]
        try:
            codes = await asyncio.to_thread(
                self.broker.transactions.add_partitions, body["v3_and_below_transactional_id"],
                body["v3_and_below_producer_id"], body["v3_and_below_producer_epoch"], wanted)
        except LogMQError as e:
            code = _code(e, 24, v)
            codes = dict.fromkeys(wanted, code)
        return {"throttle_time_ms": 0, "results_by_topic_v3_and_below": [
            {"name": t["name"], "results_by_partition": [
                {"partition_index": p, "partition_error_code": codes[(t["name"], p)]}
                for p in t["partitions"]]} for t in topics]}

    async def add_offsets_to_txn(self, body: dict, v: int, client: Any) -> dict:
        code: int = _E.NONE
        try:
            await asyncio.to_thread(
                self.broker.transactions.add_offsets, body["transactional_id"],
                body["producer_id"], body["producer_epoch"], body["group_id"])
        except LogMQError as e:
            code = _code(e, 25, v)
        return {"throttle_time_ms": 0, "error_code": code}

    async def txn_offset_commit(self, body: dict, v: int, client: Any) -> dict:
        topics = body.get("topics") or []
        offsets = {(t["name"], p["partition_index"]):
                   (p["committed_offset"], p.get("committed_metadata"))
                   for t in topics for p in t["partitions"]}
        code: int = _E.NONE
        try:
            await asyncio.to_thread(self._txn_offset_commit, body, offsets)
        except LogMQError as e:
            code = _code(e, 28, v)
        return {"throttle_time_ms": 0, "topics": [
            {"name": t["name"], "partitions": [
                {"partition_index": p["partition_index"], "error_code": code}
                for p in t["partitions"]]} for t in topics]}

    def _txn_offset_commit(self, body: dict, offsets: dict) -> None:
        if body.get("member_id"):  # v3+: the group checks generation and member, as Kafka
            self.broker.groups.commit_offsets(
                body["group_id"], body.get("generation_id_or_member_epoch", -1),
                body["member_id"], {}, body.get("group_instance_id"))
        self.broker.transactions.txn_offset_commit(
            body["transactional_id"], body["group_id"], body["producer_id"],
            body["producer_epoch"], offsets)

    async def end_txn(self, body: dict, v: int, client: Any) -> dict:
        code: int = _E.NONE
        try:
            await asyncio.to_thread(
                self.broker.transactions.end_txn, body["transactional_id"],
                body["producer_id"], body["producer_epoch"], body["committed"])
        except LogMQError as e:
            code = _code(e, 26, v)
        return {"throttle_time_ms": 0, "error_code": code, "producer_id": -1,
                "producer_epoch": -1}

    # ------------------------------------------------------------------ admin
    def describe_transactions(self, body: dict, v: int, client: Any) -> dict:
        out = []
        for tid in body.get("transactional_ids") or []:
            try:
                out.append(describe_row(self.broker.transactions.describe(tid)))
            except LogMQError as e:
                out.append({"error_code": e.kafka_code, "transactional_id": tid,
                            "transaction_state": "", "transaction_timeout_ms": 0,
                            "transaction_start_time_ms": -1, "producer_id": -1,
                            "producer_epoch": -1, "topics": []})
        return {"throttle_time_ms": 0, "transaction_states": out}

    def list_transactions(self, body: dict, v: int, client: Any) -> dict:
        import re

        states = body.get("state_filters") or []
        unknown = [s for s in states if s not in STATES]
        rows = self.broker.transactions.list(
            [s for s in states if s in STATES], body.get("producer_id_filters") or [],
            body.get("duration_filter", -1))
        pattern = body.get("transactional_id_pattern")
        if pattern:
            try:
                rx = re.compile(pattern)
            except re.error:
                return {"throttle_time_ms": 0, "error_code": _E.INVALID_REQUEST,
                        "unknown_state_filters": [], "transaction_states": []}
            rows = [r for r in rows if rx.fullmatch(r.transactional_id)]
        return {"throttle_time_ms": 0, "error_code": _E.NONE,
                "unknown_state_filters": unknown,
                "transaction_states": [{"transactional_id": r.transactional_id,
                                        "producer_id": r.producer_id,
                                        "transaction_state": r.state} for r in rows]}

    async def write_txn_markers(self, body: dict, v: int, client: Any) -> dict:
        """WriteTxnMarkers: what ``kafka-transactions abort`` sends to end a hanging
        transaction at the partition (Kafka's coordinator sends it to partition leaders)."""
        return await asyncio.to_thread(self._write_txn_markers, body)

    def _write_txn_markers(self, body: dict) -> dict:
        out = []
        for m in body.get("markers") or []:
            topics = []
            for t in m["topics"]:
                parts = []
                for p in t["partition_indexes"]:
                    code: int = _E.NONE
                    try:
                        self.broker.transactions.write_partition_marker(
                            t["name"], p, m["producer_id"], m["producer_epoch"],
                            m["transaction_result"], m.get("coordinator_epoch", 0))
                    except LogMQError as e:
                        code = e.kafka_code
                    parts.append({"partition_index": p, "error_code": code})
                topics.append({"name": t["name"], "partitions": parts})
            out.append({"producer_id": m["producer_id"], "topics": topics})
        return {"markers": out}

    def mark_unstable(self, group: str, topics: list[dict]) -> None:
        """OffsetFetch with ``require_stable``: a partition whose offset an open transaction
        holds answers UNSTABLE_OFFSET_COMMIT (the client retries), as Kafka does; Kafka
        Streams' exactly-once reads its offsets this way."""
        if not self.broker.has_transactions():
            return
        pending = self.broker.transactions.pending_offsets(group)
        for t in topics:
            for p in t["partitions"]:
                if (t["name"], p["partition_index"]) in pending:
                    p["error_code"] = _E.UNSTABLE_OFFSET_COMMIT
                    p["committed_offset"] = -1

    def txn_table(self) -> dict[int, Any]:
        return {24: self.add_partitions_to_txn, 25: self.add_offsets_to_txn,
                26: self.end_txn, 27: self.write_txn_markers, 28: self.txn_offset_commit,
                65: self.describe_transactions, 66: self.list_transactions}
