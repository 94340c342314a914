"""GroupCoordinator state machine, driven by a fake clock and advance() (no sleeps)."""

from __future__ import annotations

import pytest

from logmq.broker.groups import GroupCoordinator, JoinResult, MemoryOffsetStore
from logmq.errors import (
    BrokerClosedError,
    GroupIdNotFoundError,
    GroupNotEmptyError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    InvalidSessionTimeoutError,
    MemberIdRequiredError,
    RebalanceInProgressError,
    UnknownMemberError,
)

G = "g"
SESSION = 10_000
REBALANCE = 30_000


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> MemoryOffsetStore:
    return MemoryOffsetStore()


@pytest.fixture
def coord(clock, store):
    c = GroupCoordinator(store, time_fn=clock)
    yield c
    c.close()


def tick(c: GroupCoordinator, clock: Clock, seconds: float) -> None:
    clock.t += seconds
    c.advance()


def join(c, mid="", meta=b"m", *, protos=None, group=G, session=SESSION, rebalance=REBALANCE,
         ptype="consumer", **kw):
    protos = protos if protos is not None else [("range", meta)]
    return c.join_group(group, mid, ptype, protos, session, rebalance, client_id="cli", **kw)


def done(fut) -> JoinResult:
    assert fut.done(), "expected the join to have completed"
    res = fut.result(timeout=0)
    return res


def new_member(c, clock=None, **kw) -> JoinResult:
    """Join a fresh member into an Empty group (completes at once with no initial delay)."""
    res = done(join(c, **kw))
    assert res.error is None, res.error
    return res


def stable_group(c, n: int) -> tuple[list[str], int]:
    """n members, all joined in one generation and synced; returns (ids in join order, gen)."""
    first = new_member(c)
    ids = [first.member_id]
    c.sync_group(G, first.generation_id, first.member_id, {first.member_id: b"a0"})
    if n == 1:
        return ids, first.generation_id
    futs = [join(c, meta=f"m{i}".encode()) for i in range(1, n)]
    assert not any(f.done() for f in futs)
    with pytest.raises(RebalanceInProgressError):
        c.heartbeat(G, first.generation_id, first.member_id)
    lead = done(join(c, first.member_id))
    results = [lead] + [done(f) for f in futs]
    ids = [r.member_id for r in results]
    gen = lead.generation_id
    plan = {mid: f"a{i}".encode() for i, mid in enumerate(ids)}
    syncs = [c.sync_group(G, gen, mid, plan if mid == lead.leader_id else {}) for mid in ids]
    assert [s.result(timeout=0) for s in syncs] == [plan[m] for m in ids]
    return ids, gen


# ---------------------------------------------------------------------------- join / sync
def test_single_member_join_sync(coord):
    res = new_member(coord, meta=b"sub")
    assert res.member_id.startswith("cli-")
    assert res.generation_id == 1
    assert res.leader_id == res.member_id
    assert res.protocol_name == "range"
    assert res.members == [(res.member_id, None, b"sub")]
    assert coord.describe_group(G).state == "CompletingRebalance"
    got = coord.sync_group(G, 1, res.member_id, {res.member_id: b"plan"})
    assert got.result(timeout=0) == b"plan"
    d = coord.describe_group(G)
    assert d.state == "Stable" and d.protocol == "range" and d.protocol_type == "consumer"
    (m,) = d.members
    assert (m.member_id, m.client_id, m.metadata, m.assignment) == (
        res.member_id, "cli", b"sub", b"plan")


