"""The systems ``bench/compare.py`` measures, one module each, behind :class:`peers.base.Peer`.

Importing this package is cheap: every module imports its client library inside its methods,
so a missing package becomes a :class:`~peers.base.Skip` line, not an ImportError.
"""

from __future__ import annotations

from peers.base import Peer, Skip
from peers.logmq_embedded import EmbeddedBatch, EmbeddedSend
from peers.logmq_server import ConfluentKafka, KafkaPython
from peers.nats_jetstream import NatsJetStream
from peers.persist_queue import PersistQueue
from peers.plain_file import PlainFile
from peers.redis_streams import RedisStreams

__all__ = ["ALL", "Peer", "Skip"]

ALL: list[type[Peer]] = [EmbeddedBatch, EmbeddedSend, ConfluentKafka, KafkaPython, RedisStreams,
                         NatsJetStream, PersistQueue, PlainFile]
