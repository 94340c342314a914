"""``logmq.connect(target)``: one call for an embedded log or a Kafka cluster.

A path or ``file://`` URL opens a data directory (``logmq.open``); ``kafka://host:port[,...]``
returns a :class:`~logmq.cluster.broker.KafkaBroker` with the embedded Broker's methods on
confluent-kafka, so an app moves to a cluster by changing its target string. The README's
"Scaling out" section has the table of what maps how.

confluent-kafka is imported only for ``kafka://`` targets: embedded users need not install it.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

from logmq.errors import ConfigError

__all__ = ["connect", "is_kafka_target"]


def is_kafka_target(target: str | os.PathLike[str]) -> bool:
    return isinstance(target, str) and target.startswith("kafka://")


def connect(target: str | os.PathLike[str], **config: Any) -> Any:
    """Open ``target``: a data directory (path or ``file://``) or a ``kafka://`` cluster.

    For a cluster, ``config`` holds connection settings (``security_protocol``,
    ``sasl_mechanism``, ``sasl_username``, ``sasl_password``, ``ssl_cafile``, ... or
    librdkafka's dotted names) and ``request_timeout`` (seconds, default 30); settings in the
    URL's query string come first, keyword arguments override them. For a directory,
    ``config`` is what ``logmq.open`` takes.
    """
    if is_kafka_target(target):
        assert isinstance(target, str)
        try:
            from logmq.cluster.broker import KafkaBroker
        except ImportError as e:  # pragma: no cover - confluent-kafka is a test dependency
            raise ConfigError(f"kafka:// targets need confluent-kafka: pip install "
                              f"'logmq[cluster]' ({e})") from None
        from logmq.cluster.common import parse_kafka_url

        bootstrap, settings = parse_kafka_url(target)
        settings.update(config)
        timeout = float(settings.pop("request_timeout", 30.0))
        return KafkaBroker(bootstrap, settings, request_timeout=timeout, target=target)
    path: str | os.PathLike[str] = target
    if isinstance(target, str) and "://" in target:
        parts = urlsplit(target)
        if parts.scheme != "file":
            raise ConfigError(f"unknown target scheme {parts.scheme!r} in {target!r} "
                              "(use a path, file:// or kafka://)")
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"file:// URL must be local: {target!r}")
        path = unquote(parts.path)
    from logmq.broker.broker import open_log

    return open_log(path, **config)
