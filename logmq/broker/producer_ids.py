"""Producer ids for idempotent producers, handed out from a counter in LMDB.

An id must never be reused, even across crashes, or a new producer could be mistaken for a
retry of an old one; a committed LMDB transaction per allocation guarantees that (allocations
are rare: one per producer session).
"""

from __future__ import annotations

import struct
import threading

import lmdb

__all__ = ["ProducerIdAllocator"]

_KEY = b"next_producer_id"
_I64 = struct.Struct(">q")


class ProducerIdAllocator:
    def __init__(self, env: lmdb.Environment) -> None:
        self.env = env
        self.db = env.open_db(b"producer_ids")
        self._lock = threading.Lock()

    def allocate(self) -> int:
        with self._lock, self.env.begin(db=self.db, write=True) as txn:
            raw = txn.get(_KEY)
            pid = 1000 if raw is None else _I64.unpack(raw)[0]
            txn.put(_KEY, _I64.pack(pid + 1))
            return pid

    def reserve_above(self, pid: int) -> None:
        """Make every later id larger than ``pid`` (ids found in partitions after the
        counter was lost with the metadata store)."""
        with self._lock, self.env.begin(db=self.db, write=True) as txn:
            raw = txn.get(_KEY)
            nxt = 1000 if raw is None else _I64.unpack(raw)[0]
            if pid + 1 > nxt:
                txn.put(_KEY, _I64.pack(pid + 1))
