"""The read-only JSON API and the dashboard files, checked against the embedded API."""

from __future__ import annotations

import json
import logging
import urllib.request

import pytest
from click.testing import CliRunner
from ops_util import get, get_json

import logmq
from logmq.broker.membership import coordinator_for
from logmq.broker.queues.manager import queue_manager
from logmq.cli import cli
from logmq.ops.http import OpsHttpServer


@pytest.fixture
def served(tmp_path):
    """A broker with topics, a committed group and a share group, behind an OpsHttpServer."""
    log = logmq.open(tmp_path / "d", num_partitions=2)
    ops = OpsHttpServer(("127.0.0.1", 0), str(tmp_path / "d")).start()
    ops.attach_broker(log)
    ops.serving(None)
    log.create_topic("orders", partitions=3, config={"retention.ms": 60000})
    log.create_topic("jobs", partitions=1)
    with log.producer() as p:
        for i in range(30):
            p.send("orders", b"o%d" % i, partition=i % 3)
        for i in range(12):
            p.send("jobs", b"j%d" % i)
    c = log.consumer(group="billing")
    c.assign([("orders", p) for p in range(3)])
    c.commit({("orders", 0): 4, ("orders", 1): 10, ("orders", 2): 0})
    q = log.queue("jobs", "workers")
    got = q.receive(5, timeout=5)
    got[0].ack()
    got[1].reject("bad")
    try:
        yield log, ops, ops.hostport
    finally:
        q.close()
        c.close()
        ops.close()
        log.close()


def test_topics_match_describe_topic(served):
    log, _ops, addr = served
    status, topics = get_json(addr, "/api/v1/topics")
    assert status == 200 and [t["name"] for t in topics] == log.list_topics()
    status, t = get_json(addr, "/api/v1/topics/orders")
    desc = log.describe_topic("orders")
    assert [(p["partition"], p["start_offset"], p["end_offset"], p["size_bytes"],
             p["segments"]) for p in t["partitions"]] == \
        [(p.partition, p.start_offset, p.end_offset, p.size_bytes, p.segments)
         for p in desc.partitions]
    assert t["config"] == json.loads(json.dumps(desc.config, default=str))
    assert t["config"]["retention.ms"] == 60000 and t["records_produced"] == 30
    assert get_json(addr, "/api/v1/topics/nope") == (404, {"error": "unknown topic 'nope'"})


def test_groups_match_the_coordinator(served):
    log, _ops, addr = served
    coord = coordinator_for(log)
    status, groups = get_json(addr, "/api/v1/groups")
    assert status == 200
    assert [g["group_id"] for g in groups] == [gid for gid, _, _ in coord.list_groups()]
    status, g = get_json(addr, "/api/v1/groups/billing")
    committed = coord.fetch_offsets("billing", None)
    assert {(o["topic"], o["partition"]): o["committed"] for o in g["offsets"]} == \
        {tp: off for tp, (off, _meta) in committed.items()}
    assert {o["partition"]: o["lag"] for o in g["offsets"]} == {0: 6, 1: 0, 2: 10}
    assert g["lag"] == 16 and g["state"] == coord.describe_group("billing").state
    assert get_json(addr, "/api/v1/groups/nobody")[0] == 404


def test_queues_match_queue_stats(served):
    log, _ops, addr = served
    status, queues = get_json(addr, "/api/v1/queues")
    assert status == 200
    st = queue_manager(log).share_group("jobs", "workers").stats()
    want = dict(st.__dict__)
    age = want.pop("oldest_unacked_age_ms")  # grows between the two reads
    assert len(queues) == 1 and 0 <= queues[0].pop("oldest_unacked_age_ms") <= age
    assert queues == [want]
    assert queues[0]["in_flight"] == 3 and queues[0]["acked"] == 1
    assert queues[0]["dead_lettered"] == 1 and queues[0]["dlq_size"] == 1

    r = CliRunner().invoke(cli, ["queues", "list", "--http", addr])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[1].split()[:5] == ["jobs", "workers", str(st.depth),
                                                     str(st.available), "3"]
    r = CliRunner().invoke(cli, ["queues", "list", "--http", addr, "--json"])
    listed = [json.loads(x) for x in r.output.splitlines()]
    assert [{k: v for k, v in x.items() if k != "oldest_unacked_age_ms"} for x in listed] == \
        queues


def test_overview_config_warnings_and_metrics_dict(served):
    log, ops, addr = served
    logging.getLogger("logmq.test").warning("disk %s is nearly full", "sda")
    status, w = get_json(addr, "/api/v1/warnings")
    assert status == 200 and w[-1]["message"] == "disk sda is nearly full"
    assert w[-1]["level"] == "WARNING" and w[-1]["logger"] == "logmq.test"
    status, cfg = get_json(addr, "/api/v1/config")
    assert cfg["path"] == log.path and cfg["num_partitions"] == 2
    status, o = get_json(addr, "/api/v1/overview")
    assert o["ready"] is True and o["warnings"] >= 1
    assert {t["name"]: t["partitions"] for t in o["topics"]} == {"orders": 3, "jobs": 1,
                                                                 "jobs.dlq": 1}
    status, m = get_json(addr, "/api/v1/metrics")
    embedded = log.metrics()
    for key in ("topics", "groups", "queues"):
        strip = [{k: v for k, v in x.items() if k != "oldest_unacked_age_ms"} for x in m[key]]
        want = [{k: v for k, v in x.items() if k != "oldest_unacked_age_ms"}
                for x in embedded[key]]
        assert strip == want, key


def test_unknown_routes_writes_and_the_dashboard_files(served):
    _log, _ops, addr = served
    assert get(addr, "/nope")[0] == 404
    assert get(addr, "/api/v1/nope")[0] == 404
    assert get(addr, "/static/../http.py")[0] == 404
    assert get(addr, "/static/missing.js")[0] == 404
    req = urllib.request.Request(f"http://{addr}/api/v1/topics", method="POST", data=b"{}")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405
    status, html = get(addr, "/")
    assert status == 200 and b'<script src="/static/app.js">' in html
    status, js = get(addr, "/static/app.js")
    assert status == 200 and b"/api/v1/overview" in js
    assert get(addr, "/static/style.css")[0] == 200


def test_history_is_sampled(tmp_path):
    with logmq.open(tmp_path / "d") as log:
        ops = OpsHttpServer(("127.0.0.1", 0), str(tmp_path), sample_interval=0.05).start()
        try:
            ops.attach_broker(log)
            with log.producer() as p:
                p.send("h", b"x").result()
            from ops_util import wait_for

            addr = ops.hostport
            h = wait_for(lambda: (x := get_json(addr, "/api/v1/history")[1]) and
                         any(s["topics"].get("h", {}).get("records") == 1
                             for s in x["samples"]) and x, 10, "a sample with topic h")
            assert h["interval"] == 0.05
        finally:
            ops.close()


def test_status_and_queues_http_say_when_the_server_is_unreachable():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{s.getsockname()[1]}"
    for args, path in ((["status", "--http", addr], "overview"),
                       (["queues", "list", "--http", addr], "queues")):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 1
        assert r.output.strip().splitlines() == [
            f"Error: cannot reach http://{addr}/api/v1/{path}: [Errno 111] Connection refused"]
