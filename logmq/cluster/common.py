"""What the cluster backend's parts share: the target URL, client settings, error mapping.

A ``kafka://`` target names bootstrap servers and, in its query string, connection settings
(``security_protocol``, ``sasl_mechanism``, ...). Settings use logmq's underscore spelling and
become librdkafka's dotted names here, so ``connect()`` never asks users to learn a second
vocabulary; a dotted key passes through unchanged for anything this table does not know.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from logmq import errors
from logmq.errors import LogMQError

__all__ = ["parse_kafka_url", "client_config", "translate", "raise_for", "CONNECTION_KEYS"]

#: logmq spelling -> librdkafka name, where simple underscore->dot is not the answer
_ALIASES = {
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "ssl_password": "ssl.key.password",
    "ssl_check_hostname": "ssl.endpoint.identification.algorithm",
}

_RDKAFKA_LOG = logging.getLogger("logmq.cluster.rdkafka")
_RDKAFKA_LOG.addHandler(logging.NullHandler())  # a library's logs: shown if the app asks
_RDKAFKA_LOG.propagate = True

#: connection settings every client made by one connect() shares
CONNECTION_KEYS = ("security_protocol", "sasl_mechanism", "sasl_username", "sasl_password",
                   "ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password",
                   "ssl_check_hostname", "client_id")


def _rd_name(key: str) -> str:
    if "." in key:
        return key
    return _ALIASES.get(key, key.replace("_", "."))


def _rd_value(key: str, value: Any) -> Any:
    if key == "ssl_check_hostname":
        return "https" if value not in (False, "false", "0", "none") else "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, int | float | str) else str(value)


def parse_kafka_url(target: str) -> tuple[str, dict[str, str]]:
    """``kafka://h1:9092,h2:9092?security_protocol=SASL_SSL`` -> (bootstrap, settings)."""
    parts = urlsplit(target)
    if parts.scheme != "kafka":
        raise errors.ConfigError(f"not a kafka:// URL: {target!r}")
    bootstrap = parts.netloc
    if not bootstrap or "@" in bootstrap:
        raise errors.ConfigError(
            f"kafka:// URL needs host:port[,host:port] and no credentials in it: {target!r} "
            "(pass sasl_username= / sasl_password= as settings)")
    for hp in bootstrap.split(","):
        host, _, port = hp.rpartition(":")
        if not host or not port.isdigit():
            raise errors.ConfigError(f"bootstrap server {hp!r} is not host:port in {target!r}")
    return bootstrap, dict(parse_qsl(parts.query, keep_blank_values=True))


