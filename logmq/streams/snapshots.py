"""Snapshots of streams in a compacted companion topic, loaded with the events after them.

``<topic>.snapshots`` (``cleanup.policy=compact``) holds one record per snapshot, keyed like
the stream, its value the caller's serialized state and the header ``logmq.snapshot-of``
the stream version it reflects. Compaction keeps the latest per key; the key index of the
companion topic finds it without a scan. A snapshot is an optimisation only: the events
stay in the stream, and a lost or stale snapshot just means replaying more of them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from logmq.errors import ConfigError, TopicExistsError
from logmq.streams.model import ANY, StreamEvent

__all__ = ["Snapshots", "Snapshot", "Loaded", "SNAPSHOT_OF_HEADER"]

SNAPSHOT_OF_HEADER = "logmq.snapshot-of"


class Snapshot(NamedTuple):
    key: bytes
    version: int
    state: bytes | None
    offset: int


class Loaded(NamedTuple):
    """The latest snapshot (or None) and the stream's events after it."""

    snapshot: Snapshot | None
    events: list[StreamEvent]

    @property
    def version(self) -> int:
        """The stream version this state reaches (-1: empty stream, no snapshot)."""
        if self.events:
            v = self.events[-1].version
            return -1 if v is None else v
        return -1 if self.snapshot is None else self.snapshot.version


class Snapshots:
    def __init__(self, streams: Any, topic: str, *, snapshot_topic: str | None = None
                 ) -> None:
        self.streams = streams
        self.topic = topic
        self.snapshot_topic = snapshot_topic or f"{topic}.snapshots"
        b = streams.broker
        if self.snapshot_topic not in b.list_topics():
            n = b.ensure_topic(topic)
            try:
                b.create_topic(self.snapshot_topic, partitions=n,
                               config={"cleanup.policy": "compact"})
            except TopicExistsError:
                pass

    def save(self, key: Any, version: int, state: bytes) -> Snapshot:
        """Store the state of stream ``key`` as of ``version`` (must exist in the stream)."""
        cur = self.streams.version(self.topic, key)
        if not 0 <= version <= cur:
            raise ConfigError(f"snapshot version {version} is not a version of the stream "
                              f"(current version {cur})")
        res = self.streams.append_to_stream(
            self.snapshot_topic, key, [(state, [(SNAPSHOT_OF_HEADER, b"%d" % version)])],
            expected_version=ANY)
        k = key.encode() if isinstance(key, str) else bytes(key)
        return Snapshot(k, version, state, res.first_offset)

    def latest(self, key: Any) -> Snapshot | None:
        for ev in self.streams.read_stream(self.snapshot_topic, key, backwards=True, limit=4):
            for h, v in ev.headers:
                if h == SNAPSHOT_OF_HEADER and v is not None:
                    assert ev.key is not None
                    return Snapshot(ev.key, int(v), ev.value, ev.offset)
        return None

    def load(self, key: Any) -> Loaded:
        """The latest snapshot and the events after it, in one call."""
        snap = self.latest(key)
        start = 0 if snap is None else snap.version + 1
        return Loaded(snap, self.streams.read_stream(self.topic, key, start))
