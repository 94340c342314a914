"""Event streams on the log: the records of one key form a stream with versions 0, 1, 2, ...

``log.streams`` (one per open data directory) gives expected-version appends, indexed reads
of one stream, stream metadata, truncate-before and tombstones, catch-up subscriptions and
snapshots. The topics stay ordinary Kafka topics: every event carries its version as the
``logmq.version`` header. See the README section "Event sourcing" for the guarantees.
"""

from logmq.streams.index import (
    OP_HEADER,
    TRACKING_HEADER,
    VERSION_HEADER,
    StreamIndex,
    StreamMetadata,
)
from logmq.streams.snapshots import Loaded, Snapshot, Snapshots
from logmq.streams.store import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    StreamEvent,
    Streams,
    streams_of,
)

__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AppendResult",
    "StreamEvent",
    "StreamMetadata",
    "Streams",
    "StreamIndex",
    "Snapshots",
    "Snapshot",
    "Loaded",
    "streams_of",
    "VERSION_HEADER",
    "OP_HEADER",
    "TRACKING_HEADER",
]
