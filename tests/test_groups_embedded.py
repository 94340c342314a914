"""Consumer groups with embedded consumers in threads and processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

import logmq
from logmq.errors import NoOffsetError
from logmq.types import TopicPartition

FAST = {"session_timeout_ms": 1500, "heartbeat_interval_ms": 50, "rebalance_timeout_ms": 3000}


def fill(log, topic: str, n: int, partitions: int) -> None:
    log.create_topic(topic, partitions=partitions)
    p = log.producer()
    p.send_batch(topic, [(b"k%d" % i, b"%d" % i) for i in range(n)])


def test_pub_sub_each_group_gets_everything(log):
    fill(log, "t", 300, 3)
    for group in ("g1", "g2"):
        c = log.consumer("t", group=group, auto_offset_reset="earliest", **FAST)
        got = []
        while len(got) < 300:
            batch = c.poll(timeout=5)
            assert batch
            got.extend(batch)
        assert sorted(int(r.value) for r in got) == list(range(300))
        c.close()


def test_members_share_partitions_and_commits_resume(log):
    fill(log, "t", 600, 6)
    consumers = [log.consumer(group="g", auto_offset_reset="earliest", **FAST) for _ in range(3)]
    for c in consumers:
        c.subscribe(["t"])
    seen: list[list] = [[] for _ in consumers]
    stop = threading.Event()
    errors = []
    progress = threading.Condition()

    def run(i: int) -> None:
        try:
            while not stop.is_set():
                got = consumers[i].poll(timeout=0.2)
                consumers[i].commit()
                with progress:
                    seen[i].extend(got)
                    progress.notify_all()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
            with progress:
                progress.notify_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    with progress:  # wait on the data, not the clock
        assert progress.wait_for(lambda: sum(map(len, seen)) >= 600 or errors, timeout=60)
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assignments = [c.assignment() for c in consumers]
    owned = [tp for a in assignments for tp in a]
    assert sorted(owned) == sorted(TopicPartition("t", p) for p in range(6))
    assert all(len(a) == 2 for a in assignments)  # range assignor: 6 partitions / 3 members
    values = sorted(int(r.value) for s in seen for r in s)
    assert values == list(range(600))  # no loss and no duplicates in a stable group
    for c in consumers:
        c.close()
    # committed offsets are the end offsets: a new member starts at the end
    late = log.consumer("t", group="g", auto_offset_reset="earliest", **FAST)
    assert late.poll(timeout=0.5) == []
    assert all(late.committed(tp) == log.end_offset(tp) for tp in late.assignment())
    late.close()


class Poller:
    """Polls a consumer in its own thread (as an app would); state changes wake waiters."""

    def __init__(self, consumer, changed: threading.Condition) -> None:
        self.consumer = consumer
        self.changed = changed
        self.stop = threading.Event()
        self.records: list = []
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            got = self.consumer.poll(timeout=0.05)
            with self.changed:
                self.records.extend(got)
                self.changed.notify_all()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.consumer.close()
        with self.changed:
            self.changed.notify_all()


def test_leave_moves_partitions_and_callbacks_run(log):
    fill(log, "t", 40, 4)
    events: list[tuple[str, str, list]] = []
    changed = threading.Condition()
    a = log.consumer(group="g", auto_offset_reset="earliest", **FAST)
    a.subscribe(["t"], on_assign=lambda tps: events.append(("a", "assign", tps)),
                on_revoke=lambda tps: events.append(("a", "revoke", tps)))
    pa = Poller(a, changed)
    with changed:
        assert changed.wait_for(lambda: len(a.assignment()) == 4, timeout=30)
    b = log.consumer(group="g", auto_offset_reset="earliest", **FAST)
    b.subscribe(["t"])
    pb = Poller(b, changed)
    with changed:
        assert changed.wait_for(
            lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2, timeout=30)
    assert not a.assignment() & b.assignment()
    assert ("a", "revoke") in [(e[0], e[1]) for e in events]
    pb.close()  # b leaves the group: its partitions go back to a
    with changed:
        assert changed.wait_for(lambda: len(a.assignment()) == 4, timeout=30)
    pa.close()
    assert sorted(int(r.value) for r in pa.records + pb.records) == list(range(40))


def test_member_that_stops_polling_is_removed(log):
    fill(log, "t", 10, 2)
    quiet = log.consumer(group="g", auto_offset_reset="earliest", **FAST)
    quiet.subscribe(["t"])
    while not quiet.assignment():
        quiet.poll(timeout=0.05)
    busy = log.consumer(group="g", auto_offset_reset="earliest", **FAST)
    busy.subscribe(["t"])
    # `quiet` never polls again: after its session times out, `busy` owns both partitions
    polls = 0
    while len(busy.assignment()) < 2:
        busy.poll(timeout=0.1)
        polls += 1
        assert polls < 600
    coord = busy._member.coordinator
    members = coord.describe_group("g").members
    assert [m.member_id for m in members] == [busy._member.member_id]


def test_no_committed_offset_with_reset_none(log):
    fill(log, "t", 5, 1)
    c = log.consumer("t", group="g", auto_offset_reset="none", **FAST)
    with pytest.raises(NoOffsetError):
        c.poll(timeout=1)


CHILD = r"""
import sys, logmq
data, n = sys.argv[1], int(sys.argv[2])
log = logmq.open(data)
c = log.consumer("t", group="g", auto_offset_reset="earliest", enable_auto_commit=False,
                 session_timeout_ms=1500, heartbeat_interval_ms=50)
got = 0
while got < n:
    recs = c.poll(timeout=5, max_records=n - got)
    got += len(recs)
    c.commit()
    print("committed", got, flush=True)
print("waiting", flush=True)
sys.stdin.read()
"""


def test_commit_that_returned_survives_sigkill(data_dir):
    with logmq.open(data_dir) as log:
        fill(log, "t", 50, 1)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, data_dir, "30"],
                            stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    last = 0
    for line in proc.stdout:
        if line.startswith("committed"):
            last = int(line.split()[1])
        if line.startswith("waiting"):
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert last == 30
    with logmq.open(data_dir) as log:
        c = log.consumer("t", group="g", auto_offset_reset="earliest", **FAST)
        assert c.committed(("t", 0)) == 30
        recs = []
        while not recs:
            recs = c.poll(timeout=5)
        assert recs[0].offset == 30
        c.close()


def test_deleting_a_topic_drops_its_committed_offsets(data_dir):
    with logmq.open(data_dir) as log:
        fill(log, "t", 10, 1)
        c = log.consumer("t", group="g", auto_offset_reset="earliest", **FAST)
        while len(c.poll(timeout=1)) == 0:
            pass
        c.commit()
        c.close()
    with logmq.open(data_dir) as log:  # a fresh process: no coordinator running yet
        log.delete_topic("t")
        log.create_topic("t")
        c = log.consumer("t", group="g", auto_offset_reset="earliest", **FAST)
        assert c.committed(("t", 0)) is None
        c.close()
