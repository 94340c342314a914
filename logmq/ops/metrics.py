"""Prometheus exposition of a data directory's figures (``logmq_*``), read at scrape time.

:class:`BrokerCollector` is a custom prometheus-client collector: nothing is stored in the
registry between scrapes; each scrape reads :mod:`logmq.ops.figures` (offsets, sizes,
committed offsets, share-group counters, cleaner totals) and the few counters of
:mod:`logmq.ops.stats`. So a registry costs no memory per partition while idle and the hot
path keeps running at full speed; the price is paid by the scraper.

Embedded use::

    from prometheus_client import CollectorRegistry, generate_latest
    import logmq, logmq.metrics

    log = logmq.open("data")
    registry = CollectorRegistry()
    logmq.metrics.register(registry, log)
    print(generate_latest(registry).decode())
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from logmq.ops import figures
from logmq.ops.stats import (
    FSYNC,
    Histogram,
    ServerStats,
    install_fsync_observer,
    server_stats_of,
)

if TYPE_CHECKING:
    from logmq.broker.broker import Broker

__all__ = ["BrokerCollector", "register", "metrics_dict"]

metrics_dict = figures.metrics_dict

_CLEANER_COUNTERS = ("partitions_compacted", "segments_deleted", "bytes_deleted",
                     "offsets_deleted", "segments_cleaned", "records_removed",
                     "tombstones_removed", "bytes_cleaned", "segments_resealed")
_QUEUE_GAUGES = (("depth", "records not yet done: available + in flight + scheduled"),
                 ("available", "records that could be delivered now"),
                 ("in_flight", "records acquired by a member, lock held"),
                 ("scheduled", "records waiting for a delivery time or a retry backoff"),
                 ("dlq_size", "records in the dead-letter topic"),
                 ("members", "members of the share group"))
_QUEUE_COUNTERS = (("acked", "records acknowledged since this process opened the group"),
                   ("dead_lettered", "records dead-lettered since this process opened the "
                                     "group"),
                   ("archived", "records expired or filtered out since this process opened "
                                "the group"))


def _histogram(name: str, doc: str, labels: list[str],
               series: list[tuple[list[str], Histogram]]) -> HistogramMetricFamily:
    fam = HistogramMetricFamily(name, doc, labels=labels)
    for values, h in series:
        fam.add_metric(values, buckets=[(le, float(n)) for le, n in h.cumulative()],
                       sum_value=h.total)
    return fam


class BrokerCollector(Collector):
    """Yields every ``logmq_*`` family of one broker (and its Kafka server, if given)."""

    def __init__(self, broker: Broker, server: ServerStats | None = None, *,
                 partitions: bool = True) -> None:
        self.broker = broker
        self.partitions = partitions
        self.server = server if server is not None else server_stats_of(broker)
        install_fsync_observer()

    def describe(self) -> list[Metric]:
        return []  # families depend on what exists at scrape time; skip the dry-run collect

    def collect(self) -> Iterator[Metric]:
        b = self.broker
        if b.closed:
            return
        yield from self._topics(figures.topics(b, configs=False), self.partitions)
        yield from self._groups(figures.groups(b, members=False))
        yield from self._queues(figures.queues(b))
        yield from self._storage(figures.storage(b), figures.cleaner(b))
        if self.server is not None:
            yield from self._server(self.server)

    # ------------------------------------------------------------------ families
    @staticmethod
    def _topics(topics: list[dict[str, Any]], per_partition: bool) -> Iterator[Metric]:
        produced = CounterMetricFamily("logmq_records_produced",
                                       "records (offsets) appended since this process opened "
                                       "the topic", labels=["topic"])
        bin_ = CounterMetricFamily("logmq_bytes_in", "batch bytes appended since open",
                                   labels=["topic"])
        bout = CounterMetricFamily("logmq_bytes_out",
                                   "bytes read from the log since open (fetches, consumers, "
                                   "queues)", labels=["topic"])
        end = GaugeMetricFamily("logmq_partition_end_offset", "log end offset",
                                labels=["topic", "partition"])
        start = GaugeMetricFamily("logmq_partition_start_offset", "log start offset",
                                  labels=["topic", "partition"])
        size = GaugeMetricFamily("logmq_partition_size_bytes", "bytes in the segments",
                                 labels=["topic", "partition"])
        segs = GaugeMetricFamily("logmq_partition_segments", "segment files",
                                 labels=["topic", "partition"])
        for t in topics:
            name = t["name"]
            produced.add_metric([name], t["records_produced"])
            bin_.add_metric([name], t["bytes_in"])
            bout.add_metric([name], t["bytes_out"])
            for p in t["partitions"] if per_partition else ():
                labels = [name, str(p["partition"])]
                end.add_metric(labels, p["end_offset"])
                start.add_metric(labels, p["start_offset"])
                size.add_metric(labels, p["size_bytes"])
                segs.add_metric(labels, p["segments"])
        yield from (produced, bin_, bout, end, start, size, segs)
        yield GaugeMetricFamily("logmq_topics", "topics", value=len(topics))

    @staticmethod
    def _groups(groups: list[dict[str, Any]]) -> Iterator[Metric]:
        lag = GaugeMetricFamily("logmq_consumer_group_lag",
                                "log end offset minus committed offset",
                                labels=["group", "topic", "partition"])
        committed = GaugeMetricFamily("logmq_consumer_group_committed_offset",
                                      "committed offset", labels=["group", "topic", "partition"])
        members = GaugeMetricFamily("logmq_consumer_group_members", "members of the group",
                                    labels=["group"])
        for g in groups:
            members.add_metric([g["group_id"]], g["members"])
            for o in g["offsets"]:
                labels = [g["group_id"], o["topic"], str(o["partition"])]
                lag.add_metric(labels, o["lag"])
                committed.add_metric(labels, o["committed"])
        yield from (lag, committed, members)

    @staticmethod
    def _queues(queues: list[dict[str, Any]]) -> Iterator[Metric]:
        labels = ["topic", "group"]
        gauges = {k: GaugeMetricFamily(f"logmq_queue_{k}", doc, labels=labels)
                  for k, doc in _QUEUE_GAUGES}
        counters = {k: CounterMetricFamily(f"logmq_queue_{k}", doc, labels=labels)
                    for k, doc in _QUEUE_COUNTERS}
        age = GaugeMetricFamily("logmq_queue_oldest_unacked_age_seconds",
                                "age of the oldest record not yet done (0 when none)",
                                labels=labels)
        for q in queues:
            lv = [q["topic"], q["group"]]
            for k, fam in gauges.items():
                fam.add_metric(lv, q[k])
            for k, cfam in counters.items():
                cfam.add_metric(lv, q[k])
            ms = q["oldest_unacked_age_ms"]
            age.add_metric(lv, 0.0 if ms is None else ms / 1000)
        yield from gauges.values()
        yield from counters.values()
        yield age

    @staticmethod
    def _storage(st: dict[str, Any], cl: dict[str, Any]) -> Iterator[Metric]:
        yield GaugeMetricFamily("logmq_partitions", "partitions open", value=st["partitions"])
        yield GaugeMetricFamily("logmq_recovery_truncated_bytes",
                                "bytes cut from damaged or torn tails when this process "
                                "opened the directory", value=st["recovery_bytes_truncated"])
        yield _histogram("logmq_fsync_duration_seconds", "segment data fsyncs (fdatasync)",
                         [], [([], FSYNC)])
        yield CounterMetricFamily("logmq_cleaner_passes", "cleaner passes",
                                  value=cl.get("passes", 0))
        for k in _CLEANER_COUNTERS:
            yield CounterMetricFamily(f"logmq_cleaner_{k}", f"cleaner: {k.replace('_', ' ')}",
                                      value=cl.get(k, 0))

    @staticmethod
    def _server(s: ServerStats) -> Iterator[Metric]:
        yield GaugeMetricFamily("logmq_connections", "open Kafka client connections",
                                value=s.connections)
        yield _histogram("logmq_request_duration_seconds",
                         "Kafka request handling time, decode to response written",
                         ["api"], [([k], h) for k, h in sorted(s.durations.copy().items())])
        req = CounterMetricFamily("logmq_requests", "Kafka requests answered",
                                  labels=["api", "error"])
        for (api, err), n in sorted(s.requests.copy().items()):
            req.add_metric([api, err], n)
        yield req
        ref = CounterMetricFamily("logmq_refused_batches",
                                  "produced batches refused, by Kafka error", labels=["reason"])
        for reason, n in sorted(s.refused.copy().items()):
            ref.add_metric([reason], n)
        yield ref


def register(registry: CollectorRegistry, log: Broker,
             server: ServerStats | None = None, *, partitions: bool = True) -> BrokerCollector:
    """Expose ``log``'s figures on ``registry`` (e.g. ``prometheus_client.REGISTRY``).

    ``partitions=False`` leaves out the four per-partition series (offsets, size, segments):
    with tens of thousands of partitions they are most of a scrape's size and time.
    """
    collector = BrokerCollector(log, server, partitions=partitions)
    registry.register(collector)
    return collector

