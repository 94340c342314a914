"""The exceptions logmq raises, as one small tree.

Every error derives from :class:`LogMQError`, so ``except logmq.errors.LogMQError`` catches
anything the library raises on purpose. Each class carries ``kafka_code``: the Kafka protocol
error code the wire server answers with when this error reaches a client, so the server never
has to guess a mapping and embedded users see the same vocabulary as Kafka users.
"""

from __future__ import annotations

from logmq.kafka_codes import ErrorCode as E

__all__ = [
    "LogMQError",
    "ConfigError",
    "ConfigKeyError",
    "UnknownTopicError",
    "TopicExistsError",
    "InvalidTopicError",
    "InvalidPartitionError",
    "OffsetOutOfRangeError",
    "RecordTooLargeError",
    "BrokerClosedError",
    "CorruptRecordError",
    "DirectoryLockedError",
    "StorageError",
    "DiskFullError",
    "LogDirFailedError",
    "DataDirError",
    "PartitionLimitError",
    "BufferFullError",
    "KafkaTimeoutError",
    "ProtocolError",
    "UnsupportedVersionError",
    "UnsupportedCompressionError",
    "GroupError",
    "UnknownMemberError",
    "IllegalGenerationError",
    "RebalanceInProgressError",
    "MemberIdRequiredError",
    "FencedInstanceIdError",
    "InconsistentGroupProtocolError",
    "GroupNotEmptyError",
    "GroupIdNotFoundError",
    "InvalidSessionTimeoutError",
    "FencedMemberEpochError",
    "StaleMemberEpochError",
    "UnreleasedInstanceIdError",
    "UnsupportedAssignorError",
    "InvalidRegularExpressionError",
    "NoOffsetError",
    "OutOfOrderSequenceError",
    "DuplicateSequenceError",
    "InvalidProducerEpochError",
    "ConcurrencyError",
    "WrongExpectedVersionError",
    "StreamDeletedError",
    "QueueFullError",
    "RecordStateError",
    "AuthenticationError",
    "InvalidRecordError",
    "InvalidTimestampError",
    "UnsupportedOnClusterError",
    "EncryptionKeyError",
    "AuthorizationError",
    "InvalidAclError",
    "TransactionError",
    "ProducerFencedError",
    "InvalidTxnStateError",
    "ConcurrentTransactionsError",
    "InvalidProducerIdMappingError",
    "InvalidTransactionTimeoutError",
    "TransactionalIdNotFoundError",
    "InvalidTransactionalIdError",
    "InvalidGroupIdError",
]


class LogMQError(Exception):
    """Base of every error logmq raises on purpose."""

    kafka_code: int = E.UNKNOWN_SERVER_ERROR


class ConfigError(LogMQError, ValueError):
    """A configuration key or value is not valid."""

    kafka_code = E.INVALID_CONFIG


class ConfigKeyError(ConfigError):
    """One setting is unknown or has a bad value; ``key`` names it, ``source`` says where it
    was read (``kwarg``, ``file:<path>``, ``env:<VAR>``; empty when not known)."""

    def __init__(self, key: str, message: str, source: str = "") -> None:
        super().__init__(message)
        self.key = key
        self.source = source


class UnknownTopicError(LogMQError):
    """The topic does not exist (and was not auto-created)."""

    kafka_code = E.UNKNOWN_TOPIC_OR_PARTITION

    def __init__(self, topic: str) -> None:
        super().__init__(f"unknown topic {topic!r}")
        self.topic = topic


class TopicExistsError(LogMQError):
    """create_topic was asked for a topic that already exists."""

    kafka_code = E.TOPIC_ALREADY_EXISTS

    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic!r} already exists")
        self.topic = topic


class InvalidTopicError(LogMQError, ValueError):
    """A topic name breaks Kafka's naming rules (length, characters, '.'/'..')."""

    kafka_code = E.INVALID_TOPIC_EXCEPTION


class InvalidPartitionError(LogMQError):
    """The partition number is outside the topic's partitions."""

    kafka_code = E.UNKNOWN_TOPIC_OR_PARTITION

    def __init__(self, topic: str, partition: int, count: int | None = None) -> None:
        extra = f" (topic has {count})" if count is not None else ""
        super().__init__(f"partition {partition} does not exist in topic {topic!r}{extra}")
        self.topic = topic
        self.partition = partition


