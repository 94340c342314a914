"""KIP-932 share groups over the Kafka wire: ShareGroupHeartbeat (76), ShareGroupDescribe
(77), ShareFetch (78) and ShareAcknowledge (79), on logmq's queue engine.

Records, locks, delivery counts and dead letters are the engine's
(:mod:`logmq.broker.queues`), so one share group can have Kafka share consumers and embedded
``log.queue`` members at once: they acquire from the same window and never hold the same
record together. Membership and share sessions are in :mod:`logmq.server.share_state`.

Acknowledge types map onto the engine's verbs: ACCEPT (1) ack, RELEASE (2) release (the
delivery counts; available again at once), REJECT (3) reject (dead-lettered or archived, see
``logmq.dead.letter.topic``), RENEW (4, v2) renew; GAP (0) offsets were never handed out and
are ignored. Engine calls (LMDB commits) run on a small thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

from logmq.broker.queues.state import group_name_problem
from logmq.codec.records import encode_batch
from logmq.errors import LogMQError, RecordStateError, UnknownTopicError
from logmq.kafka_codes import ErrorCode as _E
from logmq.server.share_admin import ShareAdminHandlers
from logmq.server.share_state import (
    ShareRegistry,
    ShareSession,
    WireMember,
    WireShareGroup,
    share_pool,
)

if TYPE_CHECKING:
    from logmq.broker.broker import Broker
    from logmq.broker.queues.group import ShareGroup
    from logmq.broker.queues.model import Member

__all__ = ["ShareHandlers", "SHARE_APIS"]

#: api key -> (lo, hi): what Kafka 4.4 serves (its ApiVersions)
SHARE_APIS = {76: (1, 1), 77: (1, 1), 78: (1, 2), 79: (1, 2)}

NONE = _E.NONE
# Kafka 4 codes not yet in logmq.kafka_codes (values from Kafka 4.4's Errors)
INVALID_RECORD_STATE = 121
SHARE_SESSION_NOT_FOUND = 122
INVALID_SHARE_SESSION_EPOCH = 123
INVALID_REQUEST = int(_E.INVALID_REQUEST)
UNKNOWN_MEMBER_ID = int(_E.UNKNOWN_MEMBER_ID)
UNKNOWN_TOPIC_ID = int(_E.UNKNOWN_TOPIC_ID)
GROUP_ID_NOT_FOUND = int(_E.GROUP_ID_NOT_FOUND)
FENCED_MEMBER_EPOCH = int(_E.FENCED_MEMBER_EPOCH)
INVALID_GROUP_ID = int(_E.INVALID_GROUP_ID)
_ALL_OPS = -2147483648
_ACTIONS = {1: "ack", 2: "release", 3: "reject", 4: "renew"}
#: records acquired by one ShareFetch when the client sets no max_records
DEFAULT_MAX_RECORDS = 500
#: members of one share group at most (Kafka's group.share.max.size default); more get
#: GROUP_MAX_SIZE_REACHED
MAX_MEMBERS = 200
#: longest a ShareFetch waits for records, whatever max_wait_ms says (ms; the server's
#: max_fetch_wait_ms cuts it further)
MAX_WAIT_MS = 30_000
GROUP_MAX_SIZE_REACHED = int(_E.GROUP_MAX_SIZE_REACHED)
UNKNOWN_TOPIC_OR_PARTITION = int(_E.UNKNOWN_TOPIC_OR_PARTITION)


# one acquisition handed to the wire: (partition, offset, delivery count, record)
Acquired = tuple[int, int, int, Any]


def _ack_plan(batches: list[dict], em: Member | None, p: int
              ) -> tuple[dict[str, list[tuple[int, int, int]]], bool]:
    """Tokens per engine action from a partition's acknowledgement batches, and whether some
    offset named was not held by the member (INVALID_RECORD_STATE)."""
    plan: dict[str, list[tuple[int, int, int]]] = {}
    bad = False
    held = em.held if em is not None else {}
    for b in batches:
        first, last = b["first_offset"], b["last_offset"]
        types = list(b.get("acknowledge_types") or [])
        n = last - first + 1
        if n <= 0 or not types or (len(types) != 1 and len(types) != n):
            bad = True
            continue
        if len(types) == 1:  # one type for the range: the work is what the member holds
            if types[0] == 0:
                continue
            action = _ACTIONS.get(types[0])
            mine = sorted(off for (pp, off) in held if pp == p and first <= off <= last)
            if action is None or len(mine) != n:
                bad = True
            if action is not None:
                plan.setdefault(action, []).extend((p, off, held[(p, off)].count)
                                                   for off in mine)
            continue
        for i, t in enumerate(types):  # one type per offset: bounded by the request's size
            if t == 0:
                continue
            action = _ACTIONS.get(t)
            rec = held.get((p, first + i))
            if action is None or rec is None:
                bad = True
                continue
            plan.setdefault(action, []).append((p, first + i, rec.count))
    return plan, bad


def _settle(sg: ShareGroup, em: Member, plan: dict[str, list[tuple[int, int, int]]]) -> bool:
    ok = True
    for action, tokens in plan.items():
        try:
            sg.settle(em, tokens, action, count_attempt=True)
        except RecordStateError:
            ok = False
    return ok


def _encode_partition(got: list[Acquired]) -> tuple[bytes, list[dict]]:
    """One v2 batch of the acquired records (their offsets kept as deltas) and their ranges."""
    got.sort(key=lambda a: a[1])
    base = got[0][1]
    data = encode_batch([(r.key, r.value, r.headers) for _, _, _, r in got],
                        base_offset=base, timestamps=[r.timestamp for _, _, _, r in got],
                        offset_deltas=[off - base for _, off, _, _ in got])
    ranges: list[dict] = []
    for _, off, count, _ in got:
        if ranges and ranges[-1]["last_offset"] == off - 1 \
                and ranges[-1]["delivery_count"] == count:
            ranges[-1]["last_offset"] = off
        else:
            ranges.append({"first_offset": off, "last_offset": off, "delivery_count": count})
    return data, ranges


class ShareHandlers(ShareAdminHandlers):
    """Share-group API handlers; mixed into ``Handlers`` (which sets these attributes)."""

    broker: Broker
    host: str
    port: int
    stopping: bool
    _polls: set[asyncio.Event]

    @property
    def shares(self) -> ShareRegistry:
        reg: ShareRegistry | None = getattr(self, "_share_registry", None)
        if reg is None:
            reg = ShareRegistry(self.broker)
            self._share_registry = reg
        return reg

    def share_table(self) -> dict[int, Any]:
        return {76: self.share_group_heartbeat, 77: self.share_group_describe,
                78: self.share_fetch, 79: self.share_acknowledge, **self.share_admin_table()}

    def _endpoints(self) -> list[dict]:
        return [{"node_id": 0, "host": self.host, "port": self.port, "rack": None}]

    # ------------------------------------------------------------------ heartbeat
    def share_group_heartbeat(self, body: dict, v: int, client: Any) -> dict:
        out: dict[str, Any] = {"throttle_time_ms": 0, "error_code": NONE, "error_message": None,
                               "member_id": None, "member_epoch": 0,
                               "heartbeat_interval_ms": 0, "assignment": None}
        gid = body.get("group_id") or ""
        bad = group_name_problem(gid)
        if bad:
            out["error_code"], out["error_message"] = INVALID_GROUP_ID, bad
            return out
        reg = self.shares
        g = reg.group(gid)
        assert g is not None
        out["heartbeat_interval_ms"] = reg.configs.get_int(gid, "share.heartbeat.interval.ms")
        mid = body.get("member_id") or ""
        epoch = body.get("member_epoch", 0)
        if epoch == -1:  # leave
            g.leave(mid)
            out.update(member_id=mid, member_epoch=-1)
            return out
        m = g.members.get(mid)
        if m is None:
            if epoch != 0:
                out["error_code"] = UNKNOWN_MEMBER_ID
                out["error_message"] = f"member {mid!r} is not in share group {gid!r}"
                return out
            if not g.members and self._classic_group(gid):
                out["error_code"] = GROUP_ID_NOT_FOUND  # what Kafka answers here
                out["error_message"] = f"group {gid!r} is a consumer group, not a share group"
                return out
            if len(g.members) >= MAX_MEMBERS:
                out["error_code"] = GROUP_MAX_SIZE_REACHED
                out["error_message"] = f"share group {gid!r} has {MAX_MEMBERS} members"
                return out
            m = WireMember(mid or uuid.uuid4().hex, client.client_id or "",
                           f"/{client.host}")
            g.members[m.member_id] = m
            g.epoch += 1
        elif epoch > m.epoch:
            out["error_code"] = FENCED_MEMBER_EPOCH
            return out
        m.last_seen = time.monotonic()
        m.rack_id = body.get("rack_id") or m.rack_id
        subs = body.get("subscribed_topic_names")
        if subs is not None and sorted(subs) != m.subscribed:
            m.subscribed = sorted(subs)
            g.epoch += 1
        want = g.compute_assignment(m.subscribed)
        changed = want != m.assignment
        if changed:
            if m.epoch == g.epoch:
                g.epoch += 1
            m.assignment = want  # (the engine group opens at the first ShareFetch, as in
            # Kafka: share.auto.offset.reset applies from there)
        if changed or epoch != m.epoch or m.epoch == 0:
            m.epoch = g.epoch
            g.assignment_epoch = g.epoch
            out["assignment"] = {"topic_partitions": [
                {"topic_id": reg.topic_ids.id_of(t), "partitions": ps}
                for t, ps in sorted(m.assignment.items())]}
        out.update(member_id=m.member_id, member_epoch=m.epoch)
        return out

    def share_listing(self, body: dict) -> list[dict]:
        """ListGroups entries of the share groups (wire members now, or engine state),
        honouring v4's states filter and v5's types filter."""
        types = [t.lower() for t in body.get("types_filter") or []]
        if types and "share" not in types:
            return []
        states = [s.lower() for s in body.get("states_filter") or []]
        out = []
        for gid in self.shares.all_group_ids():
            g = self.shares.groups.get(gid)
            state = g.state if g is not None else "Empty"
            if states and state.lower() not in states:
                continue
            out.append({"group_id": gid, "protocol_type": "share", "group_state": state,
                        "group_type": "share"})
        return out

    def _classic_group(self, gid: str) -> bool:
        """A consumer group (classic or KIP-848) already has this id."""
        coordinator = getattr(self, "coordinator", None)
        if coordinator is None:
            return False
        return any(g == gid for g, _pt, _state in coordinator.list_groups())

    # ------------------------------------------------------------------ describe
    def share_group_describe(self, body: dict, v: int, client: Any) -> dict:
        reg = self.shares
        groups = []
        for gid in body.get("group_ids") or []:
            g = reg.group(gid, create=False)
            entry: dict[str, Any] = {
                "error_code": NONE, "error_message": None, "group_id": gid,
                "group_state": "Empty", "group_epoch": 0, "assignment_epoch": 0,
                "assignor_name": "simple", "members": [], "authorized_operations": _ALL_OPS}
            bad = group_name_problem(gid)
            if bad:
                entry.update(error_code=INVALID_GROUP_ID, error_message=bad, group_state="Dead")
            elif g is None and not reg.known_share_group(gid):
                entry["error_code"] = GROUP_ID_NOT_FOUND
                entry["error_message"] = f"share group {gid!r} not found"
                entry["group_state"] = "Dead"
            if entry["error_code"] == NONE:
                entry["members"].extend(self._embedded_members(gid))
                if entry["members"]:
                    entry["group_state"] = "Stable"
            if g is not None:
                entry.update(group_epoch=g.epoch, assignment_epoch=g.assignment_epoch)
                if g.members:
                    entry["group_state"] = "Stable"
                for m in g.members.values():
                    entry["members"].append({
                        "member_id": m.member_id, "rack_id": m.rack_id,
                        "member_epoch": m.epoch, "client_id": m.client_id,
                        "client_host": m.client_host, "subscribed_topic_names": m.subscribed,
                        "assignment": {"topic_partitions": [
                            {"topic_id": reg.topic_ids.id_of(t), "topic_name": t,
                             "partitions": ps} for t, ps in sorted(m.assignment.items())]}})
            groups.append(entry)
        return {"throttle_time_ms": 0, "groups": groups}

    def _embedded_members(self, gid: str) -> list[dict]:
        """``log.queue`` / RemoteQueue members of the group, as describe shows them: every
        partition of their topic, client id ``logmq-embedded``."""
        out = []
        for topic in self.shares.engine_topics(gid):
            sg = self.broker.queues.loaded_group(topic, gid)
            if sg is None:
                continue
            n = self._partitions(topic)
            for mid in list(sg.members):
                if mid.startswith("wire-"):
                    continue
                out.append({
                    "member_id": f"{mid}@{topic}", "rack_id": None, "member_epoch": 0,
                    "client_id": "logmq-embedded", "client_host": "/127.0.0.1",
                    "subscribed_topic_names": [topic],
                    "assignment": {"topic_partitions": [{
                        "topic_id": self.shares.topic_ids.id_of(topic), "topic_name": topic,
                        "partitions": list(range(n))}]}})
        return out

    # ------------------------------------------------------------------ sessions
    def _session_member(self, body: dict, out: dict, fetch: bool
                        ) -> tuple[WireShareGroup, WireMember, ShareSession] | None:
        """The member and session a ShareFetch/ShareAcknowledge names, epoch checked and
        advanced; None after putting the error in ``out``."""
        gid = body.get("group_id") or ""
        mid = body.get("member_id") or ""
        epoch = body.get("share_session_epoch", 0)
        g = self.shares.group(gid, create=False) if gid else None
        m = g.session_member(mid) if g is not None else None
        if g is None or m is None or (mid not in g.members and epoch != -1):
            # (a member that left may still close its share session, nothing else)
            out["error_code"] = UNKNOWN_MEMBER_ID
            out["error_message"] = f"member {mid!r} is not in share group {gid!r}"
            return None
        m.last_seen = time.monotonic()
        if epoch == 0:
            if not fetch:
                out["error_code"] = INVALID_SHARE_SESSION_EPOCH
                return None
            self._release_session(g, m)
            m.session = ShareSession()
        elif epoch == -1:
            if m.session is None:
                out["error_code"] = SHARE_SESSION_NOT_FOUND
                return None
        else:
            if m.session is None:
                out["error_code"] = SHARE_SESSION_NOT_FOUND
                return None
            if epoch != m.session.epoch:
                out["error_code"] = INVALID_SHARE_SESSION_EPOCH
                out["error_message"] = f"expected share session epoch {m.session.epoch}"
                return None
            m.session.epoch = epoch + 1 if epoch < 0x7FFFFFFF else 1
        return g, m, m.session

    def _release_session(self, g: WireShareGroup, m: WireMember) -> None:
        """A session ends: what the member held through it is available again."""
        for topic, em in list(m.engine.items()):
            try:
                g.engine_group(topic).remove_member(em, release=True)
            except LogMQError:
                pass
        m.engine.clear()

    def _close_session(self, g: WireShareGroup, m: WireMember) -> None:
        self._release_session(g, m)
        m.session = None
        if m.member_id in g.departed:
            g.remove(m.member_id)

    def _partitions(self, topic: str) -> int:
        try:
            return self.broker.partitions_for(topic)
        except UnknownTopicError:
            return 0

    def _resolve(self, topics: list[dict], resp: dict[bytes, dict[int, dict]],
                 blank: Any) -> list[tuple[str, int, list[dict]]]:
        """(topic, partition, ack batches) of a request; unknown topic ids get errors."""
        ids = self.shares.topic_ids
        out = []
        for t in topics:
            tid = t["topic_id"]
            name = ids.name_of(tid)
            for p in t.get("partitions") or []:
                idx = p["partition_index"]
                if name is None or not 0 <= idx < self._partitions(name):
                    e = resp.setdefault(tid, {}).setdefault(idx, blank(idx))
                    e["error_code"] = UNKNOWN_TOPIC_ID if name is None \
                        else UNKNOWN_TOPIC_OR_PARTITION
                    continue
                out.append((name, idx, list(p.get("acknowledgement_batches") or [])))
        return out

    def _acknowledge(self, g: WireShareGroup, m: WireMember,
                     acks: list[tuple[str, int, list[dict]]]) -> dict[tuple[str, int], int]:
        """Apply acknowledgements (in a worker thread); error code per partition named."""
        result: dict[tuple[str, int], int] = {}
        for topic, p, batches in acks:
            if not batches:
                continue
            em = m.engine.get(topic)
            plan, bad = _ack_plan(batches, em, p)
            ok = True
            if plan and em is not None:
                try:
                    ok = _settle(g.engine_group(topic), em, plan)
                except LogMQError:
                    ok = False
            result[(topic, p)] = INVALID_RECORD_STATE if bad or not ok else NONE
        return result

    # ------------------------------------------------------------------ fetch
    async def share_fetch(self, body: dict, v: int, client: Any) -> dict:
        out: dict[str, Any] = {"throttle_time_ms": 0, "error_code": NONE, "error_message": None,
                               "acquisition_lock_timeout_ms": 0, "responses": [],
                               "node_endpoints": self._endpoints()}
        found = self._session_member(body, out, fetch=True)
        if found is None:
            return out
        g, m, session = found
        epoch = body.get("share_session_epoch", 0)
        lock_ms = self.shares.configs.get_int(g.group_id, "share.record.lock.duration.ms")
        out["acquisition_lock_timeout_ms"] = lock_ms
        resp: dict[bytes, dict[int, dict]] = {}

        def blank(idx: int) -> dict:
            return {"partition_index": idx, "error_code": NONE, "error_message": None,
                    "acknowledge_error_code": NONE, "acknowledge_error_message": None,
                    "current_leader": {"leader_id": 0, "leader_epoch": 0},
                    "records": b"", "acquired_records": []}

        named = self._resolve(body.get("topics") or [], resp, blank)
        if epoch == 0 and any(b for _, _, b in named):
            out["error_code"] = INVALID_REQUEST
            out["error_message"] = "a new share session (epoch 0) cannot acknowledge"
            return out
        for topic, p, _ in named:
            session.add(topic, p)
        for ft in body.get("forgotten_topics_data") or []:
            name = self.shares.topic_ids.name_of(ft["topic_id"])
            if name is not None:
                session.forget(name, list(ft.get("partitions") or []))
        loop = asyncio.get_running_loop()
        renew_only = bool(body.get("is_renew_ack"))
        acks = await loop.run_in_executor(share_pool(), self._acknowledge, g, m, named)
        ids = self.shares.topic_ids
        for (topic, p), code in acks.items():
            resp.setdefault(ids.id_of(topic), {}).setdefault(p, blank(p))[
                "acknowledge_error_code"] = code
        if epoch == -1:
            self._close_session(g, m)
        elif not renew_only and session.partitions:
            max_records = body.get("max_records") or DEFAULT_MAX_RECORDS
            if max_records <= 0:
                max_records = DEFAULT_MAX_RECORDS
            cap = min(MAX_WAIT_MS, getattr(getattr(self, "limits", None),
                                           "max_fetch_wait_ms", MAX_WAIT_MS))
            max_wait = min(max(0, body.get("max_wait_ms", 0)), cap) / 1000
            got = await self._acquire(g, m, session, max_records, max_wait,
                                      body.get("max_bytes", 0x7FFFFFFF))
            for topic, by_part in got.items():
                tid = ids.id_of(topic)
                for p, recs in by_part.items():
                    e = resp.setdefault(tid, {}).setdefault(p, blank(p))
                    e["records"], e["acquired_records"] = _encode_partition(recs)
        out["responses"] = [{"topic_id": tid, "partitions": [parts[i] for i in sorted(parts)]}
                            for tid, parts in resp.items()]
        return out

    def _acquire_once(self, g: WireShareGroup, m: WireMember, session: ShareSession,
                      max_records: int, max_bytes: int) -> dict[str, dict[int, list[Acquired]]]:
        got: dict[str, dict[int, list[Acquired]]] = {}
        left = max_records
        size = 0
        for topic, parts in list(session.partitions.items()):
            if left <= 0 or size >= max_bytes:
                break
            try:
                sg = g.engine_group(topic)
                em = g.engine_member(m, topic)
                recs = sg.receive(em, left, 0.0, None)
            except UnknownTopicError:
                continue
            stray = []
            for rec, count, _deadline in recs:
                if rec.p not in parts:  # the session does not fetch this partition
                    stray.append((rec.p, rec.off, count))
                    continue
                r = rec.record
                got.setdefault(topic, {}).setdefault(rec.p, []).append(
                    (rec.p, rec.off, count, r))
                size += len(r.value or b"") + len(r.key or b"") + 32
                left -= 1
            if stray:
                sg.settle(em, stray, "release", count_attempt=False)
        return got

    async def _acquire(self, g: WireShareGroup, m: WireMember, session: ShareSession,
                       max_records: int, max_wait: float, max_bytes: int
                       ) -> dict[str, dict[int, list[Acquired]]]:
        """Acquire records for the session; wait up to ``max_wait`` s for the first ones.

        Waiting is on events (appends to a session partition, another member settling or
        leaving, the next lock expiry), never a poll loop.
        """
        loop = asyncio.get_running_loop()
        pool = share_pool()
        deadline = time.monotonic() + max_wait
        event = asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(event.set)

        registered: list[tuple[str, int]] = []
        watched: list[ShareGroup] = []
        self._polls.add(event)
        try:
            while True:
                event.clear()
                got = await loop.run_in_executor(pool, self._acquire_once, g, m, session,
                                                 max_records, max_bytes)
                left = deadline - time.monotonic()
                if got or left <= 0 or self.stopping or m.session is not session:
                    return got
                if not registered and not watched:
                    for topic, parts in session.partitions.items():
                        try:
                            sg = g.engine_group(topic)
                        except LogMQError:
                            continue
                        sg.watchers.add(wake)
                        watched.append(sg)
                        for p in parts:
                            self.broker.add_waiter((topic, p), wake)
                            registered.append((topic, p))
                    continue  # re-check once: something may have landed before we listened
                timers = [t for t in (sg.next_timer_ms() for sg in watched) if t is not None]
                if timers:
                    now_ms = time.time() * 1000
                    left = min(left, max(0.0, (min(timers) - now_ms) / 1000) + 0.002)
                try:
                    await asyncio.wait_for(event.wait(), left)
                except TimeoutError:
                    pass
        finally:
            self._polls.discard(event)
            for tp in registered:
                self.broker.remove_waiter(tp, wake)
            for sg in watched:
                sg.watchers.discard(wake)

    # ------------------------------------------------------------------ acknowledge
    async def share_acknowledge(self, body: dict, v: int, client: Any) -> dict:
        out: dict[str, Any] = {"throttle_time_ms": 0, "error_code": NONE, "error_message": None,
                               "acquisition_lock_timeout_ms": 0, "responses": [],
                               "node_endpoints": self._endpoints()}
        found = self._session_member(body, out, fetch=False)
        if found is None:
            return out
        g, m, _session = found
        out["acquisition_lock_timeout_ms"] = self.shares.configs.get_int(
            g.group_id, "share.record.lock.duration.ms")
        resp: dict[bytes, dict[int, dict]] = {}

        def blank(idx: int) -> dict:
            return {"partition_index": idx, "error_code": NONE, "error_message": None,
                    "current_leader": {"leader_id": 0, "leader_epoch": 0}}

        named = self._resolve(body.get("topics") or [], resp, blank)
        loop = asyncio.get_running_loop()
        acks = await loop.run_in_executor(share_pool(), self._acknowledge, g, m, named)
        ids = self.shares.topic_ids
        for (topic, p), code in acks.items():
            resp.setdefault(ids.id_of(topic), {}).setdefault(p, blank(p))["error_code"] = code
        if body.get("share_session_epoch") == -1:
            self._close_session(g, m)
        out["responses"] = [{"topic_id": tid, "partitions": [parts[i] for i in sorted(parts)]}
                            for tid, parts in resp.items()]
        return out
