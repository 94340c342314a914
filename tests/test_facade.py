"""The facade wires the services; deleting a topic reaches them through storage's listeners."""

from __future__ import annotations

import logmq
from logmq.storage.manager import LogManager


def test_facade_owns_a_storage_manager_and_no_string_registry(tmp_path):
    with logmq.open(tmp_path, cleaner=False) as log:
        assert isinstance(log.logs, LogManager)
        assert not hasattr(log, "extension")
        assert log.queues is log.queues and log.groups is log.groups  # one each, on first use


def _commit(log, topic: str) -> None:
    c = log.consumer(group="g", auto_offset_reset="earliest", enable_auto_commit=False)
    c.subscribe([topic])
    got = []
    for _ in range(50):
        got += c.poll(timeout=0.2)
        if got:
            break
    assert got
    c.commit()
    c.close()


def test_deleting_a_topic_drops_offsets_and_queue_state_whether_or_not_services_run(tmp_path):
    path = tmp_path / "d"
    with logmq.open(path, cleaner=False) as log:
        log.create_topic("t")
        log.producer().send("t", b"a").result()
        _commit(log, "t")
        q = log.queue("t", group="w")
        q.receive(1, timeout=5)[0].ack()
        q.close()
    # reopened: neither the coordinator nor the queue engine has started when the topic goes
    with logmq.open(path, cleaner=False) as log:
        log.delete_topic("t")
        log.create_topic("t")
        log.producer().send("t", b"b").result()
        assert log.groups.fetch_offsets("g", None) == {}
        (r,) = log.queue("t", group="w").receive(1, timeout=5)
        assert r.value == b"b" and r.offset == 0  # no stale share-group position
    # and with both running
    with logmq.open(path, cleaner=False) as log:
        _commit(log, "t")
        assert log.groups.fetch_offsets("g", None)
        assert log.queues.groups_of("t") == ["w"]
        log.delete_topic("t")
        assert log.groups.fetch_offsets("g", None) == {}
        assert log.queues.groups_of("t") == []
