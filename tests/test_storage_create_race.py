"""A topic is published only once all its partitions are open.

Readers look partitions up without the manager's lock, so a topic visible with N partitions
must have all N open: the wire fuzz met DescribeShareGroupOffsets failing with "partition 0
does not exist in topic 'fz' (topic has 1)" while a CreateTopics of that name was opening it.
"""

from __future__ import annotations

import threading
import time

import logmq
from logmq.errors import InvalidPartitionError, UnknownTopicError


def test_readers_never_see_a_topic_before_its_partitions(tmp_path):
    names = [f"t{i}" for i in range(4)]
    seen: list[str] = []
    bad: list[BaseException] = []
    done = threading.Event()
    with logmq.open(str(tmp_path / "d")) as log:
        def reader() -> None:
            while not done.is_set():
                for name in names:
                    try:
                        n = log.partitions_for(name)
                        for p in range(n):
                            log.partition_log(name, p)
                        seen.append(name)
                    except UnknownTopicError:
                        continue
                    except InvalidPartitionError as e:
                        bad.append(e)
                        return
                time.sleep(0)  # let the creating thread run (the GIL)

        t = threading.Thread(target=reader)
        t.start()
        try:
            for name in names:
                log.create_topic(name, partitions=16)
            log.create_partitions(names[0], 32)
        finally:
            done.set()
            t.join(30)
    assert not bad, bad[0]
    assert seen  # the reader did look while topics were being created
