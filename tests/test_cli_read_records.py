"""``read_records`` against a cluster: an empty poll is not the end while records are known.

Why: a cluster client's first fetch of a new topic can take longer than one poll (it learns
the leader first); the CLI's ``consume --bootstrap`` ended there and printed nothing on a
loaded CI machine against Apache Kafka. The consumer below is scripted, so the test does not
depend on timing.
"""

from __future__ import annotations

from typing import Any

from logmq.cli.common import read_records
from logmq.types import Record, TopicPartition

TP = TopicPartition("t", 0)


class ScriptedConsumer:
    """Polls answer from a script: ``None`` is an empty poll, a list is records."""

    def __init__(self, script: list[list[Record] | None]) -> None:
        self.script = script
        self.pos = 0
        self.polls = 0

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def position(self, tp: TopicPartition) -> int:
        return self.pos

    def pause(self, tp: TopicPartition) -> None:
        pass

    def poll(self, timeout: float = 0.0, max_records: int | None = None) -> list[Record]:
        self.polls += 1
        step = self.script.pop(0) if self.script else None
        if not step:
            return []
        self.pos = step[-1].offset + 1
        return step


def rec(offset: int) -> Record:
    return Record(topic="t", partition=0, offset=offset, timestamp=0, key=None,
                  value=b"v%d" % offset, headers=[])


def offsets(chunks: Any) -> list[int]:
    return [r.offset for chunk in chunks for r in chunk]


def test_cluster_empty_polls_below_the_stop_are_not_the_end() -> None:
    c = ScriptedConsumer([None, None, None, [rec(0), rec(1)], None, [rec(2)]])
    got = offsets(read_records(c, stop_offsets={TP: 3}, wait=True, poll_timeout=0.0))  # type: ignore[arg-type]
    assert got == [0, 1, 2]


def test_cluster_at_the_stop_ends_without_waiting() -> None:
    c = ScriptedConsumer([[rec(0)]])
    assert offsets(read_records(c, stop_offsets={TP: 1}, wait=True, poll_timeout=0.0)) == [0]  # type: ignore[arg-type]
    assert c.polls == 1


def test_data_dir_empty_poll_is_the_end() -> None:
    """Without ``wait`` (a data directory answers at once) an empty poll ends the read, even
    below the stop: a compacted tail leaves the position below the end offset for good."""
    c = ScriptedConsumer([None, [rec(0)]])
    assert offsets(read_records(c, stop_offsets={TP: 1})) == []  # type: ignore[arg-type]
    assert c.polls == 1