class OffsetOutOfRangeError(LogMQError):
    """An offset below the log start or past the log end was requested."""

    kafka_code = E.OFFSET_OUT_OF_RANGE

    def __init__(
        self, topic: str, partition: int, offset: int, start: int, end: int
    ) -> None:
        super().__init__(
            f"offset {offset} is out of range for {topic}-{partition} "
            f"(log start {start}, log end {end})"
        )
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.start = start
        self.end = end


class RecordTooLargeError(LogMQError):
    """A record or batch is larger than the topic's ``max.message.bytes``."""

    kafka_code = E.MESSAGE_TOO_LARGE


class BrokerClosedError(LogMQError):
    """The log (or a producer/consumer on it) was used after close()."""

    kafka_code = E.UNKNOWN_SERVER_ERROR


class CorruptRecordError(LogMQError):
    """Bytes that should be a record batch are not one (bad CRC, length, magic or varints).

    ``path`` and ``position`` name the file and byte offset when the bytes came from disk.
    """

    kafka_code = E.CORRUPT_MESSAGE

    def __init__(self, message: str, path: str | None = None, position: int | None = None):
        where = ""
        if path is not None:
            where = f" in {path}" + (f" at byte {position}" if position is not None else "")
        super().__init__(message + where)
        self.path = path
        self.position = position


class DirectoryLockedError(LogMQError):
    """Another process (or another open() in this one) owns the data directory."""


class StorageError(LogMQError, OSError):
    """The disk refused a write, a sync or a read; nothing was acknowledged.

    ``path`` names the file and ``errno`` the OS error when there was one. Kafka clients get
    KAFKA_STORAGE_ERROR, which they retry. An OSError too, so code that already handles
    OS errors around storage keeps doing so.
    """

    kafka_code = E.KAFKA_STORAGE_ERROR

    def __init__(self, message: str, path: str | None = None, errno: int | None = None):
        super().__init__(message + (f" ({path})" if path else ""))
        self.path = path
        self.errno = errno


class DiskFullError(StorageError):
    """No space (or file size limit) for an append: it was rolled back, the log is unchanged
    and takes appends again as soon as space is freed."""


class LogDirFailedError(StorageError):
    """An fsync failed, so what the disk holds is unknown: the partition refuses reads and
    appends until the data directory is reopened (which recovers it from the disk)."""


class DataDirError(StorageError):
    """The path cannot be opened as a data directory (a file, corrupt or lost metadata)."""

    kafka_code = E.UNKNOWN_SERVER_ERROR


class PartitionLimitError(ConfigError):
    """A topic would exceed the per-topic or per-broker partition cap, or the fd budget."""

    kafka_code = E.INVALID_PARTITIONS


class BufferFullError(LogMQError):
    """The producer's buffer stayed full for longer than ``max_block_ms``."""

    kafka_code = E.REQUEST_TIMED_OUT


class KafkaTimeoutError(LogMQError, TimeoutError):
    """An operation did not complete in the time it was given."""

    kafka_code = E.REQUEST_TIMED_OUT


class ProtocolError(LogMQError):
    """Bytes on the wire do not decode as the Kafka message they claim to be."""

    kafka_code = E.INVALID_REQUEST


class UnsupportedVersionError(ProtocolError):
    """An API key or version the server does not implement."""

    kafka_code = E.UNSUPPORTED_VERSION


class UnsupportedCompressionError(LogMQError):
    """A batch uses a compression codec whose package is not installed."""

    kafka_code = E.UNSUPPORTED_COMPRESSION_TYPE


class GroupError(LogMQError):
    """Base of consumer-group coordination errors."""


class UnknownMemberError(GroupError):
    kafka_code = E.UNKNOWN_MEMBER_ID


class IllegalGenerationError(GroupError):
    kafka_code = E.ILLEGAL_GENERATION


class RebalanceInProgressError(GroupError):
    kafka_code = E.REBALANCE_IN_PROGRESS


