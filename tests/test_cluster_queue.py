"""``log.queue()`` on ``kafka://``: what is decided before any share group exists.

The share-group behaviour itself (ack/nack/reject, redelivery, Kafka's DLQ) runs against
Apache Kafka 4.4 in tests/oracle/test_cluster_queue.py. Here: a cluster without KIP-932 gets
a typed error at once (not a share consumer retrying forever), and the probe reads
ApiVersions as a broker sends it.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import logmq
from logmq.cluster.probe import SHARE_APIS, api_versions, supports_share_groups
from logmq.cluster.queue import dlq_topic_for
from logmq.errors import KafkaTimeoutError, UnsupportedOnClusterError
from logmq.testing import LogMQServer


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogMQServer]:
    server = LogMQServer(tmp_path_factory.mktemp("served"), auto_create_topics=False).start()
    try:
        yield server
    finally:
        server.stop()


def test_probe_reads_what_logmq_serve_advertises(served: LogMQServer) -> None:
    host, port = served.bootstrap.rsplit(":", 1)
    apis = api_versions(host, int(port), 5.0)
    assert apis[18][0] == 0 and apis[0][1] >= 3  # ApiVersions v0, Produce v3+
    assert all(k in apis for k in SHARE_APIS)  # logmq serve speaks KIP-932 (server/share.py)
    assert supports_share_groups(served.bootstrap, {}, 5.0)


def test_queue_on_logmq_serve_through_kafkas_share_protocol(served: LogMQServer) -> None:
    """The cluster queue (confluent-kafka's ShareConsumer) against logmq's own KIP-932
    endpoint: the same round trip the oracle runs on Kafka."""
    with logmq.connect(f"kafka://{served.bootstrap}") as log:
        t = f"q-{uuid.uuid4().hex[:8]}"
        log.create_topic(t, 1)
        with log.producer() as p:
            p.send(t, b"job").result(10)
        q = log.queue(t, f"g-{t}")
        try:
            got: list[Any] = []
            deadline = time.monotonic() + 30
            while len(got) < 2 and time.monotonic() < deadline:
                for r in q.receive(1, timeout=0.5):
                    got.append((r.value, r.delivery_count))
                    r.nack() if r.delivery_count == 1 else r.ack()
            assert got == [(b"job", 1), (b"job", 2)]
        finally:
            q.close()


def _fake_broker(apis: list[int]) -> tuple[str, threading.Thread]:
    """A socket answering one ApiVersions v0 with exactly ``apis``."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def answer() -> None:
        conn, _ = srv.accept()
        with conn, srv:
            (size,) = struct.unpack(">i", conn.recv(4))
            req = b""
            while len(req) < size:
                req += conn.recv(size - len(req))
            corr = struct.unpack_from(">i", req, 4)[0]
            body = struct.pack(">ihi", corr, 0, len(apis)) + b"".join(
                struct.pack(">hhh", k, 0, 1) for k in apis)
            conn.sendall(struct.pack(">i", len(body)) + body)

    th = threading.Thread(target=answer, daemon=True)
    th.start()
    return f"127.0.0.1:{srv.getsockname()[1]}", th


@pytest.mark.parametrize("apis,expected", [([0, 1, 18, 76, 77, 78, 79], True),
                                            ([0, 1, 18, 76], False)])
def test_probe_needs_every_share_api(apis: list[int], expected: bool) -> None:
    bootstrap, th = _fake_broker(apis)
    assert supports_share_groups(bootstrap, {}, 5.0) is expected
    th.join(5)


def test_probe_of_a_dead_cluster_is_bounded_and_typed() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(KafkaTimeoutError, match="ApiVersions"):
        supports_share_groups(f"127.0.0.1:{port}", {}, 1.0)
    assert supports_share_groups(f"127.0.0.1:{port}", {"security_protocol": "SASL_SSL"}, 1.0)


def test_dead_letter_topic_names_follow_kafkas_prefix() -> None:
    assert dlq_topic_for("jobs", None) == "dlq.jobs"
    assert dlq_topic_for("jobs", "dlq.custom") == "dlq.custom"
    assert dlq_topic_for("jobs", "") is None


def test_share_group_admin_speaks_plain_text_only_and_sums_lag() -> None:
    from logmq.cluster.sharegroups import ShareGroupAdmin, ShareGroupOffsets

    with pytest.raises(UnsupportedOnClusterError, match="kafka-share-groups"):
        ShareGroupAdmin("h:9093", {"security_protocol": "SASL_SSL"}, 1.0)
    offs = ShareGroupOffsets("g", "Stable", {"a": {0: (5, 3), 1: (0, -1)}, "b": {0: (0, 4)}})
    assert (offs.depth(), offs.depth("a"), offs.depth("c")) == (7, 3, 0)