def test_three_members_leader_gets_metadata_and_followers_wait(coord):
    a = new_member(coord, meta=b"A")
    coord.sync_group(G, 1, a.member_id, {a.member_id: b"all"}).result(timeout=0)
    fb = join(coord, meta=b"B")
    fc = join(coord, meta=b"C")
    assert not fb.done() and not fc.done()
    assert coord.describe_group(G).state == "PreparingRebalance"
    # Members still in the old generation learn about the rebalance from their heartbeat.
    with pytest.raises(RebalanceInProgressError):
        coord.heartbeat(G, 1, a.member_id)
    ra = done(join(coord, a.member_id, meta=b"A"))
    rb, rc = done(fb), done(fc)
    assert ra.generation_id == rb.generation_id == rc.generation_id == 2
    assert ra.leader_id == rb.leader_id == rc.leader_id == a.member_id
    assert ra.members == [(a.member_id, None, b"A"), (rb.member_id, None, b"B"),
                          (rc.member_id, None, b"C")]
    assert rb.members == [] and rc.members == []

    sb = coord.sync_group(G, 2, rb.member_id, {})
    sc = coord.sync_group(G, 2, rc.member_id, None)
    coord.heartbeat(G, 2, rb.member_id)  # accepted while CompletingRebalance
    assert not sb.done() and not sc.done()
    plan = {a.member_id: b"pa", rb.member_id: b"pb"}  # rc gets nothing
    assert coord.sync_group(G, 2, a.member_id, plan).result(timeout=0) == b"pa"
    assert sb.result(timeout=0) == b"pb"
    assert sc.result(timeout=0) == b""
    assert coord.describe_group(G).state == "Stable"
    for mid in (a.member_id, rb.member_id, rc.member_id):
        coord.heartbeat(G, 2, mid)


def test_generation_increments_per_rebalance(coord):
    ids, gen = stable_group(coord, 2)
    assert gen == 2
    coord.leave_group(G, [ids[1]])
    res = done(join(coord, ids[0]))
    assert res.generation_id == 3 and res.members == [(ids[0], None, b"m")]


def test_initial_rebalance_delay_collects_a_starting_fleet(clock, store):
    c = GroupCoordinator(store, time_fn=clock, initial_rebalance_delay_ms=3000)
    f1 = join(c)
    tick(c, clock, 1)
    f2 = join(c)
    tick(c, clock, 2)  # first delay over, but a member arrived during it: wait another
    assert not f1.done()
    f3 = join(c)
    tick(c, clock, 2.9)
    assert not f1.done()
    tick(c, clock, 0.2)  # second delay over, a third member joined in it: one more delay
    assert not f1.done()
    tick(c, clock, 3)
    rs = [done(f) for f in (f1, f2, f3)]
    assert {r.generation_id for r in rs} == {1}
    assert len(rs[0].members) == 3
    c.close()


def test_member_id_required_flow(coord, clock):
    first = done(join(coord, require_known_member_id=True))
    assert isinstance(first.error, MemberIdRequiredError)
    new_id = first.error.member_id
    assert first.member_id == new_id and new_id.startswith("cli-")
    assert coord.describe_group(G).members == []  # not a member until it rejoins
    res = done(join(coord, new_id, require_known_member_id=True))
    assert res.error is None and res.member_id == new_id and res.generation_id == 1

    # An id handed out but never used expires after the session timeout.
    other = done(join(coord, require_known_member_id=True)).error.member_id
    tick(coord, clock, SESSION / 1000 + 1)
    late = done(join(coord, other, require_known_member_id=True))
    assert isinstance(late.error, UnknownMemberError)


def test_pending_member_id_holds_rebalance_until_it_rejoins(coord):
    ids, gen = stable_group(coord, 1)
    pending = done(join(coord, require_known_member_id=True)).error.member_id
    # A rejoin of the leader starts a rebalance; it cannot complete while an id is pending.
    fa = join(coord, ids[0])
    assert not fa.done()
    fp = join(coord, pending)
    assert done(fa).generation_id == done(fp).generation_id == gen + 1


def test_inconsistent_protocols(coord):
    new_member(coord, protos=[("range", b"")])
    bad = done(join(coord, protos=[("roundrobin", b"")]))
    assert isinstance(bad.error, InconsistentGroupProtocolError)
    bad = done(join(coord, protos=[("range", b"")], ptype="connect"))
    assert isinstance(bad.error, InconsistentGroupProtocolError)
    bad = done(join(GroupCoordinator(MemoryOffsetStore()), protos=[]))
    assert isinstance(bad.error, InconsistentGroupProtocolError)


def test_rejected_first_join_leaves_no_group_behind(coord):
    for bad in (join(coord, protos=[]), join(coord, ptype=""), join(coord, session=1)):
        assert done(bad).error is not None
    assert coord.list_groups() == []
    assert coord.describe_group(G).state == "Dead"
    assert isinstance(coord.delete_groups([G])[G], GroupIdNotFoundError)


