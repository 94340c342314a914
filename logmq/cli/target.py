"""Where a command's log is: a data directory, or any Kafka-protocol cluster.

``--bootstrap HOST:PORT[,HOST:PORT]`` (env ``LOGMQ_BOOTSTRAP``), ``--bootstrap kafka://...``
or ``--data kafka://...`` run a command against a cluster through ``logmq.connect``: Apache
Kafka, Redpanda, a managed service, or ``logmq serve``; connection settings ride in the URL's
query string (``kafka://h:9093?security_protocol=SASL_SSL&sasl_mechanism=SCRAM-SHA-512&...``)
or, for secrets that should stay out of shell history, in a properties file given with
``--kafka-config FILE`` (env ``LOGMQ_KAFKA_CONFIG``), as Kafka's tools take
``--command-config``.
Without confluent-kafka installed the commands fall back to :class:`~logmq.cli.remote.RemoteLog`
(logmq's own wire client: enough for ``logmq serve``, without groups or config changes).

The few places where commands used data-directory-only calls go through helpers here
(:func:`check_partition`, :class:`ClusterSink`), so each command keeps one code path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from logmq.errors import InvalidPartitionError

__all__ = ["cluster_url", "is_cluster", "open_cluster", "check_partition", "ClusterSink",
           "read_properties", "REQUEST_TIMEOUT_S"]

#: seconds each admin call waits for a cluster (env LOGMQ_REQUEST_TIMEOUT overrides)
REQUEST_TIMEOUT_S = 30.0


def cluster_url(spec: str) -> str:
    """``host:port[,...]`` or a ``kafka://`` URL, as a ``kafka://`` URL."""
    return spec if spec.startswith("kafka://") else f"kafka://{spec}"


def is_cluster(log: Any) -> bool:
    """True for a cluster connection (KafkaBroker or RemoteLog), False for a data directory."""
    from logmq.broker.broker import Broker

    return not isinstance(log, Broker)


def _have_confluent() -> bool:
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return False
    return True


class SettingsError(click.ClickException):
    """A bad ``--kafka-config`` file: one line, exit code 2 (as common.SettingsError)."""

    exit_code = 2


def read_properties(path: str) -> dict[str, str]:
    """``key=value`` (or ``key: value``) lines of a client properties file, as Kafka's tools
    read ``--command-config``; ``#``/``!`` lines are comments."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise SettingsError(f"cannot read {path}: {e}") from None
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if cut < 0:
            raise SettingsError(f"{path}:{n}: expected key=value, got {raw!r}")
        out[line[:cut].strip()] = line[cut + 1:].strip()
    return out


@contextmanager
def open_cluster(spec: str, config_file: str | None = None) -> Iterator[Any]:
    """The cluster behind ``spec`` for one command, closed afterwards; ``config_file``
    (``--kafka-config``) adds client settings, which the URL's query string overrides."""
    url = cluster_url(spec)
    settings = read_properties(config_file) if config_file else {}
    if not _have_confluent():  # pragma: no cover - CI installs confluent-kafka
        from logmq.cli.remote import RemoteLog
        from logmq.cluster.common import parse_kafka_url

        remote = RemoteLog(parse_kafka_url(url)[0].split(",")[0])
        try:
            yield remote
        finally:
            remote.close()
        return
    import logmq
    from logmq.cluster.common import parse_kafka_url

    timeout = float(settings.pop("request_timeout", os.environ.get("LOGMQ_REQUEST_TIMEOUT",
                                                                   REQUEST_TIMEOUT_S)))
    settings.update(parse_kafka_url(url)[1])  # the URL's own settings win
    log = logmq.connect(url, request_timeout=timeout, **settings)
    try:
        yield log
    finally:
        log.close()


def check_partition(log: Any, topic: str, partition: int) -> None:
    """InvalidPartitionError (or UnknownTopicError) unless ``topic`` has ``partition``."""
    n = log.partitions_for(topic)
    if not 0 <= partition < n:
        raise InvalidPartitionError(topic, partition, n)


class ClusterSink:
    """Writes re-encoded records to a cluster through a producer, timestamps and partitions
    kept: what ``append_batches`` does on a data directory (``replay --to``)."""

    def __init__(self, log: Any) -> None:
        self._producer = log.producer(linger_ms=5)  # acks=all
        self._futures: list[Any] = []

    @staticmethod
    def wanted(log: Any) -> bool:
        """A sink is needed where raw batches cannot be appended (a KafkaBroker)."""
        try:
            from logmq.cluster.broker import KafkaBroker
        except ImportError:  # pragma: no cover - no confluent-kafka: RemoteLog appends
            return False
        return isinstance(log, KafkaBroker)

    def send(self, topic: str, partition: int, records: Sequence[tuple[Any, ...]],
             timestamps: Sequence[int]) -> None:
        for rec, ts in zip(records, timestamps, strict=True):
            key, value = rec[0], rec[1]
            headers = rec[2] if len(rec) > 2 else None
            self._futures.append(self._producer.send(topic, value, key=key, headers=headers,
                                                     partition=partition, timestamp=ts))
        if len(self._futures) >= 10_000:
            self.flush()

    def flush(self) -> None:
        self._producer.flush()
        futs, self._futures = self._futures, []
        for f in futs:
            f.result(REQUEST_TIMEOUT_S)  # raises the first failure, typed

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._producer.close()
