"""A topic cannot be created again while its deletion's listeners still run.

The listeners (the queue engine's share-state cleanup) run after the storage lock is
released, to keep the lock order deadlock-free; a topic re-created in that gap would have its
new share state cleared by the late listener. So the name is refused until they are done.
"""

from __future__ import annotations

import threading

import pytest

import logmq
from logmq.errors import TopicExistsError, UnknownTopicError


def test_the_name_is_refused_until_the_deletion_listeners_finish(tmp_path):
    entered, go = threading.Event(), threading.Event()
    with logmq.open(str(tmp_path)) as log:
        log.create_topic("t", partitions=1)

        def slow_listener(name: str) -> None:
            if name == "t":
                entered.set()
                assert go.wait(30)

        log.add_topic_listener(slow_listener)
        deleter = threading.Thread(target=log.delete_topic, args=("t",))
        deleter.start()
        assert entered.wait(30)
        with pytest.raises(TopicExistsError, match="being deleted"):
            log.create_topic("t", partitions=1)
        with pytest.raises(UnknownTopicError, match="being deleted"):
            log.ensure_topic("t")  # what auto-create does: a retriable error
        assert "t" not in log.list_topics()
        go.set()
        deleter.join(30)
        assert not deleter.is_alive()
        log.create_topic("t", partitions=2)
        assert log.partitions_for("t") == 2


def test_queue_state_of_the_new_topic_survives_the_old_ones_cleanup(tmp_path):
    with logmq.open(str(tmp_path)) as log:
        log.create_topic("jobs", partitions=1)
        with log.producer() as p:
            p.send("jobs", b"old", partition=0)
        q = log.queue("jobs", group="g")
        q.ack(*q.receive(1, timeout=1))
        q.close()
        log.delete_topic("jobs")
        log.create_topic("jobs", partitions=1)
        with log.producer() as p:
            p.send("jobs", b"new", partition=0)
        q = log.queue("jobs", group="g")
        assert [r.value for r in q.receive(5, timeout=0.5)] == [b"new"]
        q.close()
