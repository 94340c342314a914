"""/metrics of a real `logmq serve --http` during a produce/consume run, and embedded metrics."""

from __future__ import annotations

import json

from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as CTP
from ops_util import ServerProcess, get, http_address, sample, scrape, wait_for
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import logmq
import logmq.metrics
from logmq.ops.stats import ServerStats


def _consume(c: Consumer, n: int) -> int:
    got = 0

    def more() -> bool:
        nonlocal got
        msg = c.poll(0.5)
        if msg is not None and msg.error() is None:
            got += 1
        return got >= n

    wait_for(more, 60, f"{n} records consumed")
    return got


def test_scrape_during_produce_and_consume_gives_exact_figures(tmp_path):
    with ServerProcess(str(tmp_path / "data"), "--http", "127.0.0.1:0",
                       "--log-format", "json") as srv:
        addr = http_address(srv)
        assert sample(scrape(addr), "logmq_records_produced_total", topic="m") is None

        p = Producer({"bootstrap.servers": srv.bootstrap, "linger.ms": 5})
        for i in range(100):
            p.produce("m", value=b"v%03d" % i, key=b"k")
        assert p.flush(30) == 0
        m = scrape(addr)
        assert sample(m, "logmq_records_produced_total", topic="m") == 100
        assert sample(m, "logmq_partition_end_offset", topic="m", partition="0") == 100
        assert sample(m, "logmq_partition_start_offset", topic="m", partition="0") == 0
        size = sample(m, "logmq_partition_size_bytes", topic="m", partition="0")
        assert size is not None and size > 100 * 4
        assert sample(m, "logmq_bytes_in_total", topic="m") == size  # nothing deleted yet
        produced_ok = sample(m, "logmq_requests_total", api="Produce", error="none")
        assert produced_ok is not None and produced_ok >= 1
        count = sample(m, "logmq_request_duration_seconds_count", api="Produce")
        assert count is not None and count >= produced_ok
        assert sample(m, "logmq_request_duration_seconds_bucket", api="Produce",
                      le="+Inf") == count

        c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "g",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        try:
            c.subscribe(["m"])
            assert _consume(c, 100) == 100
            c.commit(offsets=[CTP("m", 0, 60)], asynchronous=False)
            m = scrape(addr)
            assert sample(m, "logmq_consumer_group_committed_offset", group="g", topic="m",
                          partition="0") == 60
            assert sample(m, "logmq_consumer_group_lag", group="g", topic="m",
                          partition="0") == 40
            assert sample(m, "logmq_consumer_group_members", group="g") == 1
            assert (sample(m, "logmq_connections") or 0) >= 2  # producer + consumer
            out = sample(m, "logmq_bytes_out_total", topic="m")
            assert out is not None and out >= size  # every batch was fetched at least once
            # 10 more records: lag follows the end offset
            for i in range(10):
                p.produce("m", value=b"w%d" % i)
            assert p.flush(30) == 0
            m = scrape(addr)
            assert sample(m, "logmq_records_produced_total", topic="m") == 110
            assert sample(m, "logmq_consumer_group_lag", group="g", topic="m",
                          partition="0") == 50
        finally:
            c.close()
        # the member left: the group is empty, its committed offsets (and lag) remain
        m = wait_for(lambda: (x := scrape(addr)) and
                     sample(x, "logmq_consumer_group_members", group="g") == 0 and x,
                     20, "the member to leave")
        assert sample(m, "logmq_consumer_group_lag", group="g", topic="m", partition="0") == 50
        # no client ids or hosts in labels: cardinality is bounded by topics/groups/apis
        status, body = get(addr, "/metrics")
        for fam in text_string_to_metric_families(body.decode()):
            for s in fam.samples:
                assert set(s.labels) <= {"topic", "partition", "group", "api", "error",
                                         "reason", "le"} or not s.name.startswith("logmq_")
        assert srv.stop() == 0
    for line in srv.lines:  # --log-format json: every line of the server's log parses
        obj = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(obj)


