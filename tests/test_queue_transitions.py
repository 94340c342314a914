"""Share-group records move only along ``queues.actions.TRANSITIONS``, and along all of it."""

from __future__ import annotations

import time

import pytest

import logmq
from logmq.broker.queues import hot
from logmq.broker.queues.actions import TRANSITIONS
from logmq.broker.queues.group import ShareGroup
from logmq.broker.queues.model import ACQUIRED, AVAILABLE, _Rec
from logmq.broker.queues.state import now_ms

SEEN: list[tuple[int, int]] = []


class _RecordingRec(_Rec):
    """A record whose state changes are written down (same behaviour otherwise)."""

    __slots__ = ("_st",)

    @property  # type: ignore[override]
    def state(self) -> int:
        return self._st

    @state.setter
    def state(self, new: int) -> None:
        old = getattr(self, "_st", None)
        if old is not None and old != new:
            SEEN.append((old, new))
        self._st = new


@pytest.fixture
def log(tmp_path, monkeypatch):
    SEEN.clear()
    # the reference loops (hot.PURE) on recording records: the compiled loops set a compiled
    # record's state directly, which no Python property sees (test_queue_native.py holds
    # the compiled loops to the same moves)
    monkeypatch.setattr(ShareGroup, "_hot", hot.PURE._replace(Rec=_RecordingRec))
    with logmq.open(tmp_path / "d", cleaner=False) as lg:
        yield lg


def one(q):
    got = q.receive(1, timeout=5)
    assert len(got) == 1
    return got[0]


def test_every_action_moves_along_the_table(log, monkeypatch):
    log.create_topic("jobs")
    p = log.producer(linger_ms=0)
    for i in range(6):
        p.send("jobs", b"v%d" % i).result()
    q = log.queue("jobs", group="g", max_attempts=2, backoff_base_ms=0, lock_ms=60_000,
                  dead_letter_expired=True)
    one(q).ack()                         # acquire, end-lock, finish
    r = one(q)
    r.renew()                            # stays acquired
    r.nack()                             # redeliver
    one(q).nack(delay=60)                # finish-or-schedule (due-time index)
    one(q).reject("bad")                 # dead-letter, buried
    r = one(q)
    r.release()                          # redeliver without counting the attempt
    one(q).ack()
    r = one(q)
    r.nack()
    r = one(q)
    assert r.delivery_count == 2
    # the dead-letter copy fails once: the record is delivered again
    real = log.logs.append_batches
    calls = {"n": 0}

    def flaky(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full")
        return real(*a, **kw)

    monkeypatch.setattr(log.logs, "append_batches", flaky)
    with pytest.raises(OSError):
        r.nack()                         # max attempts: dead-letter, bury-failed
    one(q).reject()                      # buried on the second try
    monkeypatch.setattr(log.logs, "append_batches", real)
    # expired before delivery: archived (no DLQ) / dead-lettered (dead_letter_expired)
    log.create_topic("ttl")
    sent = now_ms()
    p.send("ttl", b"x", ttl_ms=1).result()
    deadline = time.monotonic() + 5
    while now_ms() <= sent + 2 and time.monotonic() < deadline:
        pass  # let the 1 ms TTL pass (bounded busy wait, no sleep)
    assert log.queue("ttl", group="a").receive(1, timeout=0.2) == []
    assert log.queue("ttl", group="b", dead_letter_expired=True).receive(1, timeout=0.2) == []
    seen = set(SEEN)
    assert seen <= set(TRANSITIONS), sorted(seen - set(TRANSITIONS))
    assert seen == set(TRANSITIONS), sorted(set(TRANSITIONS) - seen)
    assert all(old == AVAILABLE for old, new in SEEN if new == ACQUIRED)


def test_lock_ms_is_checked_the_same_for_local_and_remote_members(log):
    from logmq.broker.queues.remote import QueueServer, RemoteQueue
    from logmq.errors import ConfigError

    log.create_topic("lm")
    with pytest.raises(ConfigError, match="lock_ms"):
        log.queue("lm", group="g", lock_ms=0)
    with QueueServer(log) as server:
        with pytest.raises(ConfigError, match="lock_ms"):
            RemoteQueue(server.address, "lm", group="g", authkey=server.authkey, lock_ms=0)
