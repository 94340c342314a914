"""The coordinator under real time and real threads: start()'s deadline thread drives it."""

from __future__ import annotations

import threading
import time

import pytest

from logmq.broker.groups import GroupCoordinator, MemoryOffsetStore, assignors
from logmq.errors import (
    BrokerClosedError,
    IllegalGenerationError,
    MemberIdRequiredError,
    RebalanceInProgressError,
    UnknownMemberError,
)

G = "workers"
PARTITIONS = {"t": 12, "u": 5}


@pytest.fixture
def coord():
    c = GroupCoordinator(MemoryOffsetStore(), min_session_timeout_ms=50)
    c.start()
    yield c
    c.close()


def encode_plan(tps) -> bytes:
    return ",".join(f"{t}:{p}" for t, p in sorted(tps)).encode()


def decode_plan(raw: bytes) -> set[tuple[str, int]]:
    out = set()
    for item in filter(None, raw.decode().split(",")):
        t, p = item.split(":")
        out.add((t, int(p)))
    return out


def test_three_threads_converge_on_one_stable_generation(coord):
    state: dict[int, tuple[int, bytes] | None] = {}
    cond = threading.Condition()
    stop = threading.Event()
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def publish(idx, value):
        with cond:
            state[idx] = value
            cond.notify_all()

    def worker(idx: int) -> None:
        member_id, gen = "", -1
        try:
            start.wait(timeout=5)
            while not stop.is_set():
                if gen < 0:
                    res = coord.join_group(
                        G, member_id, "consumer", [("roundrobin", b"t,u")], 1500, 3000,
                        client_id=f"w{idx}", require_known_member_id=True,
                    ).result(timeout=10)
                    if isinstance(res.error, MemberIdRequiredError):
                        member_id = res.error.member_id
                        continue
                    assert res.error is None, res.error
                    member_id, gen = res.member_id, res.generation_id
                    plan: dict[str, bytes] = {}
                    if res.leader_id == member_id:
                        subs = {m: meta.decode().split(",") for m, _, meta in res.members}
                        got = assignors.assign(res.protocol_name, subs, PARTITIONS)
                        plan = {m: encode_plan(tps) for m, tps in got.items()}
                    try:
                        mine = coord.sync_group(G, gen, member_id, plan).result(timeout=10)
                    except (RebalanceInProgressError, IllegalGenerationError,
                            UnknownMemberError):
                        gen = -1
                        continue
                    publish(idx, (gen, mine))
                stop.wait(0.02)  # heartbeat interval
                try:
                    coord.heartbeat(G, gen, member_id)
                except (RebalanceInProgressError, IllegalGenerationError):
                    gen = -1
                    publish(idx, None)
                except UnknownMemberError:
                    member_id, gen = "", -1
                    publish(idx, None)
        except BaseException as e:  # surfaced by the main thread
            errors.append(e)
            with cond:
                cond.notify_all()

    def converged() -> bool:
        if errors:
            return True
        vals = [state.get(i) for i in range(3)]
        if any(v is None for v in vals):
            return False
        if len({g for g, _ in vals}) != 1:
            return False
        return sum(len(decode_plan(a)) for _, a in vals) == sum(PARTITIONS.values())

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    with cond:
        ok = cond.wait_for(converged, timeout=20)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert not errors, errors
    assert ok, f"no convergence: {state}"

    gens = {state[i][0] for i in range(3)}
    plans = [decode_plan(state[i][1]) for i in range(3)]
    everything = {(t, p) for t, n in PARTITIONS.items() for p in range(n)}
    assert set().union(*plans) == everything
    assert sum(map(len, plans)) == len(everything)  # disjoint
    assert max(map(len, plans)) - min(map(len, plans)) <= 1

    d = coord.describe_group(G)
    assert d.state == "Stable" and len(d.members) == 3
    assert sorted(sorted(decode_plan(m.assignment)) for m in d.members) == sorted(
        sorted(p) for p in plans)
    (gen,) = gens
    for m in d.members:  # the generation every thread holds is the group's
        coord.heartbeat(G, gen, m.member_id)


def test_deadline_thread_expires_silent_member(coord):
    a = coord.join_group(G, "", "consumer", [("range", b"")], 200, 5000).result(timeout=5)
    coord.sync_group(G, a.generation_id, a.member_id, {}).result(timeout=5)
    # b's join waits for a to rejoin; a is silent, so only a's session expiry (run by the
    # deadline thread, not by any call of ours) can complete it.
    t0 = time.monotonic()
    b = coord.join_group(G, "", "consumer", [("range", b"")], 5000, 5000).result(timeout=5)
    assert b.error is None and b.generation_id == a.generation_id + 1
    assert [m for m, _, _ in b.members] == [b.member_id]
    assert time.monotonic() - t0 < 3


def test_close_stops_thread_and_fails_waiters():
    c = GroupCoordinator(MemoryOffsetStore())
    c.start()
    a = c.join_group(G, "", "consumer", [("range", b"")], 10_000, 60_000).result(timeout=5)
    c.sync_group(G, a.generation_id, a.member_id, {}).result(timeout=5)
    waiting = c.join_group(G, "", "consumer", [("range", b"")], 10_000, 60_000)
    thread = c._thread
    t0 = time.monotonic()
    c.close()
    assert time.monotonic() - t0 < 2
    assert thread is not None and not thread.is_alive()
    with pytest.raises(BrokerClosedError):
        waiting.result(timeout=1)