def test_embedded_registry_and_metrics_dict_agree(tmp_path):
    with logmq.open(tmp_path / "d") as log:
        log.create_topic("t", partitions=2)
        with log.producer() as p:
            for i in range(30):
                p.send("t", b"x", partition=i % 2)
        c = log.consumer(group="grp", auto_offset_reset="earliest")
        c.assign([("t", 0), ("t", 1)])
        c.commit({("t", 0): 5, ("t", 1): 15})
        q = log.queue("t", "workers")
        recs = q.receive(4, timeout=5)
        assert len(recs) == 4
        for r in recs[:3]:
            r.ack()

        d = log.metrics()
        json.dumps(d)  # JSON-ready
        t = next(x for x in d["topics"] if x["name"] == "t")
        assert t["records_produced"] == 30
        assert [p["end_offset"] for p in t["partitions"]] == [15, 15]
        g = next(x for x in d["groups"] if x["group_id"] == "grp")
        assert {(o["partition"], o["lag"]) for o in g["offsets"]} == {(0, 10), (1, 0)}
        qs = next(x for x in d["queues"] if (x["topic"], x["group"]) == ("t", "workers"))
        assert qs["depth"] == 27 and qs["in_flight"] == 1 and qs["acked"] == 3

        registry = CollectorRegistry()
        logmq.metrics.register(registry, log)
        text = generate_latest(registry).decode()
        assert 'logmq_records_produced_total{topic="t"} 30.0' in text
        assert 'logmq_consumer_group_lag{group="grp",partition="0",topic="t"} 10.0' in text
        assert 'logmq_queue_depth{group="workers",topic="t"} 27.0' in text
        assert 'logmq_queue_in_flight{group="workers",topic="t"} 1.0' in text
        assert 'logmq_queue_acked_total{group="workers",topic="t"} 3.0' in text
        recs[3].ack()
        q.close()
        c.close()


def test_fsync_histogram_counts_segment_fsyncs(tmp_path):
    with logmq.open(tmp_path / "d") as log:
        before = log.metrics()["storage"]["fsyncs"]  # installs the timer
        log.create_topic("f", config={"fsync": "always"})
        with log.producer(linger_ms=0) as p:
            for _ in range(5):
                p.send("f", b"x").result()
        after = log.metrics()["storage"]
        assert after["fsyncs"] - before >= 5
        assert after["fsync_seconds"] > 0


def test_server_stats_label_errors_and_refusals():
    s = ServerStats()
    s.request(0, 0.001, {"responses": [{"name": "t", "partition_responses": [
        {"index": 0, "error_code": 0}, {"index": 1, "error_code": 87},
        {"index": 2, "error_code": 2}]}]}, False)
    s.request(3, 0.0002, {"error_code": 0}, False)
    s.request(11, 0.002, {"error_code": 25}, False)
    s.request(1, 0.5, None, True)
    assert s.requests == {("Produce", "none"): 1, ("Metadata", "none"): 1,
                          ("JoinGroup", "unknown_member_id"): 1, ("Fetch", "exception"): 1}
    assert s.refused == {"invalid_record": 1, "corrupt_message": 1}
    h = s.durations["Fetch"].as_dict()
    assert h["count"] == 1 and h["buckets"]["0.25"] == 0 and h["buckets"]["0.5"] == 1


def test_per_partition_series_can_be_left_out(tmp_path):
    with logmq.open(tmp_path / "d") as log:
        log.create_topic("wide", partitions=50)
        full, lean = CollectorRegistry(), CollectorRegistry()
        logmq.metrics.register(full, log)
        logmq.metrics.register(lean, log, partitions=False)
        full_text, lean_text = generate_latest(full).decode(), generate_latest(lean).decode()
        assert full_text.count("logmq_partition_end_offset{") == 50
        assert "logmq_partition_end_offset{" not in lean_text
        assert 'logmq_records_produced_total{topic="wide"} 0.0' in lean_text
