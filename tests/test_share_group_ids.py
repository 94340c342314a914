"""Share-group ids the engine cannot hold, and a start-offset reset over acknowledged records.

The fuzzer found DescribeShareGroupOffsets answering an unhandled ConfigError (an ERROR log
and a dropped connection) once AlterShareGroupOffsets had registered an empty group id; and
a reset left the old in-flight ranges behind, so records acknowledged before the reset were
skipped after it and the others kept their delivery counts.
"""

from __future__ import annotations

import logging
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wire_util import RawClient  # noqa: E402

from logmq.broker.queues.offsets import reset_start_offsets  # noqa: E402
from logmq.errors import ConfigError  # noqa: E402
from logmq.testing.server import LogMQServer  # noqa: E402

INVALID_GROUP_ID = 24


@pytest.fixture
def env(tmp_path):
    srv = LogMQServer(str(tmp_path)).start()
    srv.create_topic("jobs", partitions=1)
    for i in range(10):
        srv.broker.producer().send("jobs", b"v%d" % i, partition=0).result()
    c = RawClient(srv.host, srv.port)
    yield srv, c
    c.close()
    srv.stop()


def _codes(c: RawClient, gid: str) -> dict[str, int]:
    part0 = [{"partition_index": 0, "start_offset": 0}]
    return {
        "heartbeat": c.call(76, 1, {"group_id": gid, "member_id": "m1", "member_epoch": 0,
                                    "rack_id": None,
                                    "subscribed_topic_names": ["jobs"]})["error_code"],
        "alter": c.call(91, 0, {"group_id": gid, "topics": [
            {"topic_name": "jobs", "partitions": part0}]})["error_code"],
        "describe_offsets": c.call(90, 0, {"groups": [
            {"group_id": gid, "topics": None}]})["groups"][0]["error_code"],
        "describe_offsets_topics": c.call(90, 0, {"groups": [
            {"group_id": gid, "topics": [{"topic_name": "jobs", "partitions": [0]}]}]}
        )["groups"][0]["error_code"],
        "delete_offsets": c.call(92, 0, {"group_id": gid, "topics": [
            {"topic_name": "jobs"}]})["error_code"],
        "describe": c.call(77, 1, {"group_ids": [gid], "include_authorized_operations": False}
                           )["groups"][0]["error_code"],
    }


@pytest.mark.parametrize("gid", ["", "a\x00b", "\x00", "n" * 201, "n" * 1000])
def test_a_group_id_the_engine_cannot_hold_is_invalid_group_id(env, gid, caplog):
    srv, c = env
    with caplog.at_level(logging.ERROR):
        codes = _codes(c, gid)
        again = _codes(c, gid)  # after a first round (the fuzzer's order) too
    assert codes == again == dict.fromkeys(codes, INVALID_GROUP_ID)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert c.call(18, 0, {})["error_code"] == 0  # the connection still serves
    assert srv.broker.queues.groups_of("jobs") == []  # nothing registered
    with pytest.raises(ConfigError):
        srv.broker.queues.store.register("jobs", gid)


def test_a_reset_delivers_records_afresh_over_acknowledged_ones(env):
    srv, c = env
    q = srv.broker.queue("jobs", group="g")
    got = q.receive(10, timeout=5)
    assert [r.offset for r in got] == list(range(10))
    q.ack(*got[5:])  # out of order: 5..9 are done above the start offset 0
    q.close()
    r = c.call(91, 0, {"group_id": "g", "topics": [{"topic_name": "jobs", "partitions": [
        {"partition_index": 0, "start_offset": 0}]}]})
    assert r["error_code"] == 0 and r["responses"][0]["partitions"][0]["error_code"] == 0
    q = srv.broker.queue("jobs", group="g")
    again = q.receive(10, timeout=5)
    assert [(r.offset, r.delivery_count) for r in again] == [(o, 1) for o in range(10)]
    q.close()


def test_a_reset_after_a_restart_forgets_the_old_ranges(tmp_path):
    import logmq

    with logmq.open(str(tmp_path)) as log:
        log.create_topic("jobs", partitions=1)
        with log.producer() as p:
            for i in range(6):
                p.send("jobs", b"v%d" % i, partition=0)
        q = log.queue("jobs", group="g")
        got = q.receive(6, timeout=1)
        q.ack(got[1], got[3])
        q.close()
    with logmq.open(str(tmp_path)) as log:  # the ranges now come from LMDB
        assert reset_start_offsets(log.queues, "jobs", "g", {0: 2}) == {0: 2}
        q = log.queue("jobs", group="g")
        again = q.receive(6, timeout=0.5)
        assert [(r.offset, r.delivery_count) for r in again] == [(o, 1) for o in range(2, 6)]
        q.close()
