"""Where consumer groups' committed offsets live.

Kafka keeps committed offsets in ``__consumer_offsets``; logmq keeps them in a small key/value
store instead, because offsets are mutable state that is only ever read by key and an LMDB
write transaction gives atomic, durable multi-partition commits for free.

Offsets are ``{(topic, partition): (offset, metadata)}``; ``metadata`` is the free-form string
of OffsetCommit, and ``None`` is kept distinct from ``""`` because the wire protocol's field
is nullable and clients echo back what they stored.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import lmdb

from logmq.broker.names import group_id_problem
from logmq.errors import ConfigError, InvalidGroupIdError

__all__ = ["OffsetStore", "MemoryOffsetStore", "LmdbOffsetStore", "Offsets"]

Offsets = dict[tuple[str, int], tuple[int, str | None]]


@runtime_checkable
class OffsetStore(Protocol):
    """What the coordinator needs from offset storage; ``commit`` is durable when it returns."""

    def commit(self, group_id: str, offsets: Offsets) -> None: ...

    def fetch(self, group_id: str, partitions: list[tuple[str, int]] | None) -> Offsets: ...

    def groups(self) -> list[str]: ...

    def delete_group(self, group_id: str) -> None: ...

    def delete_partitions(self, group_id: str, partitions: Iterable[tuple[str, int]]) -> None:
        ...

    def delete_topic(self, topic: str) -> None: ...


class MemoryOffsetStore:
    """Offsets in a dict: for tests and for logs opened without persistence.

    It has its own lock so it stays safe when used outside the coordinator (which already
    serializes its own calls).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, Offsets] = {}

    def commit(self, group_id: str, offsets: Offsets) -> None:
        if not offsets:
            return
        with self._lock:
            dest = self._data.setdefault(group_id, {})
            for (topic, partition), (offset, meta) in offsets.items():
                dest[(topic, int(partition))] = (int(offset), meta)

    def fetch(self, group_id: str, partitions: list[tuple[str, int]] | None) -> Offsets:
        with self._lock:
            have = self._data.get(group_id, {})
            if partitions is None:
                return dict(have)
            out: Offsets = {}
            for topic, partition in partitions:
                hit = have.get((topic, partition))
                if hit is not None:
                    out[(topic, partition)] = hit
            return out

    def groups(self) -> list[str]:
        with self._lock:
            return sorted(g for g, offs in self._data.items() if offs)

    def delete_group(self, group_id: str) -> None:
        with self._lock:
            self._data.pop(group_id, None)

    def delete_partitions(self, group_id: str, partitions: Iterable[tuple[str, int]]) -> None:
        with self._lock:
            have = self._data.get(group_id, {})
            for topic, partition in partitions:
                have.pop((topic, int(partition)), None)

    def delete_topic(self, topic: str) -> None:
        with self._lock:
            for offs in self._data.values():
                for tp in [tp for tp in offs if tp[0] == topic]:
                    del offs[tp]


_PART = struct.Struct(">i")
_VALUE = struct.Struct(">qi")  # offset, metadata length (-1 = None)


def _check_name(kind: str, name: str) -> bytes:
    # NUL separates the key's fields; a NUL inside a name would make two (group, topic)
    # pairs share a key prefix, and prefix scans would then mix groups up. A group id is
    # also bounded so that group + topic fit in an LMDB key (logmq.broker.names).
    if kind == "group id":
        problem = group_id_problem(name, allow_empty=True)
        if problem:
            raise InvalidGroupIdError(f"group id {name[:80]!r}: {problem}")
    elif "\x00" in name:
        raise ConfigError(f"{kind} {name[:80]!r} contains a NUL character")
    return name.encode()


def _key(group: bytes, topic: str, partition: int) -> bytes:
    return group + b"\x00" + _check_name("topic", topic) + b"\x00" + _PART.pack(partition)


def _split_key(key: bytes) -> tuple[str, str, int]:
    head, part = key[:-5], key[-4:]
    group, topic = head.split(b"\x00", 1)
    return group.decode(), topic.decode(), _PART.unpack(part)[0]


