"""SIGKILL in the middle of a transaction, then restart: the transaction is completed or
aborted as Kafka would, and read_committed sees a consistent log.

* the server killed while a confluent-kafka transaction is open (its records appended, no
  EndTxn yet): after the restart the records stay invisible to read_committed, the
  coordinator aborts the transaction once its timeout passes, and the id works again;
* a process killed inside EndTxn, after ``PrepareCommit`` was stored and one of two partitions
  got its COMMIT marker: reopening finishes the commit on every partition (and the offsets
  committed in it);
* a process killed after an abort, before any checkpoint: the aborted-transaction index is
  rebuilt from the log (the file is removed first, so only the replay can bring it back).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_util import ServerProcess  # noqa: E402
from wire_util import RawClient  # noqa: E402

import logmq  # noqa: E402
from logmq.storage.txn_index import TXN_INDEX_SUFFIX  # noqa: E402
from logmq.storage.txn_ops import last_stable_offset  # noqa: E402

T = 20.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _killed_child(code: str) -> None:
    """Run ``code`` in a fresh interpreter that must end by SIGKILL (it kills itself)."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def _values(log: Any, topic: str, partition: int, isolation: str) -> list[bytes]:
    c = log.consumer(isolation_level=isolation, auto_offset_reset="earliest")
    c.assign([(topic, partition)])
    out: list[bytes] = []
    while True:
        got = c.poll(0)
        if not got:
            return out
        out.extend(r.value for r in got)


def test_server_killed_with_an_open_transaction(tmp_path: Any) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    data = str(tmp_path / "data")
    with ServerProcess(data) as s:
        admin = AdminClient({"bootstrap.servers": s.bootstrap})
        admin.create_topics([NewTopic("k", 1, 1)])["k"].result(T)
        p = Producer({"bootstrap.servers": s.bootstrap, "transactional.id": "killed",
                      "transaction.timeout.ms": 1500, "linger.ms": 1})
        p.init_transactions(T)
        p.begin_transaction()
        p.produce("k", b"committed", partition=0)
        p.commit_transaction(T)
        p.begin_transaction()
        p.produce("k", b"open", partition=0)
        assert p.flush(T) == 0
        s.stop(signal.SIGKILL)
    del p  # its coordinator is gone; librdkafka would retry against the dead port
    with ServerProcess(data) as s:
        raw = RawClient(s.host, s.port)
        try:
            deadline = time.monotonic() + T
            while True:  # aborted by the restarted coordinator once the 1.5 s timeout passed
                st = raw.call(65, 0, {"transactional_ids": ["killed"]})
                state = st["transaction_states"][0]["transaction_state"]
                if state == "CompleteAbort":
                    break
                assert state == "Ongoing" and time.monotonic() < deadline, st
                time.sleep(0.05)  # polling a condition with a deadline
        finally:
            raw.close()
        q = Producer({"bootstrap.servers": s.bootstrap, "transactional.id": "killed"})
        q.init_transactions(T)
        q.begin_transaction()
        q.produce("k", b"after", partition=0)
        q.commit_transaction(T)
        c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "rc",
                      "isolation.level": "read_committed", "enable.auto.commit": False})
        c.assign([TopicPartition("k", 0, 0)])
        seen: list[bytes] = []
        deadline = time.monotonic() + T
        while len(seen) < 2 and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                seen.append(m.value())
        c.close()
        assert seen == [b"committed", b"after"]


def test_killed_inside_end_txn_is_committed_on_reopen(tmp_path: Any) -> None:
    d = str(tmp_path / "d")
    _killed_child(f"""
        import os, signal
        import logmq
        import logmq.broker.transactions as tx
        log = logmq.open({d!r})
        log.create_topic("a", partitions=1)
        log.create_topic("b", partitions=1)
        log.create_topic("in", partitions=1)
        p = log.producer(transactional_id="mid")
        p.begin_transaction()
        p.send("a", b"A", partition=0)
        p.send("b", b"B", partition=0)
        p.send_offsets_to_transaction({{("in", 0): 7}}, "grp")
        real = tx.write_marker
        calls = []
        def dying(*a, **kw):
            calls.append(1)
            if len(calls) == 2:  # PrepareCommit stored, "a" marked, "b" not yet
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*a, **kw)
        tx.write_marker = dying
        p.commit_transaction()
    """)
    with logmq.open(d) as log:
        md = log.transactions.describe("mid")
        assert md.state == "CompleteCommit"
        for t, v in (("a", b"A"), ("b", b"B")):
            plog = log.partition_log(t, 0)
            assert last_stable_offset(plog) == plog.next_offset
            assert _values(log, t, 0, "read_committed") == [v]
        c = log.consumer("in", group="grp")
        assert c.committed(("in", 0)) == 7
        c.close(commit=False)


def test_killed_before_a_checkpoint_rebuilds_the_aborted_index(tmp_path: Any) -> None:
    d = str(tmp_path / "d")
    _killed_child(f"""
        import os, signal
        import logmq
        log = logmq.open({d!r})
        log.create_topic("t", partitions=1)
        p = log.producer(transactional_id="rebuild")
        for value, commit in ((b"c1", True), (b"a1", False), (b"c2", True)):
            p.begin_transaction()
            p.send("t", value, partition=0)
            (p.commit_transaction if commit else p.abort_transaction)()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    pdir = [os.path.join(d, n) for n in os.listdir(d) if n.startswith("t-")][0]
    for n in os.listdir(pdir):
        if n.endswith(TXN_INDEX_SUFFIX):
            os.unlink(os.path.join(pdir, n))
    with logmq.open(d) as log:
        assert _values(log, "t", 0, "read_committed") == [b"c1", b"c2"]
        assert _values(log, "t", 0, "read_uncommitted") == [b"c1", b"a1", b"c2"]
        [e] = log.partition_log("t", 0).txn_index.collect(0, 100)
        assert (e.first_offset, e.last_offset) == (2, 3)
    assert any(n.endswith(TXN_INDEX_SUFFIX) for n in os.listdir(pdir))
