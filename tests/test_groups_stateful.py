"""Random interleavings of the group APIs against the coordinator's invariants.

The hand-written coordinator tests pin single scenarios; this machine lets hypothesis mix
joins (fresh, known, stale, duplicate), syncs, heartbeats, commits, leaves, cancelled waiters
and clock jumps, and checks after every step that the state machine and its deadline heap
agree, that every member of one generation saw the same leader and protocol, that every
sync answer is exactly what that generation's leader sent, and finally that a group left
alone always drains to Empty with every waiter answered (no stuck rebalance).
"""

from __future__ import annotations

from concurrent.futures import Future

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from logmq.broker.groups import GroupCoordinator, JoinResult, MemoryOffsetStore
from logmq.broker.groups import coordinator as co
from logmq.errors import (
    GroupError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    MemberIdRequiredError,
    RebalanceInProgressError,
    UnknownMemberError,
)

G = "g"
SLOTS = 4
PROTOCOL_SETS = [
    [("range", b"r")],
    [("range", b"r2"), ("roundrobin", b"x")],
    [("roundrobin", b"x"), ("range", b"r")],
]
LONER = [("sticky", b"s")]  # shares nothing with the others: INCONSISTENT_GROUP_PROTOCOL


class Clock:
    def __init__(self) -> None:
        self.t = 500.0

    def __call__(self) -> float:
        return self.t


class Slot:
    """One client's view of its membership, as a real consumer would keep it."""

    def __init__(self) -> None:
        self.member_id = ""
        self.generation = -1
        self.is_leader = False
        self.roster: list[str] = []
        self.join: Future | None = None
        self.sync: tuple[Future, int, str] | None = None


def plan_bytes(generation: int, member_id: str) -> bytes:
    return f"{generation}:{member_id}".encode()


class CoordinatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.coord: GroupCoordinator | None = None
        self.slots = [Slot() for _ in range(SLOTS)]
        self.futures: list[Future] = []
        self.generations: dict[int, tuple[str, str]] = {}  # gen -> (leader, protocol)
        self.last_generation = 0

    @initialize(delay_ms=st.sampled_from([0, 0, 3000]))
    def setup(self, delay_ms: int) -> None:
        self.coord = GroupCoordinator(MemoryOffsetStore(), time_fn=self.clock,
                                      initial_rebalance_delay_ms=delay_ms)

    # ------------------------------------------------------------------ delivery
    def deliver(self) -> None:
        """Hand every completed future's answer to its slot and check it."""
        for s in self.slots:
            if s.join is not None and s.join.done():
                fut, s.join = s.join, None
                if not fut.cancelled():
                    self.on_join(s, fut.result(timeout=0))
            if s.sync is not None and s.sync[0].done():
                (fut, gen, mid), s.sync = s.sync, None
                if fut.cancelled():
                    continue
                exc = fut.exception(timeout=0)
                if exc is None:
                    assert fut.result(timeout=0) == plan_bytes(gen, mid)
                else:
                    assert isinstance(exc, RebalanceInProgressError | UnknownMemberError
                                      | IllegalGenerationError), exc

    def on_join(self, s: Slot, res: JoinResult) -> None:
        if res.error is None:
            assert res.generation_id >= 1 and res.member_id
            seen = self.generations.setdefault(res.generation_id,
                                               (res.leader_id, res.protocol_name))
            assert seen == (res.leader_id, res.protocol_name), "one generation, two leaders"
            s.member_id, s.generation = res.member_id, res.generation_id
            s.is_leader = res.leader_id == res.member_id
            if s.is_leader:
                s.roster = [m for m, _, _ in res.members]
                assert res.member_id in s.roster
            else:
                assert res.members == []
        elif isinstance(res.error, MemberIdRequiredError):
            s.member_id, s.generation = res.error.member_id, -1
        elif isinstance(res.error, UnknownMemberError):
            s.member_id, s.generation = "", -1
        else:
            assert isinstance(res.error, RebalanceInProgressError
                              | InconsistentGroupProtocolError), res.error

    def track(self, fut: Future) -> Future:
        self.futures.append(fut)
        return fut

    # ------------------------------------------------------------------ rules
    @rule(i=st.integers(0, SLOTS - 1), protos=st.sampled_from(PROTOCOL_SETS * 3 + [LONER]),
          session=st.sampled_from([6000, 10_000]), rebalance=st.sampled_from([10_000, 30_000]),
          require=st.booleans(), fresh=st.sampled_from([False, False, False, True]))
    def join(self, i, protos, session, rebalance, require, fresh) -> None:
        self.deliver()
        s = self.slots[i]
        # A fresh join from a slot that is a member leaves a phantom behind (a client that
        # lost its id); it must be reaped by session timeout like any silent member.
        mid = "" if fresh else s.member_id
        s.join = self.track(self.coord.join_group(
            G, mid, "consumer", protos, session, rebalance, client_id=f"c{i}",
            require_known_member_id=require))
        self.deliver()

    @rule()
    def cooperate(self) -> None:
        """Every member does what a well-behaved client would now: rejoin, then sync.

        Without this the random walk rarely gets a whole group through a generation.
        """
        self.deliver()
        for s in self.slots:
            if s.member_id and s.join is None:
                s.join = self.track(self.coord.join_group(
                    G, s.member_id, "consumer", PROTOCOL_SETS[0], 10_000, 30_000,
                    require_known_member_id=True))
        self.deliver()
        for i, s in enumerate(self.slots):
            if s.generation > 0 and s.sync is None:
                self.sync(i)

    @rule(i=st.integers(0, SLOTS - 1))
    def sync(self, i) -> None:
        self.deliver()
        s = self.slots[i]
        plan = ({m: plan_bytes(s.generation, m) for m in s.roster} if s.is_leader else {})
        s.sync = (self.track(self.coord.sync_group(G, s.generation, s.member_id, plan)),
                  s.generation, s.member_id)
        self.deliver()

    @rule(i=st.integers(0, SLOTS - 1))
    def heartbeat(self, i) -> None:
        self.deliver()
        s = self.slots[i]
        try:
            self.coord.heartbeat(G, s.generation, s.member_id)
        except GroupError:
            pass
        self.deliver()

    @rule(i=st.integers(0, SLOTS - 1), offset=st.integers(0, 100))
    def commit(self, i, offset) -> None:
        self.deliver()
        s = self.slots[i]
        g = self.coord._groups.get(G)
        before = g.state if g is not None else None
        try:
            self.coord.commit_offsets(G, s.generation, s.member_id, {("t", i): (offset, None)})
        except GroupError:
            return
        # Accepted only from a member of the current generation, never mid-assignment.
        if s.generation >= 0:
            assert before in (co.STABLE, co.PREPARING)
        assert self.coord.fetch_offsets(G, [("t", i)]) == {("t", i): (offset, None)}

    @rule(i=st.integers(0, SLOTS - 1))
    def leave(self, i) -> None:
        self.deliver()
        s = self.slots[i]
        try:
            self.coord.leave_group(G, [s.member_id])
        except UnknownMemberError:
            pass
        s.member_id, s.generation = "", -1
        self.deliver()

    @precondition(lambda self: any(f is not None and not f.done() for f in self.pending()))
    @rule(data=st.data())
    def cancel(self, data) -> None:
        """A waiter that went away (an asyncio task cancelled with its connection)."""
        waiting = [f for f in self.pending() if f is not None and not f.done()]
        data.draw(st.sampled_from(waiting)).cancel()
        self.deliver()

    @rule(seconds=st.sampled_from([0.5, 2.0, 3.5, 7.0, 11.0, 31.0]))
    def tick(self, seconds) -> None:
        self.clock.t += seconds
        self.coord.advance()
        self.deliver()

    def pending(self) -> list[Future | None]:
        return [s.join for s in self.slots] + [s.sync[0] if s.sync else None
                                               for s in self.slots]

    # ------------------------------------------------------------------ invariants
    @invariant()
    def state_machine_is_consistent(self) -> None:
        if self.coord is None:
            return
        g = self.coord._groups.get(G)
        if g is None:
            return
        live = {(kind, key, token) for _, _, kind, gid, key, token in self.coord._heap
                if gid == G}
        assert g.generation >= self.last_generation
        self.last_generation = g.generation
        if g.state == co.EMPTY:
            assert not g.members and g.leader_id is None
        if g.state in (co.COMPLETING, co.STABLE):
            assert g.members and g.leader_id in g.members
            assert g.protocol is not None
            assert all(g.protocol in {n for n, _ in m.protocols} for m in g.members.values())
        if g.state == co.PREPARING:
            assert ("join", "", g.join_token) in live, "rebalance with no deadline"
        if g.state == co.COMPLETING:
            assert ("sync", "", g.sync_token) in live, "assignment wait with no deadline"
        assert g.pending_sync <= set(g.members)
        for m in g.members.values():
            if m.join_future is not None:
                assert g.state == co.PREPARING, "join waiter outside PreparingRebalance"
            if m.sync_future is not None:
                assert g.state == co.COMPLETING, "sync waiter outside CompletingRebalance"
            assert m.scheduled_at is not None and m.scheduled_at <= m.session_deadline
            assert ("session", m.member_id, m.session_token) in live, "member never expires"
        for mid, (_, token) in g.pending.items():
            assert ("pending", mid, token) in live

    def teardown(self) -> None:
        if self.coord is None:
            return
        try:
            # Left alone, every member times out: the group must drain, answering everyone.
            for _ in range(6):
                self.clock.t += 40.0
                self.coord.advance()
            self.deliver()
            assert all(f.done() for f in self.futures), "a waiter was never answered"
            g = self.coord._groups.get(G)
            assert g is None or (g.state == co.EMPTY and not g.members and not g.pending)
        finally:
            self.coord.close()


CoordinatorMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None)
TestCoordinatorMachine = CoordinatorMachine.TestCase
