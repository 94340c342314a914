"""The consumer-group coordinator: Kafka's classic group protocol, one call per wire API.

The same object serves embedded consumers (threads blocking on futures) and the Kafka wire
server (``asyncio.wrap_future``), so an embedded consumer and a Java client can share a group.
Like Kafka's broker it never looks inside member metadata or assignments: the leader member
computes the plan, the coordinator only runs the state machine::

    Empty --join--> PreparingRebalance --all rejoined / timeout--> CompletingRebalance
    CompletingRebalance --leader sync--> Stable --join/leave/expiry--> PreparingRebalance

Static members (KIP-345, ``group.instance.id``) are Kafka's too: a known instance id joining
without a member id replaces its old member id in place (see :meth:`_replace_static`), and
every request naming an instance id is checked against its current holder (FENCED_INSTANCE_ID
for a replaced one).

Everything is guarded by one lock. Time-based transitions (session expiry, rebalance timeout,
initial rebalance delay, members that never sync) sit in a heap of deadlines that
:meth:`GroupCoordinator.advance` drains; :meth:`GroupCoordinator.start` runs a thread that sleeps
on a condition until the earliest deadline, so an idle coordinator costs nothing and tests
drive the same code with a fake clock.

Futures are completed only after the lock is released: a future's callbacks run in the
completing thread, and a callback that calls back into the coordinator must not deadlock.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future

from logmq.broker.groups.admin import GroupAdmin
from logmq.broker.groups.model import (
    GroupDescription,
    JoinResult,
    MemberDescription,
    _Done,
    _Group,
    _Member,
    _resolved,
    leaving_member,
    select_protocol,
    supports,
    validate_member,
)
from logmq.broker.groups.offsets import Offsets, OffsetStore
from logmq.broker.groups.states import COMPLETING, EMPTY, PREPARING, STABLE, set_state
from logmq.broker.names import check_group_id, group_id_problem
from logmq.config import BROKER_KEYS
from logmq.errors import (
    BrokerClosedError,
    FencedInstanceIdError,
    GroupError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    InvalidGroupIdError,
    InvalidSessionTimeoutError,
    MemberIdRequiredError,
    RebalanceInProgressError,
    UnknownMemberError,
)

__all__ = ["GroupCoordinator", "JoinResult", "GroupDescription", "MemberDescription"]


class GroupCoordinator(GroupAdmin):
    """Kafka's classic GroupCoordinator for every group of one broker.

    ``offsets`` persists committed offsets; group membership itself is deliberately not
    persisted: after a restart members get UNKNOWN_MEMBER_ID on their next heartbeat and
    rejoin, which every Kafka client already handles (it is what a coordinator failover
    looks like).
    """

    def __init__(
        self,
        offsets: OffsetStore,
        *,
        time_fn: Callable[[], float] = time.monotonic,
        initial_rebalance_delay_ms: int = BROKER_KEYS["group_initial_rebalance_delay_ms"].default,
        min_session_timeout_ms: int = BROKER_KEYS["group_min_session_timeout_ms"].default,
        max_session_timeout_ms: int = BROKER_KEYS["group_max_session_timeout_ms"].default,
    ) -> None:
        self.offsets = offsets
        self._time = time_fn
        self.initial_rebalance_delay = max(0, initial_rebalance_delay_ms) / 1000
        self.min_session_timeout_ms = min_session_timeout_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._groups: dict[str, _Group] = {}
        # (when, seq, kind, group_id, key, token); stale entries are skipped when popped
        self._heap: list[tuple[float, int, str, str, str, int]] = []
        self._seq = itertools.count()
        self._tokens = itertools.count(1)
        self._closed = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Run deadlines in a daemon thread (embedded use and the wire server both need it)."""
        with self._lock:
            if self._closed:
                raise BrokerClosedError("group coordinator is closed")
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="logmq-groups", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - self._time()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
            self.advance()

    def close(self) -> None:
        """Stop the deadline thread and fail every waiting join/sync with BrokerClosedError."""
        done = _Done()
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
            thread, self._thread = self._thread, None
            for g in self._groups.values():
                for m in g.members.values():
                    done.error(m.join_future, BrokerClosedError("group coordinator closed"))
                    done.error(m.sync_future, BrokerClosedError("group coordinator closed"))
                    m.join_future = m.sync_future = None
            self._heap.clear()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        done.flush()

    # topic listener: the facade calls this when the storage manager deletes a topic
    def on_topic_deleted(self, topic: str) -> None:
        self.delete_topic_offsets(topic)

    # ------------------------------------------------------------------ scheduling
    def _push(self, when: float, kind: str, group_id: str, key: str, token: int) -> None:
        if not self._heap or when < self._heap[0][0]:
            self._cond.notify_all()
        heapq.heappush(self._heap, (when, next(self._seq), kind, group_id, key, token))

    def _touch(self, m: _Member, group_id: str, now: float) -> None:
        """Reset a member's session deadline (any request from it proves it is alive).

        Only an earlier deadline needs a new heap entry; a later one is picked up when the
        existing entry fires and finds the deadline moved, so heartbeats do not grow the heap.
        """
        m.session_deadline = now + m.session_timeout
        if m.scheduled_at is None or m.session_deadline < m.scheduled_at:
            self._schedule_session(m, group_id)

    def _schedule_session(self, m: _Member, group_id: str) -> None:
        m.session_token = next(self._tokens)
        m.scheduled_at = m.session_deadline
        self._push(m.session_deadline, "session", group_id, m.member_id, m.session_token)

    def advance(self, now: float | None = None) -> None:
        """Process every deadline due at ``now`` (default: the clock)."""
        done = _Done()
        with self._lock:
            if self._closed:
                return
            if now is None:
                now = self._time()
            while self._heap and self._heap[0][0] <= now:
                _, _, kind, gid, key, token = heapq.heappop(self._heap)
                g = self._groups.get(gid)
                if g is None:
                    continue
                if kind == "session":
                    self._on_session_deadline(g, key, token, now, done)
                elif kind == "pending":
                    hit = g.pending.get(key)
                    if hit is not None and hit[1] == token:
                        del g.pending[key]
                        self._maybe_complete_join(g, now, done)
                elif kind == "join":
                    if token == g.join_token and g.state == PREPARING:
                        self._on_join_deadline(g, now, done)
                elif kind == "sync":
                    if token == g.sync_token and g.state in (COMPLETING, STABLE):
                        gone = [mid for mid in g.members if mid in g.pending_sync]
                        if gone:
                            for mid in gone:
                                self._remove_member(g, g.members[mid], done)
                            self._on_membership_change(g, now, done)
        done.flush()

    def _on_session_deadline(self, g: _Group, member_id: str, token: int, now: float,
                             done: _Done) -> None:
        m = g.members.get(member_id)
        if m is None or m.session_token != token:
            return
        m.scheduled_at = None
        if m.join_future is not None or m.sync_future is not None:
            # A member parked in JoinGroup/SyncGroup cannot heartbeat; the rebalance timeout
            # (join) or the leader's sync (sync) bounds its wait instead.
            self._touch(m, g.group_id, now)
            return
        if m.session_deadline > now:
            self._schedule_session(m, g.group_id)
            return
        self._remove_member(g, m, done)
        self._on_membership_change(g, now, done)

    def _on_join_deadline(self, g: _Group, now: float, done: _Done) -> None:
        if g.initial_delay and g.new_member_added and g.delay_remaining > 0:
            # Kafka's group.initial.rebalance.delay.ms: each wave of new joiners buys another
            # delay, bounded by the rebalance timeout, so a starting fleet lands in one
            # generation instead of rebalancing once per member.
            delay = min(self.initial_rebalance_delay, g.delay_remaining)
            g.delay_remaining -= delay
            g.new_member_added = False
            self._schedule_join(g, now + delay)
            return
        self._complete_join(g, now, done)

    def _schedule_join(self, g: _Group, when: float) -> None:
        g.join_token = next(self._tokens)
        self._push(when, "join", g.group_id, "", g.join_token)

    # ------------------------------------------------------------------ state machine
    def _group_rebalance_timeout(self, g: _Group) -> float:
        return max((m.rebalance_timeout for m in g.members.values()), default=0.0)

    def _prepare_rebalance(self, g: _Group, now: float, done: _Done) -> None:
        if g.state == COMPLETING:
            # Assignments of the generation being synced are void; waiting followers rejoin.
            for m in g.members.values():
                m.assignment = b""
                if m.sync_future is not None:
                    done.error(m.sync_future, RebalanceInProgressError(
                        f"group {g.group_id!r} is rebalancing"))
                    m.sync_future = None
                    # Answering a parked request starts a fresh session, as in Kafka: the
                    # member could not heartbeat while parked and needs time to rejoin.
                    self._touch(m, g.group_id, now)
        was_empty = g.state == EMPTY
        set_state(g, PREPARING)
        g.pending_sync.clear()
        timeout = self._group_rebalance_timeout(g)
        if was_empty and self.initial_rebalance_delay > 0:
            g.initial_delay = True
            g.new_member_added = False
            g.delay_remaining = max(timeout - self.initial_rebalance_delay, 0.0)
            self._schedule_join(g, now + self.initial_rebalance_delay)
        else:
            g.initial_delay = False
            self._schedule_join(g, now + timeout)
            self._maybe_complete_join(g, now, done)

    def _maybe_complete_join(self, g: _Group, now: float, done: _Done) -> None:
        if g.state != PREPARING or g.initial_delay or g.pending:
            return
        if all(m.join_future is not None for m in g.members.values()):
            self._complete_join(g, now, done)

    def _complete_join(self, g: _Group, now: float, done: _Done) -> None:
        for m in [m for m in g.members.values()
                  if m.join_future is None and m.group_instance_id is None]:
            self._remove_member(g, m, done)  # did not rejoin within the rebalance timeout
        joined = [mid for mid, m in g.members.items() if m.join_future is not None]
        if g.members and not joined:
            # Only static members that did not rejoin are left: like Kafka, keep them (their
            # session timeout removes them) and wait another rebalance timeout for a joiner.
            self._schedule_join(g, now + self._group_rebalance_timeout(g))
            return
        g.join_token = next(self._tokens)  # cancel the pending join deadline
        g.initial_delay = False
        g.generation += 1
        if not g.members:
            set_state(g, EMPTY)
            g.protocol = None
            g.leader_id = None
            return
        g.protocol = select_protocol(g)
        if g.leader_id not in joined:
            g.leader_id = joined[0]
        set_state(g, COMPLETING)
        g.pending_sync = set(g.members)
        g.sync_token = next(self._tokens)
        self._push(now + self._group_rebalance_timeout(g), "sync", g.group_id, "", g.sync_token)
        roster = [(m.member_id, m.group_instance_id, m.metadata_for(g.protocol))
                  for m in g.members.values()]
        for m in g.members.values():
            m.assignment = b""
            fut, m.join_future = m.join_future, None
            done.result(fut, self._join_result(g, m, roster))
            self._touch(m, g.group_id, now)

    def _join_result(self, g: _Group, m: _Member,
                     roster: list[tuple[str, str | None, bytes]] | None = None) -> JoinResult:
        if roster is None and m.member_id == g.leader_id:
            roster = [(x.member_id, x.group_instance_id, x.metadata_for(g.protocol))
                      for x in g.members.values()]
        return JoinResult(None, g.generation, g.protocol or "", g.leader_id or "", m.member_id,
                          (roster or []) if m.member_id == g.leader_id else [])

    def _remove_member(self, g: _Group, m: _Member, done: _Done) -> None:
        """Drop a member; the caller decides what the group does next."""
        g.members.pop(m.member_id, None)
        g.pending_sync.discard(m.member_id)
        err = UnknownMemberError(f"member {m.member_id!r} was removed from {g.group_id!r}")
        done.result(m.join_future, JoinResult(err, -1, "", "", m.member_id, []))
        done.error(m.sync_future, err)
        m.join_future = m.sync_future = None
        m.session_token = -1
        if m.group_instance_id is not None and g.static.get(m.group_instance_id) == m.member_id:
            del g.static[m.group_instance_id]
        if g.leader_id == m.member_id:
            g.leader_id = next(iter(g.members), None)

    def _on_membership_change(self, g: _Group, now: float, done: _Done) -> None:
        if g.state in (STABLE, COMPLETING):
            self._prepare_rebalance(g, now, done)
        elif g.state == PREPARING:
            self._maybe_complete_join(g, now, done)

    # ------------------------------------------------------------------ JoinGroup
    def join_group(
        self,
        group_id: str,
        member_id: str,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        client_id: str = "",
        client_host: str = "",
        require_known_member_id: bool = False,
        group_instance_id: str | None = None,
    ) -> Future[JoinResult]:
        """JoinGroup. Errors come back in ``JoinResult.error`` like the wire response's code;
        only BrokerClosedError is raised by ``result()``."""
        done = _Done()
        protocols = [(str(n), bytes(meta)) for n, meta in protocols]

        def fail(err: Exception, mid: str = member_id) -> Future[JoinResult]:
            return _resolved(JoinResult(err, -1, "", "", mid, []))

        with self._lock:
            if self._closed:
                return _resolved(exc=BrokerClosedError("group coordinator is closed"))
            now = self._time()
            problem = group_id_problem(group_id)  # Kafka: INVALID_GROUP_ID before anything
            if problem:
                return fail(InvalidGroupIdError(problem))
            if not (0 < session_timeout_ms and self.min_session_timeout_ms <= session_timeout_ms
                    <= self.max_session_timeout_ms):
                return fail(InvalidSessionTimeoutError(
                    f"session timeout {session_timeout_ms} ms outside "
                    f"[{self.min_session_timeout_ms}, {self.max_session_timeout_ms}]"))
            g = self._groups.get(group_id)
            if g is None:
                if member_id:
                    return fail(UnknownMemberError(f"unknown member {member_id!r}"))
                # Registered only once the join is accepted: a rejected first join must not
                # leave an Empty group behind in ListGroups.
                g = _Group(group_id)
            if not supports(g, member_id, protocol_type, protocols):
                return fail(InconsistentGroupProtocolError(
                    f"protocol type {protocol_type!r} / protocols "
                    f"{[n for n, _ in protocols]} do not match group {group_id!r}"))
            self._groups.setdefault(group_id, g)
            session = session_timeout_ms / 1000
            # Kafka: rebalance timeout defaults to the session timeout for old clients (v0).
            rebalance = (rebalance_timeout_ms if rebalance_timeout_ms > 0
                         else session_timeout_ms) / 1000

            if not member_id:
                new_id = f"{group_instance_id or client_id or 'member'}-{uuid.uuid4()}"
                old_id = (g.static.get(group_instance_id) if group_instance_id is not None
                          else None)
                if old_id is not None:
                    fut = self._replace_static(g, old_id, new_id, protocol_type, protocols,
                                               session, rebalance, client_id, client_host,
                                               now, done)
                elif require_known_member_id and group_instance_id is None:
                    # JoinGroup v4+: hand out the id first, so a client that times out and
                    # retries does not leave a phantom member behind for a session timeout.
                    token = next(self._tokens)
                    g.pending[new_id] = (now + session, token)
                    self._push(now + session, "pending", group_id, new_id, token)
                    return fail(MemberIdRequiredError(new_id), new_id)
                else:
                    fut = self._add_member(g, new_id, group_instance_id, client_id,
                                           client_host, protocol_type, protocols, session,
                                           rebalance, now, done)
            elif member_id in g.pending:
                del g.pending[member_id]
                fut = self._add_member(g, member_id, group_instance_id, client_id, client_host,
                                       protocol_type, protocols, session, rebalance, now, done)
            else:
                try:
                    m = validate_member(g, member_id, group_instance_id)
                except GroupError as e:
                    return fail(e)
                fut = self._rejoin(g, m, protocol_type, protocols, session, rebalance,
                                   client_id, client_host, group_instance_id, now, done)
        done.flush()
        return fut

    def _add_member(self, g: _Group, member_id: str, instance: str | None, client_id: str,
                    client_host: str, protocol_type: str, protocols: list[tuple[str, bytes]],
                    session: float, rebalance: float, now: float, done: _Done) -> Future:
        m = _Member(member_id, instance, client_id, client_host, protocol_type, protocols,
                    session, rebalance)
        if instance is not None:
            g.static[instance] = member_id
        fut: Future = Future()
        m.join_future = fut
        if not g.members:
            g.protocol_type = protocol_type
        g.members[member_id] = m
        if g.leader_id is None:
            g.leader_id = member_id
        if g.state == PREPARING and g.initial_delay:
            g.new_member_added = True
        self._touch(m, g.group_id, now)
        if g.state == PREPARING:
            self._maybe_complete_join(g, now, done)
        else:
            self._prepare_rebalance(g, now, done)
        return fut

    def _replace_static(self, g: _Group, old_id: str, new_id: str, protocol_type: str,
                        protocols: list[tuple[str, bytes]], session: float, rebalance: float,
                        client_id: str, client_host: str, now: float, done: _Done) -> Future:
        """A known ``group.instance.id`` joins without a member id: a restarted static member.

        As in Kafka (KIP-345) the new member id takes the old one's place, keeps its
        assignment, and whoever still waits under the old id is fenced. In a Stable group
        whose protocol does not change that is all: the member gets the current generation
        back at once and its SyncGroup returns its old assignment, so the other members see
        no rebalance at all (the point of static membership: rolling restarts). The answer
        names the old leader id, as Kafka does for JoinGroup < v9, so a restarted leader
        does not recompute an assignment a Stable group would never hand out.
        """
        old = g.members.pop(old_id)
        fenced = FencedInstanceIdError(f"member {old_id!r} was replaced by {new_id!r}")
        done.result(old.join_future, JoinResult(fenced, -1, "", "", old_id, []))
        done.error(old.sync_future, fenced)
        old.join_future = old.sync_future = None
        old.session_token = -1
        m = _Member(new_id, old.group_instance_id, client_id or old.client_id,
                    client_host or old.client_host, protocol_type, protocols, session,
                    rebalance, assignment=old.assignment)
        g.members[new_id] = m
        g.static[m.group_instance_id or ""] = new_id
        if g.pending_sync and old_id in g.pending_sync:
            g.pending_sync.discard(old_id)
            g.pending_sync.add(new_id)
        prev_leader = g.leader_id
        if prev_leader == old_id:
            g.leader_id = new_id
        self._touch(m, g.group_id, now)
        fut: Future = Future()
        m.join_future = fut
        if g.state == STABLE and select_protocol(g) == g.protocol:
            m.join_future = None
            return _resolved(JoinResult(None, g.generation, g.protocol or "", prev_leader or "",
                                        new_id, []))
        if g.state == PREPARING:
            self._maybe_complete_join(g, now, done)
        else:
            self._prepare_rebalance(g, now, done)
        return fut

    def _rejoin(self, g: _Group, m: _Member, protocol_type: str,
                protocols: list[tuple[str, bytes]], session: float, rebalance: float,
                client_id: str, client_host: str, instance: str | None, now: float,
                done: _Done) -> Future:
        same = m.protocols == protocols
        self._touch(m, g.group_id, now)
        if g.state == STABLE and same and m.member_id != g.leader_id:
            # A follower that missed its JoinGroup answer: nothing changed, tell it again.
            return _resolved(self._join_result(g, m))
        if g.state == COMPLETING and same:
            return _resolved(self._join_result(g, m))
        # Changed metadata, or the leader (it may have new subscriptions to act on), or a
        # member answering the rebalance: update it and (re)start the join phase.
        m.protocols = protocols
        m.protocol_type = protocol_type
        m.session_timeout = session
        m.rebalance_timeout = rebalance
        m.client_id, m.client_host = client_id or m.client_id, client_host or m.client_host
        if instance is not None:
            m.group_instance_id = instance
        if len(g.members) == 1:
            g.protocol_type = protocol_type
        fut: Future = Future()
        old, m.join_future = m.join_future, fut
        # A duplicate JoinGroup supersedes the earlier one; whoever still waits on it rejoins.
        done.result(old, JoinResult(RebalanceInProgressError("superseded by a newer JoinGroup"),
                                    -1, "", "", m.member_id, []))
        if g.state == PREPARING:
            self._maybe_complete_join(g, now, done)
        else:
            self._prepare_rebalance(g, now, done)
        return fut

    # ------------------------------------------------------------------ SyncGroup
    def sync_group(self, group_id: str, generation_id: int, member_id: str,
                   assignments: dict[str, bytes] | None,
                   group_instance_id: str | None = None) -> Future[bytes]:
        """SyncGroup: the leader's call carries every member's assignment; all callers get
        their own. Errors are raised by ``result()``."""
        done = _Done()
        with self._lock:
            if self._closed:
                return _resolved(exc=BrokerClosedError("group coordinator is closed"))
            now = self._time()
            problem = group_id_problem(group_id)
            if problem:
                return _resolved(exc=InvalidGroupIdError(problem))
            g = self._groups.get(group_id)
            try:
                m = validate_member(g, member_id, group_instance_id)
            except GroupError as e:
                return _resolved(exc=e)
            assert g is not None
            if generation_id != g.generation:
                return _resolved(exc=IllegalGenerationError(
                    f"generation {generation_id} is not {g.group_id!r}'s {g.generation}"))
            if g.state == PREPARING:
                return _resolved(exc=RebalanceInProgressError(
                    f"group {group_id!r} is rebalancing"))
            self._touch(m, g.group_id, now)
            g.pending_sync.discard(member_id)
            if g.state == STABLE:
                return _resolved(m.assignment)
            # CompletingRebalance
            fut: Future = Future()
            done.error(m.sync_future, RebalanceInProgressError("superseded by a newer SyncGroup"))
            m.sync_future = fut
            if member_id == g.leader_id:
                plan = assignments or {}
                for x in g.members.values():
                    x.assignment = bytes(plan.get(x.member_id, b""))
                    if x.sync_future is not None:
                        done.result(x.sync_future, x.assignment)
                        x.sync_future = None
                        self._touch(x, g.group_id, now)
                set_state(g, STABLE)
        done.flush()
        return fut

    # ------------------------------------------------------------------ Heartbeat / Leave
    def heartbeat(self, group_id: str, generation_id: int, member_id: str,
                  group_instance_id: str | None = None) -> None:
        """Heartbeat; RebalanceInProgressError is how members learn they must rejoin."""
        with self._lock:
            self._check_open()
            check_group_id(group_id)
            g = self._groups.get(group_id)
            m = validate_member(g, member_id, group_instance_id)
            assert g is not None
            if generation_id != g.generation:
                raise IllegalGenerationError(
                    f"generation {generation_id} is not {group_id!r}'s {g.generation}")
            self._touch(m, group_id, self._time())
            if g.state == PREPARING:
                raise RebalanceInProgressError(f"group {group_id!r} is rebalancing")

    def leave_group(self, group_id: str, member_ids: list[str]) -> None:
        """LeaveGroup by member ids. Known members are removed even when some ids are
        unknown; then UnknownMemberError names the unknown ones."""
        errors = self.leave_members(group_id, [(mid, None) for mid in member_ids])
        unknown = [mid for mid, e in zip(member_ids, errors, strict=True) if e is not None]
        if unknown:
            raise UnknownMemberError(f"unknown members {unknown} in group {group_id!r}")

    def leave_members(self, group_id: str,
                      members: list[tuple[str, str | None]]) -> list[GroupError | None]:
        """LeaveGroup v3+: ``(member_id, group_instance_id)`` pairs, one error (or None) each.

        KIP-345 as Kafka does it: an entry with an instance id removes the static member that
        holds it now (the member id may be empty: an operator removing an instance by name)
        unless it names another member id (FENCED_INSTANCE_ID: a zombie must not remove its
        successor); an entry without one removes that member id, static or not.
        """
        done = _Done()
        out: list[GroupError | None] = []
        with self._lock:
            self._check_open()
            check_group_id(group_id)
            now = self._time()
            g = self._groups.get(group_id)
            changed = False
            for mid, instance in members:
                if g is not None and instance is None and mid in g.pending:
                    del g.pending[mid]
                    changed = True
                    out.append(None)
                    continue
                try:
                    m = leaving_member(g, mid, instance)
                except GroupError as e:
                    out.append(e)
                    continue
                assert g is not None
                self._remove_member(g, m, done)
                changed = True
                out.append(None)
            if g is not None and changed:
                self._on_membership_change(g, now, done)
        done.flush()
        return out

    # ------------------------------------------------------------------ offsets
    def commit_offsets(self, group_id: str, generation_id: int, member_id: str,
                       offsets: Offsets, group_instance_id: str | None = None) -> None:
        """OffsetCommit, durable when it returns.

        Accepted from the current generation in Stable *and* PreparingRebalance: consumers
        commit from their revoke callback while the group is rebalancing, and the generation
        only moves on once they rejoin, so such a commit is still from the partition's owner.
        The store write happens under the lock so a commit validated against one generation
        cannot land after the next generation's owner has committed.
        """
        with self._lock:
            self._check_open()
            g = self._groups.get(group_id)
            simple = generation_id < 0 and (g is None or not g.members)
            if not simple:
                m = validate_member(g, member_id, group_instance_id)
                assert g is not None
                if generation_id != g.generation:
                    raise IllegalGenerationError(
                        f"generation {generation_id} is not {group_id!r}'s {g.generation}")
                if g.state == COMPLETING:
                    raise RebalanceInProgressError(f"group {group_id!r} is completing a "
                                                   "rebalance; commit after SyncGroup")
                self._touch(m, group_id, self._time())
            self.offsets.commit(group_id, dict(offsets))
