"""Message options as record headers: the names, how they are written and how they are read.

Queue features ride on ordinary records, so every option a producer sets is a header. That
keeps the log format pure Kafka RecordBatch v2 (any Kafka client can read these records) and
lets plain consumers see the options: a delayed record is at its offset like any other, with
its due time in ``logmq.deliver-at``. Values are ASCII decimal (milliseconds since the epoch
for times) so they read well in ``logmq consume --format json`` and in other languages.

=========================== ==================================================================
``logmq.deliver-at``        due time (ms); queue consumers do not receive the record before it
``logmq.expires-at``        expiry time (ms, send time + ``ttl_ms``); never delivered after it
``logmq.priority``          0..9, higher first among a queue's available records
``logmq.msg-id``            the producer's message id (dedup within ``dedup_window_ms``)
``logmq.reply-to``          topic the reply to a request goes to (request-reply)
``logmq.correlation-id``    id tying a reply to its request
=========================== ==================================================================

Dead-letter copies carry ``logmq.dlq.*`` headers naming where the record came from and why it
died (see :data:`DLQ_HEADERS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, TypedDict

from logmq.errors import ConfigError

__all__ = [
    "DELIVER_AT",
    "EXPIRES_AT",
    "PRIORITY",
    "MSG_ID",
    "REPLY_TO",
    "CORRELATION_ID",
    "OPTION_HEADERS",
    "DLQ_TOPIC",
    "DLQ_PARTITION",
    "DLQ_OFFSET",
    "DLQ_GROUP",
    "DLQ_ATTEMPTS",
    "DLQ_REASON",
    "DLQ_ERROR",
    "DLQ_PRODUCED_AT",
    "DLQ_FIRST_DELIVERY_AT",
    "DLQ_DEAD_AT",
    "DLQ_HEADERS",
    "SendOptions",
    "RecordOptions",
    "record_options",
    "header",
    "check_priority",
]

DELIVER_AT = "logmq.deliver-at"
EXPIRES_AT = "logmq.expires-at"
PRIORITY = "logmq.priority"
MSG_ID = "logmq.msg-id"
REPLY_TO = "logmq.reply-to"
CORRELATION_ID = "logmq.correlation-id"
OPTION_HEADERS = (DELIVER_AT, EXPIRES_AT, PRIORITY, MSG_ID, REPLY_TO, CORRELATION_ID)

DLQ_TOPIC = "logmq.dlq.topic"  # the source topic
DLQ_PARTITION = "logmq.dlq.partition"
DLQ_OFFSET = "logmq.dlq.offset"
DLQ_GROUP = "logmq.dlq.group"  # the share group that gave up on it
DLQ_ATTEMPTS = "logmq.dlq.attempts"  # deliveries without an ack
DLQ_REASON = "logmq.dlq.reason"  # max-attempts, rejected or expired
DLQ_ERROR = "logmq.dlq.error"  # the last error (nack error, reject reason, lock expired)
DLQ_PRODUCED_AT = "logmq.dlq.produced-at"  # the original record's timestamp (ms)
DLQ_FIRST_DELIVERY_AT = "logmq.dlq.first-delivery-at"  # ms, absent if never delivered
DLQ_DEAD_AT = "logmq.dlq.dead-at"  # when it was dead-lettered (ms)
DLQ_HEADERS = (DLQ_TOPIC, DLQ_PARTITION, DLQ_OFFSET, DLQ_GROUP, DLQ_ATTEMPTS, DLQ_REASON,
               DLQ_ERROR, DLQ_PRODUCED_AT, DLQ_FIRST_DELIVERY_AT, DLQ_DEAD_AT)


class SendOptions(TypedDict, total=False):
    """Keyword options of :meth:`logmq.Producer.send` beyond Kafka's (all optional)."""

    delay_ms: int
    deliver_at: int
    ttl_ms: int
    priority: int
    msg_id: str | bytes
    expected_offset: int


class RecordOptions(NamedTuple):
    """The queue-relevant options found in one record's headers."""

    deliver_at: int | None
    expires_at: int | None
    priority: int


_NONE = RecordOptions(None, None, 0)


def _int_header(v: bytes | None) -> int | None:
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        return None  # a foreign producer's malformed header is ignored, not fatal


def record_options(headers: Sequence[tuple[str, bytes | None]]) -> RecordOptions:
    """Parse the options of a record; headers that are not logmq's cost one prefix check."""
    if not headers:
        return _NONE
    deliver = expires = None
    prio = 0
    for k, v in headers:
        if not k.startswith("logmq."):
            continue
        if k == DELIVER_AT:
            deliver = _int_header(v)
        elif k == EXPIRES_AT:
            expires = _int_header(v)
        elif k == PRIORITY:
            p = _int_header(v)
            if p is not None:
                prio = min(9, max(0, p))
    if deliver is None and expires is None and prio == 0:
        return _NONE
    return RecordOptions(deliver, expires, prio)


def header(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> bytes | None:
    """The value of the last header called ``name`` (None when absent)."""
    found = None
    for k, v in headers or ():
        if k == name:
            found = v
    return found


def check_priority(priority: int) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        raise ConfigError(f"priority must be an integer 0..9, got {priority!r}")
    return priority
