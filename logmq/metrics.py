"""``logmq.metrics.register(registry, log)``: a data directory's figures on your registry.

A thin re-export of :mod:`logmq.ops.metrics`, so applications that embed logmq find it at
the short name (and need prometheus-client only when they import it).
"""

from logmq.ops.metrics import BrokerCollector, metrics_dict, register

__all__ = ["register", "BrokerCollector", "metrics_dict"]
