"""Test helpers: a real logmq (embedded or Kafka endpoint) inside the test process.

Installing logmq registers :mod:`logmq.testing.pytest_plugin` with pytest (``pytest11`` entry
point), which provides the ``logmq_log``, ``logmq_server``, ``kafka_bootstrap`` and
``kafka_topic`` fixtures. Outside pytest, :class:`LogMQServer` is a context manager.
"""

from logmq.testing.server import LogMQServer, unique_topic_name

__all__ = ["LogMQServer", "unique_topic_name"]
