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

__all__ = ["MetaStore", "SafeEnv"]


class SafeEnv:
    """The LMDB environment, with an ``open_db`` that cannot deadlock the process.

    py-lmdb's ``open_db`` without ``txn=`` begins its write transaction *holding the GIL*.
    If another thread is inside a write transaction (holding LMDB's writer mutex) and needs
    the GIL to finish it, both wait forever: the whole process freezes, SIGTERM included.
    The wire fuzzer hit it (InitProducerId's allocation on the event loop vs the first
    share-group request opening ``queue_dedup`` in a worker). ``begin(write=True)`` waits for
    the mutex with the GIL released, so named dbs are opened inside one of those. Every
    other attribute is the environment's own.
    """

    def __init__(self, env: lmdb.Environment) -> None:
        self.raw = env
        self.begin = env.begin  # the hot path: no __getattr__ hop

    def open_db(self, key: bytes | None = None, txn: lmdb.Transaction | None = None,
                **kw: Any) -> Any:
        if txn is None and key is not None and not self.raw.flags().get("readonly"):
            with self.raw.begin(write=True) as t:
                return self.raw.open_db(key, txn=t, **kw)
        return self.raw.open_db(key, txn=txn, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class MetaStore:
    TOPICS = b"topics"

    def __init__(self, path: str, map_size: int = 16 << 30, *, sync: bool = True) -> None:
        """``sync=False`` only for in-memory data directories (nothing there survives)."""
        os.makedirs(path, mode=0o700, exist_ok=True)
        try:  # mode: 0600 files (offsets, SCRAM credentials), umask permitting
            env = lmdb.open(path, max_dbs=32, map_size=map_size, subdir=True, lock=True,
                            sync=sync, metasync=sync, mode=0o600)
            self.env: lmdb.Environment = SafeEnv(env)  # type: ignore[assignment]
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
