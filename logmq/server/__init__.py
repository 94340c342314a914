"""The Kafka wire-protocol server: ``logmq serve`` makes a data directory a one-node broker."""

from logmq.server.app import KafkaServer
from logmq.server.run import run_server

__all__ = ["KafkaServer", "run_server"]