def test_protocol_chosen_by_votes_among_common(coord):
    a = join(coord, protos=[("range", b"ra"), ("sticky", b"sa"), ("roundrobin", b"xa")])
    ra = done(a)
    fb = join(coord, protos=[("sticky", b"sb"), ("roundrobin", b"xb")])
    fc = join(coord, protos=[("roundrobin", b"xc"), ("sticky", b"sc")])
    done(join(coord, ra.member_id,
              protos=[("range", b"ra"), ("sticky", b"sa"), ("roundrobin", b"xa")]))
    rb, rc = done(fb), done(fc)
    # common = {sticky, roundrobin}; votes: a->sticky, b->sticky, c->roundrobin
    assert rb.protocol_name == rc.protocol_name == "sticky"


def test_invalid_session_timeout(coord):
    for bad in (999, 1_800_001, 0):
        res = done(join(coord, session=bad))
        assert isinstance(res.error, InvalidSessionTimeoutError)


def test_unknown_member_and_unknown_group(coord):
    with pytest.raises(UnknownMemberError):
        coord.heartbeat("nope", 1, "x")
    ids, gen = stable_group(coord, 1)
    with pytest.raises(UnknownMemberError):
        coord.heartbeat(G, gen, "stranger")
    assert isinstance(done(join(coord, "stranger")).error, UnknownMemberError)
    assert isinstance(done(join(coord, "x", group="other")).error, UnknownMemberError)
    with pytest.raises(UnknownMemberError):
        coord.sync_group(G, gen, "stranger", {}).result(timeout=0)


def test_illegal_generation(coord):
    ids, gen = stable_group(coord, 2)
    with pytest.raises(IllegalGenerationError):
        coord.heartbeat(G, gen - 1, ids[0])
    with pytest.raises(IllegalGenerationError):
        coord.sync_group(G, gen + 1, ids[1], {}).result(timeout=0)


def test_sync_during_preparing_rebalance(coord):
    ids, gen = stable_group(coord, 1)
    join(coord)  # new member: PreparingRebalance
    with pytest.raises(RebalanceInProgressError):
        coord.sync_group(G, gen, ids[0], {}).result(timeout=0)


def test_join_while_stable(coord):
    ids, gen = stable_group(coord, 2)
    leader, follower = ids
    # Unchanged follower: answered at once with the current generation, no rebalance.
    res = done(join(coord, follower, meta=b"m1"))
    assert (res.error, res.generation_id, res.leader_id, res.members) == (None, gen, leader, [])
    assert coord.describe_group(G).state == "Stable"
    # The follower's metadata changed: rebalance.
    f = join(coord, follower, meta=b"changed")
    assert not f.done() and coord.describe_group(G).state == "PreparingRebalance"
    done(join(coord, leader))
    assert done(f).generation_id == gen + 1


def test_leader_rejoin_while_stable_triggers_rebalance(coord):
    ids, gen = stable_group(coord, 2)
    f = join(coord, ids[0])
    assert not f.done()
    with pytest.raises(RebalanceInProgressError):
        coord.heartbeat(G, gen, ids[1])
    done(join(coord, ids[1], meta=b"m1"))
    assert done(f).generation_id == gen + 1


def test_session_expiry_removes_member_and_rebalances(coord, clock):
    ids, gen = stable_group(coord, 2)
    a, b = ids
    for _ in range(3):  # a keeps heartbeating, b went silent
        tick(coord, clock, 3)
        coord.heartbeat(G, gen, a)
    assert coord.describe_group(G).state == "Stable"
    tick(coord, clock, 1.5)  # b's session (10 s) is over
    assert coord.describe_group(G).state == "PreparingRebalance"
    assert [m.member_id for m in coord.describe_group(G).members] == [a]
    with pytest.raises(UnknownMemberError):
        coord.heartbeat(G, gen, b)
    with pytest.raises(RebalanceInProgressError):
        coord.heartbeat(G, gen, a)
    res = done(join(coord, a))
    assert res.generation_id == gen + 1 and [m for m, _, _ in res.members] == [a]


def test_session_expiry_of_last_member_empties_group(coord, clock):
    ids, gen = stable_group(coord, 1)
    tick(coord, clock, SESSION / 1000 + 0.1)
    d = coord.describe_group(G)
    assert d.state == "Empty" and d.members == []


