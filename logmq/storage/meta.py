"""The data directory's LMDB environment: small mutable state that must survive crashes.

One environment per data directory (``<data>/meta/``), opened with LMDB's default
``sync=True``: a write transaction that committed is on disk. Sub-databases hold topics
(this module), group offsets (``logmq.broker.groups``), producer state and queue state; each
owner opens its own named db from :attr:`MetaStore.env`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import lmdb

from logmq.errors import DataDirError

__all__ = ["MetaStore"]


class MetaStore:
    TOPICS = b"topics"

    def __init__(self, path: str, map_size: int = 16 << 30, *, sync: bool = True) -> None:
        """``sync=False`` only for in-memory data directories (nothing there survives)."""
        os.makedirs(path, mode=0o700, exist_ok=True)
        try:  # mode: 0600 files (offsets, SCRAM credentials), umask permitting
            self.env = lmdb.open(path, max_dbs=32, map_size=map_size, subdir=True, lock=True,
                                 sync=sync, metasync=sync, mode=0o600)
        except lmdb.Error as e:
            raise DataDirError(f"metadata store {path!r} cannot be opened ({e}); it is "
                               "corrupt or not an LMDB environment") from None
        try:
            self._topics = self.env.open_db(self.TOPICS)
        except lmdb.Error as e:
            self.env.close()
            raise DataDirError(f"metadata store {path!r} is corrupt ({e})") from None

    def get_topic(self, name: str) -> dict[str, Any] | None:
        with self.env.begin(db=self._topics) as txn:
            raw = txn.get(name.encode())
        return None if raw is None else json.loads(raw)

    def put_topic(self, name: str, meta: dict[str, Any]) -> None:
        with self.env.begin(db=self._topics, write=True) as txn:
            txn.put(name.encode(), json.dumps(meta, sort_keys=True).encode())

    def delete_topic(self, name: str) -> None:
        with self.env.begin(db=self._topics, write=True) as txn:
            txn.delete(name.encode())

    def topics(self) -> dict[str, dict[str, Any]]:
        with self.env.begin(db=self._topics) as txn:
            return {k.decode(): json.loads(v) for k, v in txn.cursor()}

    def close(self) -> None:
        self.env.close()
