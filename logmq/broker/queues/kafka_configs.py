"""Share-group configs under Kafka's names (GROUP config resources), kept in LMDB.

Kafka clients configure a share group with IncrementalAlterConfigs on a GROUP resource
(``kafka-configs --entity-type groups``), not through the member. The names and defaults
here are Kafka 4.4's; ``logmq.*`` keys are logmq's queue extensions, which Kafka clients see
as ordinary redelivery:

=================================== ========= ==================================================
``share.record.lock.duration.ms``   30000     how long a wire member holds an acquired record
``share.delivery.count.limit``      5         deliveries before a record is given up on
``share.auto.offset.reset``         latest    where a new share group starts (earliest/latest)
``share.session.timeout.ms``        45000     a member without a heartbeat this long is removed
``share.heartbeat.interval.ms``     5000      the heartbeat interval members are told
``logmq.dead.letter.topic``         (unset)   where given-up records are copied (unset:
                                              ``<topic>.dlq``; empty: archived, no copy)
``logmq.retry.backoff.ms``          0         backoff before a timed-out record is available
                                              again (Kafka: none)
=================================== ========= ==================================================

A share group that an embedded member (``log.queue``) configured first keeps that member's
settings (:class:`~logmq.broker.queues.model.GroupConfig`); the values here apply when the wire
opens the group.
"""

from __future__ import annotations

import json
from typing import Any

import lmdb

from logmq.broker.names import group_id_problem
from logmq.broker.queues.model import GroupConfig
from logmq.errors import ConfigError, InvalidGroupIdError

__all__ = ["SHARE_GROUP_CONFIGS", "ShareGroupConfigs"]

#: name -> (default as Kafka shows it, doc)
SHARE_GROUP_CONFIGS: dict[str, tuple[str | None, str]] = {
    "share.record.lock.duration.ms": ("30000", "acquisition lock of a wire member (ms)"),
    "share.delivery.count.limit": ("5", "deliveries before a record is archived/dead-lettered"),
    "share.auto.offset.reset": ("latest", "where a new share group starts"),
    "share.session.timeout.ms": ("45000", "member removed after this long without heartbeat"),
    "share.heartbeat.interval.ms": ("5000", "heartbeat interval told to members"),
    "share.isolation.level": ("read_uncommitted", "only read_uncommitted is served"),
    "logmq.dead.letter.topic": (None, "dead-letter topic (unset: <topic>.dlq, empty: none)"),
    # Kafka 4.4's names (KIP-1191): set, the topic name wins over logmq.dead.letter.topic
    "errors.deadletterqueue.topic.name": (None, "dead-letter topic, Kafka's name for it"),
    "errors.deadletterqueue.copy.record.enable": (
        "false", "Kafka copies the record only when true; logmq always copies it"),
    "logmq.retry.backoff.ms": ("0", "delay before a timed-out record is redelivered (ms)"),
}

_INT_KEYS = {
    "share.record.lock.duration.ms": (1000, 3_600_000),
    "share.delivery.count.limit": (2, 10),
    "share.session.timeout.ms": (1000, 3_600_000),
    "share.heartbeat.interval.ms": (100, 3_600_000),
    "logmq.retry.backoff.ms": (0, 3_600_000),
}


def _check(key: str, value: str | None) -> None:
    if key not in SHARE_GROUP_CONFIGS:
        raise ConfigError(f"unknown share group config {key!r}")
    if value is None:
        return
    if key in _INT_KEYS:
        lo, hi = _INT_KEYS[key]
        try:
            n = int(value)
        except ValueError:
            raise ConfigError(f"{key} must be an integer, got {value!r}") from None
        if not lo <= n <= hi:
            raise ConfigError(f"{key} must be between {lo} and {hi}, got {n}")
    elif key == "share.auto.offset.reset" and value not in ("earliest", "latest"):
        raise ConfigError("share.auto.offset.reset must be earliest or latest")
    elif key == "share.isolation.level" and value != "read_uncommitted":
        raise ConfigError("share.isolation.level: only read_uncommitted is served")


class ShareGroupConfigs:
    """Overrides per group name (one LMDB key each); unset keys read as the defaults."""

    def __init__(self, env: lmdb.Environment) -> None:
        self.env = env
        self.db = env.open_db(b"share_group_configs")

    def overrides(self, group: str) -> dict[str, str]:
        if group_id_problem(group, allow_empty=True):
            return {}  # a name that cannot be a key has no overrides
        with self.env.begin(db=self.db) as txn:
            raw = txn.get(group.encode())
        return {} if raw is None else dict(json.loads(bytes(raw)))

    def get(self, group: str, key: str) -> str | None:
        return self.overrides(group).get(key, SHARE_GROUP_CONFIGS[key][0])

    def get_int(self, group: str, key: str) -> int:
        return int(self.get(group, key) or 0)

    def alter(self, group: str, changes: dict[str, str | None], *, replace: bool = False,
              validate_only: bool = False) -> None:
        """Set (None: delete) keys; ``replace`` drops the overrides not named."""
        problem = group_id_problem(group, allow_empty=True)
        if problem:
            raise InvalidGroupIdError(problem)
        for k, v in changes.items():
            _check(k, v)
        if validate_only:
            return
        cur: dict[str, Any] = {} if replace else self.overrides(group)
        for k, v in changes.items():
            if v is None:
                cur.pop(k, None)
            else:
                cur[k] = v
        with self.env.begin(db=self.db, write=True) as txn:
            if cur:
                txn.put(group.encode(), json.dumps(cur, sort_keys=True).encode())
            else:
                txn.delete(group.encode())

    def entries(self, group: str) -> list[tuple[str, str | None, bool]]:
        """(name, value, is default) for every config, as DescribeConfigs lists them."""
        over = self.overrides(group)
        return [(k, over.get(k, d), k not in over) for k, (d, _doc) in
                sorted(SHARE_GROUP_CONFIGS.items())]

    def group_config(self, group: str) -> GroupConfig:
        """The engine settings a share group opened from the wire gets."""
        dlq = self.get(group, "errors.deadletterqueue.topic.name") or \
            self.get(group, "logmq.dead.letter.topic")
        backoff = self.get_int(group, "logmq.retry.backoff.ms")
        return GroupConfig(
            max_attempts=self.get_int(group, "share.delivery.count.limit"),
            backoff_base_ms=backoff, backoff_max_ms=max(backoff, 1), backoff_jitter=0.0,
            dead_letter_topic=dlq,
            auto_offset_reset=self.get(group, "share.auto.offset.reset") or "latest")