class FencedInstanceIdError(GroupError):
    """Another process joined with this member's ``group.instance.id`` and replaced it."""

    kafka_code = E.FENCED_INSTANCE_ID


class MemberIdRequiredError(GroupError):
    """JoinGroup v4+: the member must rejoin with the member id it was handed."""

    kafka_code = E.MEMBER_ID_REQUIRED

    def __init__(self, member_id: str) -> None:
        super().__init__(f"member id required; rejoin with {member_id!r}")
        self.member_id = member_id


class InconsistentGroupProtocolError(GroupError):
    kafka_code = E.INCONSISTENT_GROUP_PROTOCOL


class GroupNotEmptyError(GroupError):
    kafka_code = E.NON_EMPTY_GROUP


class GroupIdNotFoundError(GroupError):
    kafka_code = E.GROUP_ID_NOT_FOUND


class InvalidSessionTimeoutError(GroupError):
    kafka_code = E.INVALID_SESSION_TIMEOUT


# KIP-848 consumer groups (logmq.broker.groups.consumer_group)
class FencedMemberEpochError(GroupError):
    """A consumer-protocol member sent an epoch the group never gave it: it must rejoin."""

    kafka_code = E.FENCED_MEMBER_EPOCH


class StaleMemberEpochError(GroupError):
    """A commit or fetch carries an older epoch than the member's current one."""

    kafka_code = E.STALE_MEMBER_EPOCH


class UnreleasedInstanceIdError(GroupError):
    """A static member joined while the previous holder of its instance id is still active."""

    kafka_code = E.UNRELEASED_INSTANCE_ID


class UnsupportedAssignorError(GroupError):
    kafka_code = E.UNSUPPORTED_ASSIGNOR


class InvalidRegularExpressionError(GroupError):
    """A subscription regex that does not compile. Kafka 4 answers INVALID_REGULAR_EXPRESSION
    (128), which the generated vocabulary (a 2024 snapshot) lacks: the KIP-848 handler sends
    128 on the wire, this code is the closest older one."""

    kafka_code = E.INVALID_REQUEST
    wire_code = 128


class NoOffsetError(LogMQError):
    """A consumer has no committed offset and ``auto_offset_reset='none'``."""

    kafka_code = E.OFFSET_OUT_OF_RANGE


class OutOfOrderSequenceError(LogMQError):
    """An idempotent producer skipped sequence numbers (a batch was lost in between)."""

    kafka_code = E.OUT_OF_ORDER_SEQUENCE_NUMBER


class DuplicateSequenceError(LogMQError):
    """An idempotent producer resent a batch already appended; it was not appended again."""

    kafka_code = E.DUPLICATE_SEQUENCE_NUMBER


class InvalidProducerEpochError(LogMQError):
    kafka_code = E.INVALID_PRODUCER_EPOCH


class ConcurrencyError(LogMQError):
    """A conditional append found the partition's end offset was not the expected one."""

    kafka_code = E.OFFSET_OUT_OF_RANGE

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"expected end offset {expected}, partition is at {actual}")
        self.expected = expected
        self.actual = actual


class WrongExpectedVersionError(ConcurrencyError):
    """A stream append found the stream at another version than the caller expected."""

    def __init__(self, stream: object, expected: object, actual_version: int) -> None:
        LogMQError.__init__(self, f"stream {stream!r}: expected version {expected}, "
                                  f"the stream is at version {actual_version}")
        self.stream = stream
        self.expected = expected  # type: ignore[assignment]  # a version or ANY/NO_STREAM
        self.expected_version = expected
        self.actual = actual_version
        self.actual_version = actual_version


class StreamDeletedError(LogMQError):
    """The stream was tombstoned: it can be neither appended to nor recreated."""

    kafka_code = E.OFFSET_OUT_OF_RANGE


class QueueFullError(LogMQError):
    """A queue topic holds ``max.queue.depth`` unacknowledged records."""

    kafka_code = E.REQUEST_TIMED_OUT


class RecordStateError(LogMQError):
    """A queue record was acked/nacked by a member that no longer holds its lock."""


class AuthenticationError(LogMQError):
    """A client presented the wrong key (a RemoteQueue connecting to a queue server)."""

    kafka_code = E.SASL_AUTHENTICATION_FAILED


