"""Topic ids on the wire: the 16-byte UUIDs that Metadata v10+, Fetch v13+, Produce v13,
OffsetCommit/OffsetFetch v10 and DeleteTopics v6 name topics by.

Every topic gets its id when created (kept in the data directory's LMDB metadata), so a topic
deleted and recreated under the same name has another id, which is what lets a client tell
the two apart. Requests name topics by id on the hot path (each Fetch), so the reverse map
is cached and rebuilt only when the set of topics changed (``Broker.topics_version``): a
flood of unknown ids costs a dict lookup each, not a scan of every topic.
"""

from __future__ import annotations

import base64
import threading
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from logmq.broker.broker import Broker

__all__ = ["TopicIds", "ZERO_ID", "cluster_id_of", "id_bytes"]

#: Kafka's Uuid.ZERO_UUID: "no id" (a topic named by name, or an unknown one)
ZERO_ID = b"\x00" * 16


def id_bytes(raw: str) -> bytes:
    """The stored hex id as the wire's 16 bytes (ZERO_ID when there is none)."""
    try:
        return uuid.UUID(hex=raw).bytes if raw else ZERO_ID
    except ValueError:
        return ZERO_ID


class TopicIds:
    """Name <-> id of one broker's topics."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._lock = threading.Lock()
        self._by_id: dict[bytes, str] = {}
        self._version = -1

    def id_of(self, name: str) -> bytes:
        return id_bytes(self.broker.topic_id(name))

    def name_of(self, topic_id: bytes | None) -> str | None:
        """The topic with this id now, or None (unknown, deleted, or the zero id)."""
        if not topic_id or topic_id == ZERO_ID:
            return None
        raw = bytes(topic_id)
        with self._lock:
            if self._version != self.broker.topics_version:
                self._rebuild()
            name = self._by_id.get(raw)
        if name is not None and self.id_of(name) != raw:
            return None  # deleted (or recreated) since the map was built
        return name

    def _rebuild(self) -> None:
        version = self.broker.topics_version  # read first: a change during the scan rebuilds
        self._by_id = {id_bytes(self.broker.topic_id(n)): n for n in self.broker.list_topics()}
        self._by_id.pop(ZERO_ID, None)
        self._version = version


def cluster_id_of(broker: Broker) -> str:
    """The data directory's cluster id: made once (Kafka's 22-character form), then kept.

    Clients compare it across reconnects to detect talking to a different cluster, so it must
    survive restarts; it lives in the data directory's LMDB environment.
    """
    env = broker.meta.env
    db = env.open_db(b"server")
    with env.begin(db=db, write=True) as txn:
        raw = txn.get(b"cluster_id")
        if raw is None:
            raw = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=")
            txn.put(b"cluster_id", raw)
    return bytes(raw).decode()
