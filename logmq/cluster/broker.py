"""``KafkaBroker``: the embedded :class:`~logmq.Broker`'s methods, on a Kafka cluster.

Everything here is an AdminClient call (confluent-kafka / librdkafka) with the answer shaped
as the embedded log shapes it: topics as :class:`~logmq.types.TopicDescription`, offsets as
ints, lookups by time as :class:`~logmq.types.OffsetAndTimestamp`, failures as
:mod:`logmq.errors`. Kafka's admin operations finish asynchronously on the controller, so
create and delete wait (bounded by ``request_timeout``) until metadata shows the result: code
that creates a topic and produces to it at once behaves as it does embedded.

Calls that only a local data directory can answer (raw batches, streams by key with expected
versions, share-group queues before KIP-932 support here) raise
:class:`~logmq.errors.UnsupportedOnClusterError` naming the alternative.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from confluent_kafka import KafkaException
from confluent_kafka import TopicPartition as CKTopicPartition
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from logmq import errors
from logmq.cluster.common import client_config, translate
from logmq.cluster.groups import ClusterGroups
from logmq.config import TOPIC_CONFIGS, validate_topic_config
from logmq.storage.manager import validate_topic_name
from logmq.types import OffsetAndTimestamp, PartitionInfo, TopicDescription, TopicPartition

__all__ = ["KafkaBroker", "INTERNAL_TOPICS"]

#: Kafka's own topics, hidden from list_topics as an embedded log has none of them
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state",
                             "__share_group_state", "__cluster_metadata"})


#: answers while a new topic's leadership settles (leader unknown, not leader, a leader epoch
#: this broker has not seen yet): Kafka clients retry them, and so does retrying()
_SETTLING = (5, 6, 74, 75)


def _tp(x: Any) -> TopicPartition:
    if isinstance(x, TopicPartition):
        return x
    t, p = x
    return TopicPartition(str(t), int(p))


def _unsupported(what: str, instead: str) -> NoReturn:
    raise errors.UnsupportedOnClusterError(
        f"{what} exists only on an embedded log, not on a Kafka cluster: {instead}")


def _no_streams() -> NoReturn:
    _unsupported("streams by key (append_to_stream/read_stream/subscribe_all)",
                 "they need an atomic check of a key's version against the log end, which "
                 "Kafka has no request for; keep event streams on an embedded log")


class KafkaBroker:
    """A Kafka cluster behind the embedded log's API. Thread-safe (librdkafka clients are).

    ``settings`` are connection settings (``security_protocol``, ``sasl_mechanism``,
    ``sasl_username``, ``sasl_password``, ``ssl_cafile``, ... or librdkafka's dotted names)
    shared by the admin client and every producer/consumer made here; ``request_timeout``
    (seconds, default 30) bounds each admin call and each wait for metadata to settle.
    """

    def __init__(self, bootstrap: str, settings: Mapping[str, Any] | None = None, *,
                 request_timeout: float = 30.0, target: str | None = None) -> None:
        self.bootstrap = bootstrap
        self.settings = dict(settings or {})
        self.request_timeout = float(request_timeout)
        self.target = target or f"kafka://{bootstrap}"
        # a metadata lookup must never create the topic it names (a broker's
        # auto.create.topics.enable would otherwise apply to the admin's requests)
        self._admin = AdminClient({**client_config(bootstrap, self.settings),
                                   "allow.auto.create.topics": False})
        self._closed = False
        self._groups = ClusterGroups(self)
        self._share_ok: bool | None = None

    # ------------------------------------------------------------------ plumbing
    def client_config(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        cfg = client_config(self.bootstrap, self.settings)
        cfg.update(extra or {})
        return cfg

    @property
    def admin(self) -> AdminClient:
        self.check_open()
        return self._admin

    def result(self, fut: Any, topic: str | None = None, partition: int | None = None,
               what: str = "") -> Any:
        try:
            return fut.result(timeout=self.request_timeout)
        except KafkaException as e:
            raise translate(e, topic, partition, what) from None
        except TimeoutError:
            raise errors.KafkaTimeoutError(
                f"{what or 'admin request'} got no answer in {self.request_timeout:g} s "
                f"from {self.bootstrap}") from None

    def _until(self, cond: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.request_timeout
        delay = 0.01
        while not cond():
            if time.monotonic() > deadline:
                raise errors.KafkaTimeoutError(f"{what} not visible after "
                                               f"{self.request_timeout:g} s")
            time.sleep(delay)  # polling the cluster's metadata, bounded by the deadline
            delay = min(delay * 2, 0.2)

    def _metadata(self, topic: str | None = None) -> Any:
        try:
            return self.admin.list_topics(topic, timeout=self.request_timeout)
        except KafkaException as e:
            raise translate(e, topic, None, "metadata") from None

    def _topic_meta(self, name: str) -> Any:
        md = self._metadata(name).topics.get(name)
        if md is None or (md.error is not None and md.error.code() != 0):
            raise errors.UnknownTopicError(name)
        return md

    def _check_partition(self, tp: TopicPartition) -> None:
        n = len(self._topic_meta(tp.topic).partitions)
        if not 0 <= tp.partition < n:
            raise errors.InvalidPartitionError(tp.topic, tp.partition, n)

    # ------------------------------------------------------------------ lifecycle
    def check_open(self) -> None:
        if self._closed:
            raise errors.BrokerClosedError("this kafka:// connection is closed")

    def close(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def flush(self) -> None:
        """Nothing to do: durability on a cluster is the producers' acks=all and replication."""
        self.check_open()

    def __enter__(self) -> KafkaBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<logmq.KafkaBroker {self.target!r}>"

    @property
    def path(self) -> str:
        return self.target

    # ------------------------------------------------------------------ topics
    def create_topic(self, name: str, partitions: int | None = None,
                     config: Mapping[str, Any] | None = None, *, exist_ok: bool = False,
                     replication_factor: int | None = None) -> TopicDescription:
        """Create a topic (broker defaults for partitions/replication when not given); with
        ``exist_ok`` an existing one is returned unchanged."""
        validate_topic_name(name)
        if partitions is not None and (not isinstance(partitions, int) or partitions < 1):
            raise errors.ConfigError(f"partitions must be an int >= 1, got {partitions!r}")
        cfg = self._kafka_config(config)
        nt = NewTopic(name, num_partitions=partitions or -1,
                      replication_factor=replication_factor or -1, config=cfg)
        fut = self.admin.create_topics([nt], request_timeout=self.request_timeout)[name]
        try:
            self.result(fut, name, None, f"create topic {name!r}")
        except errors.TopicExistsError:
            if not exist_ok:
                raise
        self._until(lambda: self._has_leaders(name), f"topic {name!r}")
        return self.describe_topic(name)

    def _has_leaders(self, name: str) -> bool:
        md = self._metadata(name).topics.get(name)
        return (md is not None and (md.error is None or md.error.code() == 0)
                and bool(md.partitions) and all(p.leader >= 0 for p in md.partitions.values()))

    @staticmethod
    def _kafka_config(config: Mapping[str, Any] | None) -> dict[str, str]:
        config = dict(config or {})
        # keys logmq does not know (min.insync.replicas, unclean.leader.election.enable...)
        # are the cluster's to judge: passed through, dotted, as strings
        extra = {k.replace("_", "."): v for k, v in config.items()
                 if k.replace("_", ".") not in TOPIC_CONFIGS}
        parsed = validate_topic_config({k: v for k, v in config.items()
                                        if k.replace("_", ".") in TOPIC_CONFIGS})
        parsed.update(extra)
        local = [k for k in parsed if k in TOPIC_CONFIGS and not TOPIC_CONFIGS[k].kafka]
        if local:
            _unsupported(f"topic config {', '.join(sorted(local))}",
                         "Kafka brokers have no such setting (durability there is replication "
                         "and acks; queue depth limits are logmq's own)")
        return {k: _kafka_str(v) for k, v in parsed.items() if v is not None}

    def create_partitions(self, name: str, total: int) -> None:
        fut = self.admin.create_partitions([NewPartitions(name, total)],
                                           request_timeout=self.request_timeout)[name]
        self.result(fut, name, None, f"create partitions of {name!r}")
        self._until(lambda: len(self._topic_meta(name).partitions) >= total,
                    f"{total} partitions of {name!r}")

    def delete_topic(self, name: str) -> None:
        fut = self.admin.delete_topics([name], request_timeout=self.request_timeout)[name]
        self.result(fut, name, None, f"delete topic {name!r}")
        self._until(lambda: name not in self._metadata().topics, f"deletion of {name!r}")

    def list_topics(self) -> list[str]:
        return sorted(t for t in self._metadata().topics if t not in INTERNAL_TOPICS)

    def partitions_for(self, topic: str) -> int:
        return len(self._topic_meta(topic).partitions)

    def topic_id(self, name: str) -> str:
        from confluent_kafka import TopicCollection

        fut = self.admin.describe_topics(TopicCollection([name]),
                                         request_timeout=self.request_timeout)[name]
        return str(self.result(fut, name, None, f"describe {name!r}").topic_id)

    def _configs(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        res = ConfigResource(ResourceType.TOPIC, name)
        entries = self.retrying(lambda: self.result(
            self.admin.describe_configs([res], request_timeout=self.request_timeout)[res],
            name, None, f"configs of {name!r}"))
        config: dict[str, Any] = {}
        overrides: dict[str, Any] = {}
        for k, e in entries.items():
            v = _typed(k, e.value)
            config[k] = v
            if getattr(e.source, "name", "") == "DYNAMIC_TOPIC_CONFIG" or e.source == 1:
                overrides[k] = v
        return config, overrides

    def topic_config(self, name: str) -> dict[str, Any]:
        self._topic_meta(name)
        return self._configs(name)[0]

    def alter_topic_config(self, name: str, config: Mapping[str, Any], *,
                           replace: bool = False) -> dict[str, Any]:
        """Set (``replace``: reset to exactly) per-topic overrides; None removes one.
        Returns the overrides now in force, as embedded."""
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

        self._topic_meta(name)
        sets = self._kafka_config({k: v for k, v in config.items() if v is not None})
        removed = [k.replace("_", ".") for k, v in config.items() if v is None]
        if replace:
            removed += [k for k in self._configs(name)[1] if k not in sets]
        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                   for k, v in sets.items()]
        entries += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE)
                    for k in dict.fromkeys(removed)]
        res = ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries)
        fut = self.admin.incremental_alter_configs([res],
                                                   request_timeout=self.request_timeout)[res]
        self.result(fut, name, None, f"alter configs of {name!r}")
        return self._configs(name)[1]

    def describe_topic(self, name: str) -> TopicDescription:
        """Partitions with offsets and the config. ``size_bytes`` and ``segments`` are -1:
        the cluster keeps them per replica, not per partition."""
        n = self.partitions_for(name)
        tps = [TopicPartition(name, p) for p in range(n)]
        starts = self._list_offsets(tps, OffsetSpec.earliest())
        ends = self._list_offsets(tps, OffsetSpec.latest())
        config, overrides = self._configs(name)
        parts = [PartitionInfo(tp.partition, starts[tp][0], ends[tp][0], -1, -1) for tp in tps]
        return TopicDescription(name, parts, config, overrides)

    # ------------------------------------------------------------------ offsets
    def _list_offsets(self, tps: list[TopicPartition], spec: Any,
                      ) -> dict[TopicPartition, tuple[int, int]]:
        if not tps:
            return {}
        for t in {tp.topic for tp in tps}:
            n = self.partitions_for(t)
            for tp in tps:
                if tp.topic == t and not 0 <= tp.partition < n:
                    raise errors.InvalidPartitionError(t, tp.partition, n)
        def attempt() -> dict[TopicPartition, tuple[int, int]]:
            req = {CKTopicPartition(tp.topic, tp.partition): spec for tp in tps}
            futs = self.admin.list_offsets(req, request_timeout=self.request_timeout)
            out: dict[TopicPartition, tuple[int, int]] = {}
            for ck, fut in futs.items():
                info = self.result(fut, ck.topic, ck.partition, "list offsets")
                out[TopicPartition(ck.topic, ck.partition)] = (info.offset, info.timestamp)
            return out

        return self.retrying(attempt)

    def retrying(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` again while the cluster answers with a retriable error (a new topic's
        leader not known everywhere yet, a leader moving), up to ``request_timeout``."""
        deadline = time.monotonic() + self.request_timeout
        delay = 0.02
        while True:
            try:
                return fn()
            except errors.LogMQError as e:
                ke = getattr(e, "kafka_error", None)
                transient = ke is not None and (ke.retriable() or ke.code() in _SETTLING)
                if not transient or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)  # backoff before asking the cluster again, bounded above
            delay = min(delay * 2, 0.5)

    def start_offset(self, tp: Any) -> int:
        t = _tp(tp)
        return self._list_offsets([t], OffsetSpec.earliest())[t][0]

    def end_offset(self, tp: Any) -> int:
        t = _tp(tp)
        return self._list_offsets([t], OffsetSpec.latest())[t][0]

    def offsets(self, tp: Any) -> tuple[int, int]:
        """(log start offset, log end offset) of a partition."""
        return self.start_offset(tp), self.end_offset(tp)

    def offsets_for_times(self, timestamps: Mapping[Any, int]
                          ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """Earliest offset per partition whose timestamp is >= the given one (ms), or None."""
        out: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        for raw, ts in timestamps.items():
            t = _tp(raw)
            off, found = self._list_offsets([t], OffsetSpec.for_timestamp(int(ts)))[t]
            out[t] = None if off < 0 else OffsetAndTimestamp(off, found)
        return out

    def delete_records(self, tp: Any, before_offset: int) -> int:
        """Make offsets below ``before_offset`` unreadable; returns the new log start offset."""
        t = _tp(tp)
        start, end = self.offsets(t)
        if before_offset < 0 or before_offset > end:
            raise errors.OffsetOutOfRangeError(t.topic, t.partition, before_offset, start, end)
        ck = CKTopicPartition(t.topic, t.partition, before_offset)
        fut = self.admin.delete_records([ck], request_timeout=self.request_timeout)[ck]
        return int(self.result(fut, t.topic, t.partition, "delete records").low_watermark)

    # ------------------------------------------------------------------ clients
    def producer(self, **config: Any) -> Any:
        """A producer; with ``transactional_id=`` a transactional one (begin/commit/abort,
        see :mod:`logmq.cluster.txn_producer`)."""
        from logmq.cluster.producer import ClusterProducer

        self.check_open()
        if config.get("transactional_id") is not None:
            from logmq.cluster.txn_producer import ClusterTransactionalProducer

            return ClusterTransactionalProducer(self, config.pop("transactional_id"), **config)
        config.pop("transactional_id", None)
        return ClusterProducer(self, **config)

    def consumer(self, *topics: str, **config: Any) -> Any:
        from logmq.cluster.consumer import ClusterConsumer

        self.check_open()
        return ClusterConsumer(self, *topics, **config)

    @property
    def groups(self) -> ClusterGroups:
        """Group listing, offsets and resets through the admin API (the coordinator's role)."""
        self.check_open()
        return self._groups

    # ------------------------------------------------------------------ not on a cluster
    def queue(self, topic: str, group: str = "workers", **config: Any) -> Any:
        """A member of share group ``group`` on ``topic`` (KIP-932, Kafka >= 4.1): the
        embedded queue API on confluent-kafka's ShareConsumer; see
        :mod:`logmq.cluster.queue` for what maps how."""
        try:
            from logmq.cluster.queue import ClusterQueue
        except ImportError as e:  # confluent-kafka before 2.16: no ShareConsumer
            _unsupported("log.queue() (share groups)",
                         f"it needs confluent-kafka >= 2.16 with ShareConsumer ({e})")
        self.check_open()
        self._check_share_groups()
        return ClusterQueue(self, topic, group, **config)

    def _check_share_groups(self) -> None:
        if self._share_ok is None:
            from logmq.cluster.probe import supports_share_groups

            self._share_ok = supports_share_groups(self.bootstrap, self.settings,
                                                   self.request_timeout)
        if not self._share_ok:
            _unsupported("log.queue() (share groups)",
                         f"the cluster at {self.bootstrap} does not offer KIP-932 share "
                         "groups (ShareGroupHeartbeat/ShareFetch; Apache Kafka >= 4.1); use "
                         "a consumer group (log.consumer(group=...))")

    def request(self, *a: Any, **kw: Any) -> NoReturn:
        _unsupported("log.request()", "request-reply rides on logmq's reply router; on a "
                     "cluster, produce the request and read the reply topic with a consumer")

    @property
    def queues(self) -> NoReturn:
        _unsupported("log.queues (the embedded queue engine)",
                     "share groups live on the cluster: use log.queue(topic, group), and "
                     "`logmq queues list --bootstrap` for their depth")

    @property
    def streams(self) -> NoReturn:
        _no_streams()

    def append_to_stream(self, *a: Any, **kw: Any) -> NoReturn:
        _no_streams()

    def read_stream(self, *a: Any, **kw: Any) -> NoReturn:
        _no_streams()

    def subscribe_all(self, *a: Any, **kw: Any) -> NoReturn:
        _no_streams()

    def append_batches(self, *a: Any, **kw: Any) -> NoReturn:
        _unsupported("append_batches() (raw RecordBatch bytes, expected_offset)",
                     "a cluster takes records through a producer: use log.producer().send()")

    def read_batches(self, *a: Any, **kw: Any) -> NoReturn:
        _unsupported("read_batches() (stored batch bytes)", "use log.consumer() and poll()")

    def partition_log(self, *a: Any, **kw: Any) -> NoReturn:
        _unsupported("partition_log()", "partitions live on the cluster's brokers")

    def partition_logs(self) -> NoReturn:
        _unsupported("partition_logs()", "partitions live on the cluster's brokers")

    @property
    def cleaner(self) -> NoReturn:
        _unsupported("retention and compaction runs (logmq compact)",
                     "the cluster's brokers run their own log cleaner; tune it with topic "
                     "configs (cleanup.policy, retention.ms, min.cleanable.dirty.ratio)")

    def metrics(self) -> NoReturn:
        _unsupported("metrics()", "read the cluster's own JMX/Prometheus metrics")


def _kafka_str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _typed(key: str, value: str | None) -> Any:
    """A described config value typed as the embedded log types it (ints stay ints)."""
    d = TOPIC_CONFIGS.get(key)
    if value is None or d is None:
        return value
    try:
        return d.parse(value)
    except (TypeError, ValueError, errors.LogMQError):
        return value