def test_members_waiting_in_join_are_not_session_expired(coord, clock):
    ids, gen = stable_group(coord, 2)
    a, b = ids
    fa = join(coord, a)  # leader rejoins: rebalance, waiting for b
    for _ in range(8):  # 16 s: past a's session, before the rebalance timeout
        tick(coord, clock, 2)
        with pytest.raises(RebalanceInProgressError):
            coord.heartbeat(G, gen, b)  # b is alive, just slow to rejoin
    assert not fa.done()
    assert [m.member_id for m in coord.describe_group(G).members] == [a, b]
    done(join(coord, b, meta=b"m1"))
    assert [m for m, _, _ in done(fa).members] == [a, b]


def test_rebalance_timeout_removes_member_that_does_not_rejoin(coord, clock):
    ids, gen = stable_group(coord, 2)
    a, b = ids
    fc = join(coord, meta=b"C")
    fa = join(coord, a)
    for _ in range(14):  # 28 s: b heartbeats (staying alive) but never rejoins
        tick(coord, clock, 2)
        with pytest.raises(RebalanceInProgressError):
            coord.heartbeat(G, gen, b)
    assert not fa.done()
    tick(coord, clock, 2)
    ra, rc = done(fa), done(fc)
    assert ra.generation_id == gen + 1
    assert [m for m, _, _ in ra.members] == [a, rc.member_id]
    with pytest.raises(UnknownMemberError):
        coord.heartbeat(G, gen, b)


def test_leader_that_never_syncs_is_removed(coord, clock):
    ids, gen = stable_group(coord, 2)
    a, b = ids
    fa = join(coord, a)
    done(join(coord, b, meta=b"m1"))
    assert done(fa).leader_id == a
    sb = coord.sync_group(G, gen + 1, b, {})
    # a got its JoinGroup answer and keeps heartbeating, but never sends SyncGroup; b is
    # parked in SyncGroup and must not be expired meanwhile.
    for _ in range(15):
        assert not sb.done()
        coord.heartbeat(G, gen + 1, a)
        tick(coord, clock, 2)
    with pytest.raises(RebalanceInProgressError):
        sb.result(timeout=0)
    assert [m.member_id for m in coord.describe_group(G).members] == [b]
    res = done(join(coord, b, meta=b"m1"))
    assert res.leader_id == b and res.generation_id == gen + 2


def test_leave_triggers_rebalance_then_empty(coord):
    ids, gen = stable_group(coord, 3)
    coord.leave_group(G, [ids[2]])
    assert coord.describe_group(G).state == "PreparingRebalance"
    fa, fb = join(coord, ids[0]), join(coord, ids[1], meta=b"m1")
    assert done(fa).generation_id == done(fb).generation_id == gen + 1
    coord.leave_group(G, [ids[0], ids[1]])
    d = coord.describe_group(G)
    assert d.state == "Empty" and d.members == []
    with pytest.raises(UnknownMemberError):
        coord.leave_group(G, [ids[0]])


def test_leave_while_waiting_in_join_fails_that_join(coord):
    ids, gen = stable_group(coord, 2)
    fa = join(coord, ids[0])
    coord.leave_group(G, [ids[0]])
    assert isinstance(done(fa).error, UnknownMemberError)
    rb = done(join(coord, ids[1], meta=b"m1"))
    assert rb.leader_id == ids[1] and rb.generation_id == gen + 1


def test_new_join_during_completing_rebalance_fails_waiting_syncs(coord):
    ids, gen = stable_group(coord, 2)
    coord.leave_group(G, [])  # no-op
    fa = join(coord, ids[0])
    done(join(coord, ids[1], meta=b"m1"))
    done(fa)
    sb = coord.sync_group(G, gen + 1, ids[1], {})
    join(coord, meta=b"new")
    with pytest.raises(RebalanceInProgressError):
        sb.result(timeout=0)


