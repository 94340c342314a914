"""Operating logmq: metrics, health checks, the HTTP admin API and dashboard, log format.

Nothing in here is on the Kafka path except :class:`~logmq.ops.stats.ServerStats`, a few
counters per request. Figures are read from the broker when asked (:mod:`logmq.ops.figures`).
"""

from logmq.ops.stats import ServerStats

__all__ = ["ServerStats"]
