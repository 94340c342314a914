"""OffsetCommit waits for an LMDB commit (and its fsync); it must not stall other clients.

The commit is made to block here until released: another connection's ApiVersions must be
answered meanwhile, which it cannot be if the handler runs on the event loop.
"""

from __future__ import annotations

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wire_util import RawClient  # noqa: E402

from logmq.testing.server import LogMQServer  # noqa: E402


def test_a_slow_offset_commit_does_not_stall_other_clients(tmp_path):
    srv = LogMQServer(str(tmp_path)).start()
    try:
        srv.create_topic("t", partitions=1)
        store = srv.broker.groups.offsets
        real = store.commit
        entered, go = threading.Event(), threading.Event()

        def slow_commit(group_id, offsets):
            entered.set()
            assert go.wait(30)
            real(group_id, offsets)

        store.commit = slow_commit
        c1, c2 = RawClient(srv.host, srv.port, timeout=30), RawClient(srv.host, srv.port, 5)
        out: dict = {}

        def commit() -> None:
            out["r"] = c1.call(8, 2, {"group_id": "g", "generation_id_or_member_epoch": -1,
                                      "member_id": "", "retention_time_ms": -1, "topics": [
                                          {"name": "t", "partitions": [
                                              {"partition_index": 0, "committed_offset": 7,
                                               "committed_metadata": None}]}]})

        t = threading.Thread(target=commit)
        t.start()
        assert entered.wait(30)
        try:
            assert c2.call(18, 0, {})["error_code"] == 0  # served while the commit waits
        finally:
            go.set()
            t.join(30)
        assert out["r"]["topics"][0]["partitions"][0]["error_code"] == 0
        fetched = c2.call(9, 2, {"group_id": "g", "topics": [
            {"name": "t", "partition_indexes": [0]}]})
        assert fetched["topics"][0]["partitions"][0]["committed_offset"] == 7
        c1.close()
        c2.close()
    finally:
        srv.stop()
