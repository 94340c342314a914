"""Kafka protocol error codes and their names (for messages a person reads)."""

from __future__ import annotations

from logmq.kafka_codes import ErrorCode

__all__ = ["ERROR_NAMES"]

#: code -> name, from the generated vocabulary (:mod:`logmq.kafka_codes`)
ERROR_NAMES: dict[int, str] = {int(c): c.name for c in ErrorCode}
