"""Transaction coordinator state: one record per transactional id, in LMDB.

The record is what Kafka keeps in ``__transaction_state``: producer id and epoch, state,
timeout, start time, the partitions (and consumer groups) in the open transaction, and the
offsets committed inside it. It is written, in one committed LMDB transaction, before every
reply that depends on it, so a broker killed at any point restarts knowing each transaction's
last acknowledged state (``Prepare*`` states are completed on start; see transactions.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import lmdb

__all__ = ["TxnMetadata", "TxnStore", "EMPTY", "ONGOING", "PREPARE_COMMIT", "PREPARE_ABORT",
           "COMPLETE_COMMIT", "COMPLETE_ABORT", "STATES"]

EMPTY = "Empty"
ONGOING = "Ongoing"
PREPARE_COMMIT = "PrepareCommit"
PREPARE_ABORT = "PrepareAbort"
COMPLETE_COMMIT = "CompleteCommit"
COMPLETE_ABORT = "CompleteAbort"
#: Kafka's TransactionState names (ListTransactions filters on these)
STATES = (EMPTY, ONGOING, PREPARE_COMMIT, PREPARE_ABORT, COMPLETE_COMMIT, COMPLETE_ABORT,
          "Dead", "PrepareEpochFence")

Offsets = dict[tuple[str, int], tuple[int, str | None]]


@dataclass
class TxnMetadata:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: str = EMPTY
    start_ms: int = -1
    update_ms: int = -1
    partitions: set[tuple[str, int]] = field(default_factory=set)
    #: group id -> offsets committed in the open transaction (visible once it commits)
    offsets: dict[str, Offsets] = field(default_factory=dict)
    #: the epoch before the coordinator bumped it to abort a timed-out transaction: that
    #: instance may still ask for a new epoch (InitProducerId v3+ with its id and epoch)
    last_epoch: int = -1

    def to_json(self) -> bytes:
        return json.dumps({
            "tid": self.transactional_id, "pid": self.producer_id, "epoch": self.producer_epoch, "timeout": self.timeout_ms,
            "state": self.state, "start": self.start_ms, "update": self.update_ms,
            "partitions": sorted(self.partitions),
            "offsets": {g: [[t, p, o, m] for (t, p), (o, m) in offs.items()]
                        for g, offs in self.offsets.items()},
            "last_epoch": self.last_epoch,
        }).encode()

    @classmethod
    def from_json(cls, tid: str, raw: bytes) -> TxnMetadata:
        d = json.loads(raw)
        return cls(tid, int(d["pid"]), int(d["epoch"]), int(d["timeout"]), d["state"],
                   int(d["start"]), int(d["update"]),
                   {(str(t), int(p)) for t, p in d["partitions"]},
                   {g: {(str(t), int(p)): (int(o), m) for t, p, o, m in rows}
                    for g, rows in d["offsets"].items()}, int(d.get("last_epoch", -1)))


#: LMDB keys are at most 511 bytes: a longer transactional id is keyed by its digest (the id
#: itself is in the record)
_MAX_KEY = 400


def _key(tid: str) -> bytes:
    raw = tid.encode("utf-8", "surrogatepass")
    if len(raw) <= _MAX_KEY:
        return raw
    return b"\x00sha256:" + hashlib.sha256(raw).digest()


class TxnStore:
    def __init__(self, env: lmdb.Environment) -> None:
        self.env = env
        self.db = env.open_db(b"transactions")

    def load(self) -> dict[str, TxnMetadata]:
        out: dict[str, TxnMetadata] = {}
        with self.env.begin(db=self.db) as txn:
            for k, v in txn.cursor():
                raw = bytes(v)
                tid = json.loads(raw).get("tid", bytes(k).decode())
                out[tid] = TxnMetadata.from_json(tid, raw)
        return out

    def put(self, md: TxnMetadata) -> None:
        with self.env.begin(db=self.db, write=True) as txn:
            txn.put(_key(md.transactional_id), md.to_json())

    def unfinished(self) -> bool:
        """Whether any transaction is open or completing (the coordinator must start)."""
        with self.env.begin(db=self.db) as txn:
            for _k, v in txn.cursor():
                if json.loads(bytes(v))["state"] not in (EMPTY, COMPLETE_COMMIT,
                                                          COMPLETE_ABORT):
                    return True
        return False
