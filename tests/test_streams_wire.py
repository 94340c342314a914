"""Stream topics over the Kafka wire: a Kafka client sees the versions as record headers, and
records it produces join the streams (the index catches up on them after the server ran)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_util import ServerProcess  # noqa: E402

import logmq  # noqa: E402
from logmq.client import WireClient  # noqa: E402
from logmq.streams import VERSION_HEADER  # noqa: E402


def test_kafka_client_sees_versions_and_its_records_join_the_stream(tmp_path):
    data = str(tmp_path / "d")
    with logmq.open(data) as log:
        log.create_topic("acc", partitions=1)
        log.append_to_stream("acc", "a", [b"e0", b"e1"], expected_version="no_stream")
        log.read_stream("acc", "a")  # the index exists and is up to date before the server
    with ServerProcess(data) as s, WireClient(s.bootstrap) as c:
        recs, hw = c.fetch("acc", 0, 0)
        assert hw == 2
        assert [(r[2], r[3], dict(r[4])[VERSION_HEADER]) for r in recs] == [
            (b"a", b"e0", b"0"), (b"a", b"e1", b"1")]
        c.produce("acc", 0, [(b"a", b"from-kafka"), (b"b", b"other")])
        s.stop()
    with logmq.open(data) as log:
        evs = log.read_stream("acc", "a")
        assert [(e.version, e.value) for e in evs] == [(0, b"e0"), (1, b"e1"),
                                                       (2, b"from-kafka")]
        assert log.append_to_stream("acc", "a", [b"e3"], expected_version=2).version == 3
        assert [e.value for e in log.read_stream("acc", "b")] == [b"other"]
