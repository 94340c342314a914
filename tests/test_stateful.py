"""A hypothesis state machine: random sends, flushes, rolls, reopens and reads against a model."""

from __future__ import annotations

import shutil
import tempfile

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import logmq

PARTS = 3
keys = st.one_of(st.none(), st.binary(max_size=8))
values = st.one_of(st.none(), st.binary(max_size=300))
headers = st.one_of(st.none(), st.lists(st.tuples(st.text(max_size=5), st.one_of(
    st.none(), st.binary(max_size=5))), max_size=3))
timestamps = st.integers(min_value=0, max_value=10_000)


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="logmq-sm-")
        self.model: list[list[tuple]] = [[] for _ in range(PARTS)]
        self._open()
        self.log.create_topic("t", partitions=PARTS, config={
            "segment.bytes": 2048, "index.interval.bytes": 256})
        self.producer = self.log.producer(linger_ms=60_000, batch_size=1500)
        self.pending: list = []

    def _open(self) -> None:
        self.log = logmq.open(self.dir, cleaner=False)

    def _settle(self) -> None:
        self.producer.flush()
        for fut, p, rec in self.pending:
            md = fut.result(timeout=10)
            assert md.partition == p
            assert md.offset == len(self.model[p])
            self.model[p].append(rec)
        self.pending.clear()

    @rule(p=st.integers(0, PARTS - 1), k=keys, v=values, h=headers, ts=timestamps)
    def send(self, p, k, v, h, ts):
        fut = self.producer.send("t", v, key=k, headers=h, partition=p, timestamp=ts)
        self.pending.append((fut, p, (ts, k, v, h or [])))

    @rule(p=st.integers(0, PARTS - 1), recs=st.lists(st.tuples(keys, values), min_size=1,
                                                     max_size=30), ts=timestamps)
    def send_batch(self, p, recs, ts):
        self._settle()
        self.producer.send_batch("t", recs, partition=p, timestamp=ts)
        for k, v in recs:
            self.model[p].append((ts, k, v, []))

    @rule()
    def flush(self):
        self._settle()

    @rule(p=st.integers(0, PARTS - 1))
    def roll(self, p):
        self._settle()
        self.log.partition_log("t", p).roll()

    @rule()
    def reopen(self):
        self._settle()
        self.producer.close()
        self.log.close()
        self._open()
        assert self.log.opened_clean
        self.producer = self.log.producer(linger_ms=60_000, batch_size=1500)

    @precondition(lambda self: any(self.model))
    @rule(data=st.data())
    def read_from(self, data):
        self._settle()
        p = data.draw(st.sampled_from([i for i in range(PARTS) if self.model[i]]))
        start = data.draw(st.integers(0, len(self.model[p])))
        c = self.log.consumer(auto_offset_reset="none", max_poll_records=10_000,
                              fetch_max_bytes=data.draw(st.integers(1, 4096)))
        c.assign([("t", p)])
        c.seek(("t", p), start)
        got = []
        while len(got) < len(self.model[p]) - start:
            batch = c.poll(timeout=5)
            assert batch, "consumer stalled before the end of the log"
            got.extend(batch)
        assert [r.offset for r in got] == list(range(start, len(self.model[p])))
        assert [(r.timestamp, r.key, r.value, r.headers) for r in got] == self.model[p][start:]
        c.close()

    @precondition(lambda self: any(self.model))
    @rule(p=st.integers(0, PARTS - 1), ts=timestamps)
    def offsets_for_times(self, p, ts):
        self._settle()
        expect = next((i for i, r in enumerate(self.model[p]) if r[0] >= ts), None)
        got = self.log.offsets_for_times({("t", p): ts})[("t", p)]
        assert (got.offset if got else None) == expect

    @invariant()
    def end_offsets(self):
        for p in range(PARTS):
            assert self.log.end_offset(("t", p)) >= len(self.model[p])

    def teardown(self):
        try:
            self.producer.close()
            self.log.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


LogMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestLog = LogMachine.TestCase