# ---------------------------------------------------------------------------- offsets
def test_commit_rules(coord, clock):
    tp = {("t", 0): (5, None)}
    # Simple (standalone) commits need an Empty group.
    coord.commit_offsets("solo", -1, "", tp)
    assert coord.fetch_offsets("solo", None) == tp
    ids, gen = stable_group(coord, 2)
    a, b = ids
    coord.commit_offsets(G, gen, a, {("t", 0): (1, "x")})
    with pytest.raises(UnknownMemberError):
        coord.commit_offsets(G, -1, "", tp)
    with pytest.raises(UnknownMemberError):
        coord.commit_offsets(G, gen, "stranger", tp)
    with pytest.raises(IllegalGenerationError):
        coord.commit_offsets(G, gen - 1, a, tp)
    with pytest.raises(IllegalGenerationError):
        coord.commit_offsets(G, -1, a, tp)

    # PreparingRebalance: the owners commit from on-revoke with their current generation.
    fc = join(coord, meta=b"C")
    coord.commit_offsets(G, gen, b, {("t", 1): (7, "")})
    fa, fb = join(coord, a), join(coord, b, meta=b"m1")
    done(fa), done(fb), done(fc)
    # CompletingRebalance: assignments are not out yet.
    with pytest.raises(RebalanceInProgressError):
        coord.commit_offsets(G, gen + 1, a, tp)
    # The old generation is stale now.
    with pytest.raises(IllegalGenerationError):
        coord.commit_offsets(G, gen, a, tp)
    assert coord.fetch_offsets(G, [("t", 0), ("t", 1), ("t", 2)]) == {
        ("t", 0): (1, "x"), ("t", 1): (7, "")}


def test_commit_keeps_member_alive(coord, clock):
    ids, gen = stable_group(coord, 1)
    for i in range(5):
        tick(coord, clock, 4)
        coord.commit_offsets(G, gen, ids[0], {("t", 0): (i, None)})
    coord.heartbeat(G, gen, ids[0])


def test_delete_topic_offsets(coord):
    coord.commit_offsets("x", -1, "", {("a", 0): (1, None), ("b", 0): (2, None)})
    coord.on_topic_deleted("a")
    assert coord.fetch_offsets("x", None) == {("b", 0): (2, None)}
    coord.delete_topic_offsets("b")
    assert coord.fetch_offsets("x", None) == {}


# ---------------------------------------------------------------------------- admin
def test_list_and_describe(coord):
    assert coord.describe_group("nothing").state == "Dead"
    coord.commit_offsets("offsets-only", -1, "", {("t", 0): (1, None)})
    ids, gen = stable_group(coord, 2)
    join(coord, meta=b"C")
    assert coord.list_groups() == [(G, "consumer", "PreparingRebalance"),
                                   ("offsets-only", "consumer", "Empty")]
    d = coord.describe_group(G)
    # Mid-rebalance metadata and assignments are in flux and not reported (as in Kafka).
    assert d.protocol == "" and all(m.assignment == b"" for m in d.members)
    assert len(d.members) == 3
    o = coord.describe_group("offsets-only")
    assert (o.state, o.members) == ("Empty", [])


def test_delete_groups(coord):
    ids, gen = stable_group(coord, 1)
    coord.commit_offsets(G, gen, ids[0], {("t", 0): (3, None)})
    coord.commit_offsets("old", -1, "", {("t", 0): (3, None)})
    res = coord.delete_groups([G, "old", "missing"])
    assert isinstance(res[G], GroupNotEmptyError)
    assert res["old"] is None
    assert isinstance(res["missing"], GroupIdNotFoundError)
    assert coord.fetch_offsets("old", None) == {}
    coord.leave_group(G, ids)
    assert coord.delete_groups([G]) == {G: None}
    assert coord.fetch_offsets(G, None) == {}
    assert coord.describe_group(G).state == "Dead"
    assert coord.list_groups() == []


# ---------------------------------------------------------------------------- plumbing
def test_callbacks_run_outside_the_lock(coord):
    """A future's callback may call back into the coordinator (asyncio bridges, retries)."""
    seen = []
    res = new_member(coord)
    f = join(coord, meta=b"B")
    f.add_done_callback(lambda fut: seen.append(coord.describe_group(G).state))
    done(join(coord, res.member_id))
    assert seen == ["CompletingRebalance"]


def test_close_fails_waiting_futures(clock):
    c = GroupCoordinator(MemoryOffsetStore(), time_fn=clock)
    a = done(join(c))
    c.sync_group(G, 1, a.member_id, {})
    f = join(c, meta=b"B")
    c.close()
    with pytest.raises(BrokerClosedError):
        f.result(timeout=0)
    with pytest.raises(BrokerClosedError):
        join(c).result(timeout=0)
    with pytest.raises(BrokerClosedError):
        c.heartbeat(G, 1, a.member_id)
    c.close()  # idempotent


def test_cancelled_future_does_not_break_completion(coord):
    res = new_member(coord)
    f = join(coord, meta=b"B")
    assert f.cancel()
    assert done(join(coord, res.member_id)).generation_id == 2
