"""logmq: an embedded, crash-safe, Kafka-style partitioned log."""

__version__ = "0.1.0"