class InvalidRecordError(CorruptRecordError):
    """A well-framed batch the broker refuses (counts, offsets, flags, missing keys).

    A CorruptRecordError subclass, so ``except CorruptRecordError`` keeps catching every
    refused batch.
    """

    kafka_code = E.INVALID_RECORD


class InvalidTimestampError(InvalidRecordError):
    """A record timestamp outside message.timestamp.before/after.max.ms of the broker's clock."""

    kafka_code = E.INVALID_TIMESTAMP


class UnsupportedOnClusterError(LogMQError, NotImplementedError):
    """The call exists on an embedded log but cannot on a Kafka cluster (``connect("kafka://")``):
    the message says what to use instead (README "Scaling out" has the table)."""

    kafka_code = E.UNSUPPORTED_VERSION


class EncryptionKeyError(LogMQError):
    """A sealed topic's batch cannot be sealed or opened: its key id is not in the key ring,
    the key under that id is the wrong one, or no key is configured at all.

    Nothing is appended and no bytes are returned (never ciphertext posing as records).
    ``key_id`` names the key when known. Kafka clients get KAFKA_STORAGE_ERROR, as for a log
    directory the broker cannot read: retriable, since the fix is the operator's (supply the
    key) and needs no client change; the broker logs the cause.
    """

    kafka_code = E.KAFKA_STORAGE_ERROR

    def __init__(self, message: str, key_id: str | None = None) -> None:
        super().__init__(message)
        self.key_id = key_id


class AuthorizationError(LogMQError):
    """The principal may not do this (the authorizer's answer); ``kafka_code`` is the
    TOPIC/GROUP/CLUSTER/TRANSACTIONAL_ID_AUTHORIZATION_FAILED code of the resource refused."""

    kafka_code: int = E.CLUSTER_AUTHORIZATION_FAILED

    def __init__(self, message: str, kafka_code: int | None = None) -> None:
        super().__init__(message)
        if kafka_code is not None:
            self.kafka_code = kafka_code


class InvalidAclError(ConfigError):
    """An ACL binding or filter that cannot be one (unknown operation, bad principal, ...)."""

    kafka_code = E.INVALID_REQUEST


# ---------------------------------------------------------------------- transactions
class TransactionError(LogMQError):
    """Base of the transaction coordinator's refusals (each carries Kafka's code)."""


class ProducerFencedError(TransactionError):
    """A newer producer with the same transactional id took over (or the transaction timed
    out and the coordinator bumped the epoch): this producer instance must close."""

    kafka_code = E.PRODUCER_FENCED


class InvalidTxnStateError(TransactionError):
    """The request does not fit the transaction's state (EndTxn without a transaction,
    a transactional write to a partition the transaction never added)."""

    kafka_code = E.INVALID_TXN_STATE


class ConcurrentTransactionsError(TransactionError):
    """The previous transaction of this id is still completing; retry shortly."""

    kafka_code = E.CONCURRENT_TRANSACTIONS


class InvalidProducerIdMappingError(TransactionError):
    """The producer id does not belong to the transactional id (or the id is unknown)."""

    kafka_code = E.INVALID_PRODUCER_ID_MAPPING


class InvalidTransactionTimeoutError(TransactionError):
    """``transaction.timeout.ms`` is above the broker's ``transaction.max.timeout.ms``."""

    kafka_code = E.INVALID_TRANSACTION_TIMEOUT


class TransactionalIdNotFoundError(TransactionError):
    kafka_code = E.TRANSACTIONAL_ID_NOT_FOUND


class InvalidTransactionalIdError(TransactionError):
    """An empty transactional id (Kafka answers INVALID_REQUEST)."""

    kafka_code = E.INVALID_REQUEST


class InvalidGroupIdError(ConfigError, TransactionError):
    """A group id that cannot be stored (a NUL, over 200 UTF-8 bytes, or empty where Kafka
    refuses one): a ConfigError to embedded callers, INVALID_GROUP_ID on the wire, and a
    TransactionError where TxnOffsetCommit meets it."""

    kafka_code = E.INVALID_GROUP_ID