def _encode_value(offset: int, meta: str | None) -> bytes:
    if meta is None:
        return _VALUE.pack(offset, -1)
    raw = meta.encode()
    return _VALUE.pack(offset, len(raw)) + raw


def _decode_value(raw: bytes) -> tuple[int, str | None]:
    offset, n = _VALUE.unpack_from(raw)
    if n < 0:
        return offset, None
    return offset, bytes(raw[_VALUE.size:_VALUE.size + n]).decode()


class LmdbOffsetStore:
    """Offsets in the data directory's LMDB environment, sub-db ``group_offsets``.

    Key: ``group \\0 topic \\0 partition(>i)``, so one group's offsets are one contiguous key
    range (fetch-all and delete are prefix scans). Value: offset ``>q``, metadata length ``>i``
    (-1 for None) and the UTF-8 metadata.

    Durability: each :meth:`commit` is one LMDB write transaction, so a commit covering many
    partitions lands entirely or not at all, and because the broker opens the environment with
    LMDB's default ``sync=True`` the transaction is fsynced before ``commit`` returns. A crash
    after return cannot lose the offsets.
    """

    DB_NAME = b"group_offsets"

    def __init__(self, env: lmdb.Environment) -> None:
        self.env = env
        self._db = env.open_db(self.DB_NAME)

    def commit(self, group_id: str, offsets: Offsets) -> None:
        if not offsets:
            return
        g = _check_name("group id", group_id)
        rows = [(_key(g, t, int(p)), _encode_value(int(o), m))
                for (t, p), (o, m) in offsets.items()]
        with self.env.begin(db=self._db, write=True) as txn:
            for k, v in rows:
                txn.put(k, v)

    def fetch(self, group_id: str, partitions: list[tuple[str, int]] | None) -> Offsets:
        g = _check_name("group id", group_id)
        out: Offsets = {}
        with self.env.begin(db=self._db) as txn:
            if partitions is not None:
                for topic, partition in partitions:
                    raw = txn.get(_key(g, topic, int(partition)))
                    if raw is not None:
                        out[(topic, partition)] = _decode_value(raw)
                return out
            prefix = g + b"\x00"
            cur = txn.cursor()
            if cur.set_range(prefix):
                for k, v in cur:
                    if not k.startswith(prefix):
                        break
                    _, topic, partition = _split_key(k)
                    out[(topic, partition)] = _decode_value(v)
        return out

    def groups(self) -> list[str]:
        found: list[str] = []
        with self.env.begin(db=self._db) as txn:
            cur = txn.cursor()
            ok = cur.first()
            while ok:
                group, _, _ = _split_key(cur.key())
                found.append(group)
                # Every key of this group sorts below group + b"\x01" (group ids hold no NUL),
                # so one seek skips the whole group instead of walking its partitions.
                ok = cur.set_range(group.encode() + b"\x01")
        return found

    def delete_group(self, group_id: str) -> None:
        prefix = _check_name("group id", group_id) + b"\x00"
        with self.env.begin(db=self._db, write=True) as txn:
            cur = txn.cursor()
            if not cur.set_range(prefix):
                return
            while cur.key().startswith(prefix):
                if not cur.delete():
                    break

    def delete_partitions(self, group_id: str, partitions: Iterable[tuple[str, int]]) -> None:
        """OffsetDelete: one write transaction, so a concurrent commit lands before or after."""
        g = _check_name("group id", group_id)
        with self.env.begin(db=self._db, write=True) as txn:
            for topic, partition in partitions:
                txn.delete(_key(g, topic, int(partition)))

    def delete_topic(self, topic: str) -> None:
        _check_name("topic", topic)
        with self.env.begin(db=self._db, write=True) as txn:
            cur = txn.cursor()
            doomed = [k for k in cur.iternext(keys=True, values=False)
                      if _split_key(k)[1] == topic]
            for k in doomed:
                txn.delete(k)
