"""KIP-932 share groups over the wire: confluent-kafka's ShareConsumer against logmq serve,
in implicit and explicit acknowledgement modes, and mixed with embedded ``log.queue`` members.

The scenarios live in tests/share_scenarios.py so the oracle suite runs the very same ones
against Apache Kafka 4.4.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import share_scenarios as S  # noqa: E402

from logmq.testing.server import LogMQServer  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LogMQServer(str(tmp_path_factory.mktemp("share"))).start()
    yield srv
    srv.stop()


def _group_stats(server, topic, group):
    return server.broker.queues.share_group(topic, group).stats()


def test_implicit_mode_accepts_every_record_once(server):
    r = S.accept_implicit(server.bootstrap)
    assert r["values"] == sorted(b"a%d" % i for i in range(20))
    assert r["counts"] == [1]
    assert r["second"] == [b"after"]  # the accepted ones are done for the group


def test_release_redelivers_with_a_higher_delivery_count(server):
    r = S.release_redelivers(server.bootstrap)
    assert [(v, c) for v, _o, c in r["seen"]] == [(b"r0", 1), (b"r0", 2)]
    assert r["seen"][0][1] == r["seen"][1][1]  # the same offset
    assert r["tail"] == [b"marker"]


def test_reject_is_dead_lettered_and_not_redelivered(server):
    r = S.reject_not_redelivered(server.bootstrap)
    assert r["first"] == [b"bad", b"x0", b"x2"]
    assert r["tail"] == [b"marker"]
    dlq = server.broker.partition_log(r["topic"] + ".dlq", 0)
    assert dlq.next_offset == 1  # the rejected record was copied, as log.queue does


def test_lock_expiry_redelivers_to_another_member_only_after_the_lock(server):
    r = S.lock_expiry(server.bootstrap)
    assert r["a"] == [(b"slow", 1)]
    assert r["b"] == [(b"slow", 2)]
    assert r["b_waited_for_lock"]


def test_two_consumers_never_get_the_same_record(server):
    r = S.two_consumers(server.bootstrap)
    assert r == {"total": 200, "distinct": 200, "complete": True}


def test_wire_and_embedded_members_share_one_group(server):
    topic, group = S.new_group(server.bootstrap, partitions=2)
    n = 300
    S.produce(server.bootstrap, topic, [b"w%03d" % i for i in range(n)])
    q = server.broker.queue(topic, group=group, lock_ms=30_000)
    c = S.consumer(server.bootstrap, group, topic)
    wire: list[bytes] = []
    embedded: list[bytes] = []
    end = time.monotonic() + S.DEADLINE
    try:
        while len(wire) + len(embedded) < n and time.monotonic() < end:
            recs = q.receive(20, timeout=0.05)  # the embedded member takes small bites
            embedded.extend(r.value for r in recs)
            q.ack(*recs)
            wire.extend(m.value() for m in c.poll(0.1) if m.error() is None)
        c.commit_sync(S.DEADLINE)  # implicit mode accepts the last poll's records here
    finally:
        c.close()
        q.close()
    assert embedded and wire
    allv = wire + embedded
    assert len(allv) == len(set(allv)) == n
    stats = _group_stats(server, topic, group)
    assert stats.acked == n and stats.depth == 0


def test_embedded_release_is_redelivered_to_a_wire_member(server):
    topic, group = S.new_group(server.bootstrap)
    S.produce(server.bootstrap, topic, [b"hand-over"])
    q = server.broker.queue(topic, group=group)
    [rec] = q.receive(1, timeout=10)
    c = S.consumer(server.bootstrap, group, topic)
    try:
        rec.nack(delay=0)  # given back: the wire member, waiting in ShareFetch, gets it
        got = S.poll_until(c, 1)
    finally:
        c.close()
        q.close()
    assert [(m.value(), m.delivery_count()) for m in got] == [(b"hand-over", 2)]


def test_delivery_limit_archives_to_the_dead_letter_topic(server):
    topic, group = S.new_group(server.bootstrap, **{"share.delivery.count.limit": "2"})
    S.produce(server.bootstrap, topic, [b"poison", b"next"])
    from confluent_kafka import AcknowledgeType

    c = S.consumer(server.bootstrap, group, topic, explicit=True)
    counts = []
    try:
        end = time.monotonic() + S.DEADLINE
        while time.monotonic() < end:
            msgs = [m for m in c.poll(0.5) if m.error() is None]
            for m in msgs:
                if m.value() == b"poison":
                    counts.append(m.delivery_count())
                    c.acknowledge(m, AcknowledgeType.RELEASE)
                else:
                    c.acknowledge(m)
            if msgs:
                c.commit_sync(S.DEADLINE)
            stats = _group_stats(server, topic, group)
            if stats.depth == 0:
                break
    finally:
        c.close()
    assert counts == [1, 2]
    assert server.broker.partition_log(topic + ".dlq", 0).next_offset == 1


def test_thousands_of_records_over_four_partitions_each_once(server):
    # acknowledgements for a partition with no new records come back as an empty record set
    # (ShareFetch v1 records are not nullable: librdkafka dropped such responses whole)
    topic, group = S.new_group(server.bootstrap, partitions=4)
    n = 3000
    S.produce(server.bootstrap, topic, [b"n%04d" % i for i in range(n)])
    c = S.consumer(server.bootstrap, group, topic)
    try:
        got = S.poll_until(c, n)
        c.commit_sync(S.DEADLINE)
    finally:
        c.close()
    values = [m.value() for m in got]
    assert len(values) == len(set(values)) == n
    assert _group_stats(server, topic, group).acked == n


def test_acknowledged_records_stay_done_across_a_restart(tmp_path):
    srv = LogMQServer(str(tmp_path)).start()
    try:
        topic, group = S.new_group(srv.bootstrap)
        S.produce(srv.bootstrap, topic, [b"d0", b"d1", b"d2"])
        c = S.consumer(srv.bootstrap, group, topic, explicit=True)
        got = S.poll_until(c, 3)
        from confluent_kafka import AcknowledgeType

        for m in got:  # d1 is released with its delivery counted; the others are accepted
            c.acknowledge(m, AcknowledgeType.RELEASE if m.value() == b"d1" else
                          AcknowledgeType.ACCEPT)
        c.commit_sync(S.DEADLINE)
        c.close()
        srv.restart()
        S.produce(srv.bootstrap, topic, [b"d3"])
        c = S.consumer(srv.bootstrap, group, topic)
        after = S.poll_until(c, 2)
        c.commit_sync(S.DEADLINE)
        c.close()
    finally:
        srv.stop()
    assert sorted((m.value(), m.delivery_count()) for m in after) == [(b"d1", 2), (b"d3", 1)]
