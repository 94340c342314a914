"""Kafka API handlers: each decoded request body in, a response body out, against one Broker.

This module knows Kafka's semantics (which error code when, what a single-node cluster looks
like in Metadata) but nothing of sockets or byte layouts: the codec (``logmq.protocol``) turns
bytes into the dicts seen here, and ``logmq.server.app`` owns the connections. Handlers run on
the event loop; the only waits are long polls (Fetch min_bytes, JoinGroup, SyncGroup), which
await notifications instead of sleeping.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from logmq.codec.validate import policy_from_config, validate_produce
from logmq.errors import (
    ConfigError,
    CorruptRecordError,
    InvalidTopicError,
    LogMQError,
    OffsetOutOfRangeError,
    UnknownTopicError,
)
from logmq.kafka_codes import ErrorCode as _E
from logmq.server.admin import AdminHandlers
from logmq.server.kip848 import Kip848Handlers
from logmq.server.limits import ServerLimits
from logmq.server.scram_admin import ScramAdminHandlers
from logmq.server.share import ShareHandlers
from logmq.server.topic_ids import ZERO_ID, TopicIds, cluster_id_of
from logmq.server.txn import TxnHandlers
from logmq.server.wire_versions import by_topic_id, filter_groups, offset_fetch_groups

if TYPE_CHECKING:
    from logmq.broker.broker import Broker

__all__ = ["Handlers", "NODE_ID", "ServerStopping"]
T = TypeVar("T")

NODE_ID = 0
# error codes, from the one generated vocabulary (logmq.kafka_codes)
NONE: int = _E.NONE
UNKNOWN_SERVER_ERROR: int = _E.UNKNOWN_SERVER_ERROR
UNKNOWN_TOPIC_OR_PARTITION: int = _E.UNKNOWN_TOPIC_OR_PARTITION
UNKNOWN_TOPIC_ID: int = _E.UNKNOWN_TOPIC_ID
COORDINATOR_NOT_AVAILABLE: int = _E.COORDINATOR_NOT_AVAILABLE
INVALID_TOPIC: int = _E.INVALID_TOPIC_EXCEPTION
UNSUPPORTED_VERSION: int = _E.UNSUPPORTED_VERSION
TOPIC_ALREADY_EXISTS: int = _E.TOPIC_ALREADY_EXISTS
INVALID_PARTITIONS: int = _E.INVALID_PARTITIONS
INVALID_REPLICATION_FACTOR: int = _E.INVALID_REPLICATION_FACTOR
INVALID_REQUEST: int = _E.INVALID_REQUEST
INVALID_RECORD: int = _E.INVALID_RECORD
INVALID_GROUP_ID: int = _E.INVALID_GROUP_ID
GROUP_MAX_SIZE_REACHED: int = _E.GROUP_MAX_SIZE_REACHED
_SMALL_SLICE = 32 * 1024
_ALL_OPS = -2147483648


def _produce_error(partition: int, code: int) -> dict:
    return {"index": partition, "error_code": code, "base_offset": -1,
            "log_append_time_ms": -1, "log_start_offset": -1, "record_errors": [],
            "error_message": None}


class ServerStopping(Exception):
    """A long poll was cut short because the server is shutting down (closes the connection)."""


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _check_name(name: Any) -> None:
    """Names that cannot be topics (NUL, newline, ...) get INVALID_TOPIC, not an exception."""
    from logmq.broker.broker import validate_topic_name

    validate_topic_name(name)


def error_code(e: BaseException | None) -> int:
    if e is None:
        return NONE
    if isinstance(e, LogMQError):
        return e.kafka_code
    return UNKNOWN_SERVER_ERROR




class Handlers(AdminHandlers, Kip848Handlers, ShareHandlers, ScramAdminHandlers,
               TxnHandlers):
    """The request handlers of one server (one broker, node id 0)."""

    def __init__(self, broker: Broker, host: str, port: int, *,
                 auto_create_topics: bool = True, limits: ServerLimits | None = None) -> None:

        self.broker = broker
        self.host = host
        self.port = port
        self.auto_create_topics = auto_create_topics
        self.coordinator = broker.groups
        self.producer_ids = broker.producer_ids
        self.cluster_id = cluster_id_of(broker)
        self.limits = limits or ServerLimits()
        self.topic_ids = TopicIds(broker)
        self.stopping = False
        self._polls: set[asyncio.Event] = set()

    def stop(self) -> None:
        """Wake every long poll: Fetch answers with what it has, group waits end."""
        self.stopping = True
        for ev in list(self._polls):
            ev.set()

    async def _until_stopped(self, aw: Awaitable[T]) -> T:
        """Await ``aw`` unless the server stops first (then :class:`ServerStopping`)."""
        if self.stopping:
            # its outcome is nobody's: an unawaited future's error would be logged at ERROR
            if inspect.iscoroutine(aw):
                aw.close()
            else:
                fut = asyncio.ensure_future(aw)
                fut.add_done_callback(_consume)
                fut.cancel()
            raise ServerStopping()
        ev = asyncio.Event()
        self._polls.add(ev)
        fut = asyncio.ensure_future(aw)
        fut.add_done_callback(_consume)  # an error landing after we stopped waiting is nobody's
        stop = asyncio.ensure_future(ev.wait())
        try:
            await asyncio.wait({fut, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._polls.discard(ev)
            stop.cancel()
            if not fut.done():  # stopping, or our connection was closed under us
                fut.cancel()
        if not fut.done() or fut.cancelled():
            raise ServerStopping()
        return fut.result()

    # ------------------------------------------------------------------ cluster
    async def metadata(self, body: dict, v: int, client: Any) -> dict:
        requested = body.get("topics") or []
        known = set(self.broker.list_topics())
        if any(t.get("name") is not None and t["name"] not in known for t in requested):
            # auto-creation makes directories and commits metadata: not on the event loop
            return await asyncio.to_thread(self._metadata, body, v)
        return self._metadata(body, v)

    def _metadata(self, body: dict, v: int) -> dict:
        requested = body.get("topics")
        allow_create = body.get("allow_auto_topic_creation", True) and self.auto_create_topics
        topics = []
        if requested is None or (v == 0 and not requested):
            topics = [self._topic_metadata(n, False) for n in self.broker.list_topics()]
        else:
            for t in requested:
                name = t.get("name")
                if not name:  # v12+: a topic named by its id alone (Java sends "", not null)
                    name = self.topic_ids.name_of(t.get("topic_id"))
                    if name is None:
                        topics.append({"error_code": UNKNOWN_TOPIC_ID, "name": None,
                                       "topic_id": t.get("topic_id") or ZERO_ID,
                                       "is_internal": False, "partitions": [],
                                       "topic_authorized_operations": _ALL_OPS})
                        continue
                    topics.append(self._topic_metadata(name, False))
                else:
                    topics.append(self._topic_metadata(name, allow_create))
        return {
            "throttle_time_ms": 0, "error_code": NONE,
            "brokers": [{"node_id": NODE_ID, "host": self.host, "port": self.port, "rack": None}],
            "cluster_id": self.cluster_id,
            "controller_id": NODE_ID,
            "topics": topics,
            "cluster_authorized_operations": _ALL_OPS,
        }

    def _topic_metadata(self, name: str | None, create: bool) -> dict:
        if name is None:  # a topic id we do not know
            return {"error_code": _E.UNKNOWN_TOPIC_ID, "name": None, "is_internal": False,
                    "partitions": [], "topic_authorized_operations": _ALL_OPS}
        err = NONE
        n = 0
        try:
            if create:
                n = self.broker.ensure_topic(name)
            else:
                n = self.broker.partitions_for(name)
        except UnknownTopicError:
            err = UNKNOWN_TOPIC_OR_PARTITION
        except LogMQError as e:
            err = e.kafka_code
        parts = [{"error_code": NONE, "partition_index": p, "leader_id": NODE_ID,
                  "leader_epoch": 0, "replica_nodes": [NODE_ID], "isr_nodes": [NODE_ID],
                  "offline_replicas": []} for p in range(n)]
        return {"error_code": err, "name": name, "is_internal": False, "partitions": parts,
                "topic_id": self.topic_ids.id_of(name) if err == NONE else ZERO_ID,
                "topic_authorized_operations": _ALL_OPS}

    def find_coordinator(self, body: dict, v: int, client: Any) -> dict:
        key_type = body.get("key_type", 0)
        if v >= 4:  # a batch of keys (KIP-699), one answer each
            return {"throttle_time_ms": 0, "coordinators": [
                dict(self._coordinator(key_type, k), key=k)
                for k in body.get("coordinator_keys") or []]}
        return {"throttle_time_ms": 0, **self._coordinator(key_type, body.get("key", ""))}

    def _coordinator(self, key_type: int, key: str) -> dict:
        """Who coordinates ``key`` (a group id, transactional id or share-group key): this
        node, for every key type (it is the whole cluster)."""
        return {"error_code": NONE, "error_message": None, "node_id": NODE_ID,
                "host": self.host, "port": self.port}

    # ------------------------------------------------------------------ produce
    def produce(self, body: dict, v: int, client: Any) -> dict | None:
        responses = []
        for td in body.get("topic_data", []):
            if v >= 13:  # topics named by id (KIP-516)
                name = self.topic_ids.name_of(td.get("topic_id"))
                key = {"topic_id": td.get("topic_id") or ZERO_ID}
            else:
                name = td["name"]
                key = {"name": name}
            parts = []
            for pd in td.get("partition_data", []):
                if name is None:
                    parts.append(_produce_error(pd["index"], UNKNOWN_TOPIC_ID))
                else:
                    parts.append(self._produce_partition(name, pd["index"], pd.get("records")))
            responses.append({**key, "partition_responses": parts})
        if body.get("acks", 1) == 0:
            return None
        # acks=-1 and acks=1 are the same on one node: the append above already applied the
        # topic's fsync policy (fsync="always" fsyncs before we get here).
        return {"responses": responses, "throttle_time_ms": 0}

    def _produce_partition(self, topic: str, partition: int, records: Any) -> dict:
        out = _produce_error(partition, NONE)
        try:
            plog = self.broker.partition_log(topic, partition)
            policy = policy_from_config(
                plog.config, single_batch=True,
                max_uncompressed_bytes=self.limits.max_uncompressed_batch_bytes)
            data, headers = validate_produce(records or b"", policy)
            first, _ = self.txn_append(plog, topic, partition, data, headers)
            out["base_offset"] = first
            out["log_start_offset"] = plog.log_start_offset
        except CorruptRecordError as e:
            out["error_code"] = e.kafka_code
            out["error_message"] = str(e)
            out["record_errors"] = [{"batch_index": getattr(e, "batch_index", 0),
                                     "batch_index_error_message": str(e)}]
        except LogMQError as e:
            out["error_code"] = e.kafka_code if type(e) is not LogMQError else INVALID_RECORD
            out["error_message"] = str(e)
        return out

    # ------------------------------------------------------------------ fetch
    async def fetch(self, body: dict, v: int, client: Any) -> dict:
        max_wait = min(max(0, body.get("max_wait_ms", 0)), self.limits.max_fetch_wait_ms) / 1000
        min_bytes = body.get("min_bytes", 1)
        max_bytes = body.get("max_bytes", 0x7FFFFFFF)
        topics = body.get("topics", [])
        if v >= 13:  # topics named by id (KIP-516): None where the id names no topic
            topics = [dict(t, topic=self.topic_ids.name_of(t.get("topic_id")))
                      for t in topics]
        tps = [(t["topic"], p["partition"]) for t in topics if t["topic"] is not None
               for p in t["partitions"]]
        loop = asyncio.get_running_loop()
        event = asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(event.set)

        registered: list[tuple[str, int]] = []
        armed = False
        deadline = time.monotonic() + max_wait
        self._polls.add(event)
        try:
            while True:
                event.clear()
                resp, total, errors = self._fetch_once(topics, max_bytes,
                                                       body.get("isolation_level", 0))
                left = deadline - time.monotonic()
                if total >= min_bytes or errors or left <= 0 or self.stopping:
                    return resp
                if not armed:
                    armed = True
                    for tp in tps:
                        self.broker.add_waiter(tp, wake)
                        registered.append(tp)
                    if registered:
                        continue  # re-read once: an append may have landed before we registered
                # every pass through here awaits: no partition, no append, still no spin
                try:
                    await asyncio.wait_for(event.wait(), left)
                except TimeoutError:
                    pass
        finally:
            self._polls.discard(event)
            for tp in registered:
                self.broker.remove_waiter(tp, wake)

    def _fetch_once(self, topics: list[dict], max_bytes: int,
                    isolation: int = 0) -> tuple[dict, int, bool]:
        total = 0
        errors = False
        out_topics = []
        for t in topics:
            name = t["topic"]
            parts = []
            for p in t["partitions"]:
                idx = p["partition"]
                pr = {"partition_index": idx, "error_code": NONE, "high_watermark": -1,
                      "last_stable_offset": -1, "log_start_offset": -1,
                      "aborted_transactions": None, "preferred_read_replica": -1,
                      "records": b""}
                if name is None:
                    pr["error_code"] = UNKNOWN_TOPIC_ID
                    errors = True
                    parts.append(pr)
                    continue
                try:
                    plog = self.broker.partition_log(name, idx)
                    hw = plog.next_offset
                    pr["high_watermark"] = pr["last_stable_offset"] = hw
                    pr["log_start_offset"] = plog.log_start_offset
                    if p.get("last_fetched_epoch", -1) >= 0 and p["fetch_offset"] > hw:
                        # v12+: the fetcher's log runs past ours in the one epoch there is
                        # (0): tell it where that epoch ends instead of OFFSET_OUT_OF_RANGE,
                        # as Kafka does, so it truncates rather than resets
                        pr["diverging_epoch"] = {"epoch": 0, "end_offset": hw}
                        parts.append(pr)
                        continue
                    budget = min(p.get("partition_max_bytes", max_bytes), max_bytes - total)
                    if budget > 0 or total == 0:
                        sl = self.txn_read(plog, p["fetch_offset"], max(budget, 1),
                                           isolation, pr)
                        # the high watermark read again after the read: an append racing
                        # it may have put records past the first value in the slice, and a
                        # response must not carry records at or above its high watermark
                        pr["high_watermark"] = max(hw, plog.next_offset)
                        if sl is not None:
                            total += sl.length
                            small = sl.length <= _SMALL_SLICE or sl.sealer is not None
                            pr["records"] = sl.read() if small else sl  # sealed: decrypted
                except OffsetOutOfRangeError as e:
                    pr["error_code"] = e.kafka_code
                    pr["high_watermark"] = pr["last_stable_offset"] = -1  # as Kafka answers
                    pr["log_start_offset"] = -1
                    errors = True
                except LogMQError as e:
                    pr["error_code"] = e.kafka_code
                    errors = True
                parts.append(pr)
            out_topics.append({"topic": name, "topic_id": t.get("topic_id") or ZERO_ID,
                               "partitions": parts})
        return ({"throttle_time_ms": 0, "error_code": NONE, "session_id": 0,
                 "responses": out_topics}, total, errors)

    # ------------------------------------------------------------------ offsets
    def delete_records(self, body: dict, v: int, client: Any) -> dict:
        out = []
        for t in body.get("topics", []):
            parts = []
            for p in t["partitions"]:
                pr = {"partition_index": p["partition_index"], "low_watermark": -1,
                      "error_code": NONE}
                try:
                    tp = (t["name"], p["partition_index"])
                    off = p["offset"]
                    if off == -1:
                        off = self.broker.end_offset(tp)
                    pr["low_watermark"] = self.broker.delete_records(tp, off)
                except LogMQError as e:
                    pr["error_code"] = e.kafka_code
                parts.append(pr)
            out.append({"name": t["name"], "partitions": parts})
        return {"throttle_time_ms": 0, "topics": out}

    # ------------------------------------------------------------------ groups
    async def join_group(self, body: dict, v: int, client: Any) -> dict:
        session = body["session_timeout_ms"]
        rebalance = body.get("rebalance_timeout_ms", -1)
        if rebalance is None or rebalance < 0:
            rebalance = session
        rebalance = min(rebalance, self.limits.max_rebalance_timeout_ms)
        if not body.get("member_id") and self._group_size(body["group_id"]) >= \
                self.limits.max_group_members:
            return {"error_code": GROUP_MAX_SIZE_REACHED, "generation_id": -1,
                    "protocol_name": "", "leader": "", "member_id": "", "members": []}
        if sum(len(p["metadata"] or b"") for p in body.get("protocols", [])) > \
                self.limits.max_group_member_metadata_bytes:
            return {"error_code": INVALID_REQUEST, "generation_id": -1, "protocol_name": "",
                    "leader": "", "member_id": body.get("member_id", ""), "members": []}
        fut = self.coordinator.join_group(
            body["group_id"], body.get("member_id", ""), body["protocol_type"],
            [(p["name"], p["metadata"]) for p in body.get("protocols", [])],
            session, rebalance, client_id=client.client_id or "", client_host=client.host,
            require_known_member_id=v >= 4, group_instance_id=body.get("group_instance_id"),
        )
        try:
            res = await self._until_stopped(asyncio.wrap_future(fut))
        except LogMQError as e:
            return {"error_code": e.kafka_code, "generation_id": -1, "protocol_name": "",
                    "leader": "", "member_id": body.get("member_id", ""), "members": []}
        return {
            "throttle_time_ms": 0,
            "error_code": error_code(res.error),
            "generation_id": res.generation_id,
            "protocol_type": body["protocol_type"],  # v7+: joining checked it is the group's
            "protocol_name": res.protocol_name or "",
            "skip_assignment": False,  # v9+: only a KIP-848 group's leader skips it
            "leader": res.leader_id or "",
            "member_id": res.member_id or "",
            "members": [{"member_id": m[0], "group_instance_id": m[1], "metadata": m[2]}
                        for m in res.members],
        }

    def _group_size(self, group_id: str) -> int:
        try:
            return len(self.coordinator.describe_group(group_id).members)
        except LogMQError:
            return 0

    async def sync_group(self, body: dict, v: int, client: Any) -> dict:
        assignments = {a["member_id"]: a["assignment"] for a in body.get("assignments", [])}
        if any(len(a or b"") > self.limits.max_group_member_metadata_bytes
               for a in assignments.values()):
            return {"throttle_time_ms": 0, "error_code": INVALID_REQUEST, "assignment": b""}
        # v5+ name the protocol; clients refuse an answer naming another (so echo the request,
        # which joining already checked against the group's)
        proto = {"protocol_type": body.get("protocol_type"),
                 "protocol_name": body.get("protocol_name")}
        try:
            fut = self.coordinator.sync_group(body["group_id"], body["generation_id"],
                                              body["member_id"], assignments,
                                              body.get("group_instance_id"))
            data = await self._until_stopped(asyncio.wrap_future(fut))
        except LogMQError as e:
            return {"throttle_time_ms": 0, "error_code": e.kafka_code, "assignment": b""}
        return {"throttle_time_ms": 0, "error_code": NONE, "assignment": data or b"", **proto}

    def heartbeat(self, body: dict, v: int, client: Any) -> dict:
        try:
            self.coordinator.heartbeat(body["group_id"], body["generation_id"], body["member_id"],
                                       body.get("group_instance_id"))
        except LogMQError as e:
            return {"throttle_time_ms": 0, "error_code": e.kafka_code}
        return {"throttle_time_ms": 0, "error_code": NONE}

    def leave_group(self, body: dict, v: int, client: Any) -> dict:
        if v >= 3:
            members = [(m["member_id"], m.get("group_instance_id"))
                       for m in body.get("members", [])]
        else:
            members = [(body.get("member_id", ""), None)]
        try:
            errors = self.coordinator.leave_members(body["group_id"], members)
        except LogMQError as e:
            return {"throttle_time_ms": 0, "error_code": e.kafka_code, "members": []}
        codes = [error_code(e) for e in errors]
        results = [{"member_id": mid, "group_instance_id": iid, "error_code": code}
                   for (mid, iid), code in zip(members, codes, strict=True)]
        # v0-2 carry the one member's error at the top; v3+ per member (Kafka's shape)
        top = NONE if v >= 3 else codes[0]
        return {"throttle_time_ms": 0, "error_code": top, "members": results}

    def offset_commit(self, body: dict, v: int, client: Any) -> dict:
        if v >= 10:  # topics named by id
            def unknown(t: dict) -> dict:
                return {"partitions": [{"partition_index": p["partition_index"],
                                        "error_code": _E.UNKNOWN_TOPIC_ID}
                                       for p in t.get("partitions", [])]}

            def call(named: list[dict]) -> list[dict]:
                return list(self._offset_commit(dict(body, topics=named))["topics"])

            return {"throttle_time_ms": 0,
                    "topics": by_topic_id(self.topic_ids, body.get("topics", []), call,
                                          unknown)}
        return self._offset_commit(body)

    def _offset_commit(self, body: dict) -> dict:
        offsets: dict[tuple[str, int], tuple[int, str | None]] = {}
        unknown: set[tuple[str, int]] = set()
        for t in body.get("topics", []):
            try:  # as Kafka: a partition that does not exist is refused, the rest committed
                n = self.broker.partitions_for(t["name"])
            except LogMQError:
                n = 0
            for p in t["partitions"]:
                tp = (t["name"], p["partition_index"])
                if not 0 <= tp[1] < n:
                    unknown.add(tp)
                    continue
                offsets[tp] = (p["committed_offset"], p.get("committed_metadata"))
        code = NONE
        try:
            if offsets or not unknown:
                self.coordinator.commit_offsets(
                    body["group_id"], body.get("generation_id_or_member_epoch", -1),
                    body.get("member_id", ""), offsets, body.get("group_instance_id"))
        except LogMQError as e:
            code = e.kafka_code
        return {"throttle_time_ms": 0, "topics": [
            {"name": t["name"], "partitions": [
                {"partition_index": p["partition_index"],
                 "error_code": UNKNOWN_TOPIC_OR_PARTITION
                 if (t["name"], p["partition_index"]) in unknown else code}
                for p in t["partitions"]]}
            for t in body.get("topics", [])]}

    def offset_fetch(self, body: dict, v: int, client: Any) -> dict:
        if v >= 8:  # several groups per request
            return offset_fetch_groups(self.topic_ids, body, v,
                                       lambda one: self._offset_fetch_member(one, v, client))
        try:
            return self._offset_fetch(body)
        except ConfigError as e:  # a group id that cannot be one (NUL, ...)
            return self._offset_fetch_error(body, INVALID_GROUP_ID, e)
        except LogMQError as e:
            return self._offset_fetch_error(body, e.kafka_code, e)

    def _offset_fetch_member(self, req: dict, v: int, client: Any) -> dict:
        """One group of OffsetFetch v8+; v9+ names a KIP-848 member, whose epoch must be
        current (STALE_MEMBER_EPOCH, UNKNOWN_MEMBER_ID otherwise), as Kafka checks."""
        if v >= 9:
            try:
                self.coordinator.consumer_groups.validate_offset_fetch(
                    req["group_id"], req.get("member_id"), req.get("member_epoch", -1))
            except LogMQError as e:
                return self._offset_fetch_error(req, e.kafka_code, e)
        return self.offset_fetch(req, 7, client)

    @staticmethod
    def _offset_fetch_error(body: dict, code: int, e: Exception) -> dict:
        return {"throttle_time_ms": 0, "error_code": code, "topics": [
            {"name": t["name"], "partitions": [
                {"partition_index": p, "committed_offset": -1, "committed_leader_epoch": -1,
                 "metadata": "", "error_code": code} for p in t["partition_indexes"]]}
            for t in body.get("topics") or []]}

    def _offset_fetch(self, body: dict) -> dict:
        group = body["group_id"]
        req = body.get("topics")
        if req is None:
            committed = self.coordinator.fetch_offsets(group, None)
            wanted: dict[str, list[int]] = {}
            for t, p in sorted(committed):
                wanted.setdefault(t, []).append(p)
        else:
            wanted = {t["name"]: list(t["partition_indexes"]) for t in req}
            bad = set()
            for t in wanted:
                try:
                    _check_name(t)
                except InvalidTopicError:
                    bad.add(t)
            committed = self.coordinator.fetch_offsets(
                group, [(t, p) for t, ps in wanted.items() if t not in bad for p in ps])
        topics = []
        for t, ps in wanted.items():
            parts = []
            for p in ps:
                off, meta = committed.get((t, p), (-1, ""))
                parts.append({"partition_index": p, "committed_offset": off,
                              "committed_leader_epoch": -1, "metadata": meta or "",
                              "error_code": INVALID_TOPIC if req is not None and t in bad
                              else NONE})
            topics.append({"name": t, "partitions": parts})
        if body.get("require_stable"):  # v7+: offsets an open transaction holds are unstable
            self.mark_unstable(group, topics)
        return {"throttle_time_ms": 0, "topics": topics, "error_code": NONE}

    def describe_groups(self, body: dict, v: int, client: Any) -> dict:
        out = []
        seen: dict[str, dict] = {}  # a group named twice is described once (same object)
        for g in body.get("groups", []):
            if g in seen:
                out.append(seen[g])
                continue
            try:
                d = self.coordinator.describe_group(g)
            except LogMQError as e:
                out.append({"error_code": e.kafka_code, "group_id": g, "group_state": "Dead",
                            "protocol_type": "", "protocol_data": "", "members": [],
                            "error_message": str(e)})
                continue
            if v >= 6 and d.state == "Dead" and not d.members:  # KIP-1043: say it is unknown
                out.append({"error_code": _E.GROUP_ID_NOT_FOUND, "group_id": g,
                            "group_state": "Dead", "protocol_type": "", "protocol_data": "",
                            "members": [], "error_message": f"Group {g} not found."})
                continue
            seen[g] = {
                "error_code": NONE, "group_id": g, "group_state": d.state,
                "protocol_type": d.protocol_type or "", "protocol_data": d.protocol or "",
                "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                             "client_id": m.client_id, "client_host": m.client_host,
                             "member_metadata": m.metadata, "member_assignment": m.assignment}
                            for m in d.members],
                "authorized_operations": _ALL_OPS,
            }
            out.append(seen[g])
        return {"throttle_time_ms": 0, "groups": out}

    def list_groups(self, body: dict, v: int, client: Any) -> dict:
        types = self.coordinator.group_types()
        groups = [{"group_id": g, "protocol_type": pt, "group_state": state,
                   "group_type": types.get(g, "classic")}
                  for g, pt, state in self.coordinator.list_groups()]
        return {"throttle_time_ms": 0, "error_code": NONE,
                "groups": filter_groups(groups + self.share_listing(body), body)
                if v >= 4 else groups + self.share_listing(body)}

    # ------------------------------------------------------------------ admin
    async def init_producer_id(self, body: dict, v: int, client: Any) -> dict:
        if body.get("transactional_id") is not None:
            return await self.txn_init_producer_id(body, v)
        # an LMDB write commit (fsync): never on the event loop, where waiting for LMDB's
        # writer lock behind another thread's commit stalls every connection
        pid = await asyncio.to_thread(self.producer_ids.allocate)
        return {"throttle_time_ms": 0, "error_code": NONE, "producer_id": pid,
                "producer_epoch": 0}

    # ------------------------------------------------------------------ table
    def table(self) -> dict[int, Callable[..., Any]]:
        """api key -> handler (async handlers are awaited by the connection)."""
        return {
            0: self.produce, 1: self.fetch, 3: self.metadata,
            8: self.offset_commit, 9: self.offset_fetch, 10: self.find_coordinator,
            11: self.join_group, 12: self.heartbeat, 13: self.leave_group,
            14: self.sync_group, 15: self.describe_groups, 16: self.list_groups,
            21: self.delete_records, 22: self.init_producer_id,
            **self.admin_table(),
            **self.kip848_table(),
            **self.share_table(),
            **self.scram_table(),
            **self.txn_table(),
        }