def client_config(bootstrap: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka configuration for one client: bootstrap plus connection settings."""
    # librdkafka's own log lines go through logging (quiet unless the app configures it)
    out: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": _RDKAFKA_LOG}
    for k, v in settings.items():
        out[_rd_name(k)] = _rd_value(k, v)
    return out


def translate(err: Any, topic: str | None = None, partition: int | None = None,
              what: str = "") -> LogMQError:
    """A confluent-kafka ``KafkaError`` (or KafkaException) as the logmq error an embedded log
    raises for the same condition, so callers' ``except`` clauses move unchanged."""
    from confluent_kafka import KafkaError, KafkaException

    if isinstance(err, KafkaException):
        err = err.args[0] if err.args else None
    if not isinstance(err, KafkaError):
        return LogMQError(f"{what}: {err}" if what else str(err))
    code = err.code()
    msg = f"{what}: {err.str()}" if what else err.str()
    t = topic or "?"
    out: LogMQError
    if code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
        out = errors.UnknownTopicError(t)  # Kafka's one code for both: callers that know
        # the topic exists check the partition against metadata first
    elif code == KafkaError._UNKNOWN_PARTITION:
        out = errors.InvalidPartitionError(t, partition if partition is not None else -1)
    elif code == KafkaError.TOPIC_ALREADY_EXISTS:
        out = errors.TopicExistsError(t)
    elif code == KafkaError.OFFSET_OUT_OF_RANGE:
        out = errors.OffsetOutOfRangeError(t, -1 if partition is None else partition, -1, -1, -1)
    else:
        cls = _BY_CODE.get(code, LogMQError)
        out = cls(msg)
    out.kafka_error = err  # type: ignore[attr-defined]
    return out


def raise_for(err: Any, topic: str | None = None, partition: int | None = None,
              what: str = "") -> None:
    if err is not None:
        raise translate(err, topic, partition, what)


def _by_code() -> dict[int, type[LogMQError]]:
    from confluent_kafka import KafkaError as K

    return {
        K.TOPIC_EXCEPTION: errors.InvalidTopicError,
        K.MSG_SIZE_TOO_LARGE: errors.RecordTooLargeError,
        K.RECORD_LIST_TOO_LARGE: errors.RecordTooLargeError,
        K._MSG_TIMED_OUT: errors.KafkaTimeoutError,
        K._TIMED_OUT: errors.KafkaTimeoutError,
        K.REQUEST_TIMED_OUT: errors.KafkaTimeoutError,
        K.INVALID_CONFIG: errors.ConfigError,
        K.INVALID_PARTITIONS: errors.ConfigError,
        K.INVALID_REPLICATION_FACTOR: errors.ConfigError,
        K.POLICY_VIOLATION: errors.ConfigError,
        K.NON_EMPTY_GROUP: errors.GroupNotEmptyError,
        K.GROUP_ID_NOT_FOUND: errors.GroupIdNotFoundError,
        K.UNKNOWN_MEMBER_ID: errors.UnknownMemberError,
        K.ILLEGAL_GENERATION: errors.IllegalGenerationError,
        K.REBALANCE_IN_PROGRESS: errors.RebalanceInProgressError,
        K.SASL_AUTHENTICATION_FAILED: errors.AuthenticationError,
        K._AUTHENTICATION: errors.AuthenticationError,
        K.UNSUPPORTED_VERSION: errors.UnsupportedVersionError,
        K.UNSUPPORTED_COMPRESSION_TYPE: errors.UnsupportedCompressionError,
        K.INVALID_TIMESTAMP: errors.InvalidTimestampError,
        K.OUT_OF_ORDER_SEQUENCE_NUMBER: errors.OutOfOrderSequenceError,
        K.DUPLICATE_SEQUENCE_NUMBER: errors.DuplicateSequenceError,
        K.INVALID_PRODUCER_EPOCH: errors.InvalidProducerEpochError,
        # an unreachable cluster: the bounded wait ran out, as a request to a dead server does
        K._ALL_BROKERS_DOWN: errors.KafkaTimeoutError,
        K._TRANSPORT: errors.KafkaTimeoutError,
        K._DESTROY: errors.BrokerClosedError,
    }


try:
    _BY_CODE = _by_code()
except ImportError:  # pragma: no cover - confluent-kafka missing: connect() says so
    _BY_CODE = {}


class ClusterContext(Protocol):
    """What the producer, consumer and group admin need of the KafkaBroker that made them
    (a Protocol, so they do not import the broker module that imports them)."""

    request_timeout: float
    bootstrap: str
    settings: dict[str, Any]

    @property
    def admin(self) -> Any: ...

    def client_config(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]: ...

    def result(self, fut: Any, topic: str | None = None, partition: int | None = None,
               what: str = "") -> Any: ...

    def partitions_for(self, topic: str) -> int: ...

    def create_topic(self, name: str, partitions: int | None = None,
                     config: Mapping[str, Any] | None = None, *,
                     exist_ok: bool = False) -> Any: ...

    def topic_config(self, name: str) -> dict[str, Any]: ...

    def alter_topic_config(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]: ...

    def start_offset(self, tp: Any) -> int: ...

    def end_offset(self, tp: Any) -> int: ...

    def offsets(self, tp: Any) -> tuple[int, int]: ...

    def offsets_for_times(self, timestamps: Mapping[Any, int]) -> dict[Any, Any]: ...
