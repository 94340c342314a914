"""Kafka API handlers: each decoded request body in, a response body out, against one Broker.

This module knows Kafka's semantics (which error code when, what a single-node cluster looks
like in Metadata) but nothing of sockets or byte layouts: the codec (``logmq.protocol``) turns
bytes into the dicts seen here, and ``logmq.server.app`` owns the connections. Handlers run on
the event loop; the only waits are long polls (Fetch min_bytes, JoinGroup, SyncGroup), which
await notifications instead of sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
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
from logmq.server.limits import ServerLimits
from logmq.server.txn import TxnHandlers

if TYPE_CHECKING:
    from logmq.broker.broker import Broker

__all__ = ["Handlers", "NODE_ID", "ServerStopping", "cluster_id_of"]
T = TypeVar("T")

NODE_ID = 0
# error codes, from the one generated vocabulary (logmq.kafka_codes)
NONE: int = _E.NONE
UNKNOWN_SERVER_ERROR: int = _E.UNKNOWN_SERVER_ERROR
UNKNOWN_TOPIC_OR_PARTITION: int = _E.UNKNOWN_TOPIC_OR_PARTITION
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


class ServerStopping(Exception):
    """A long poll was cut short because the server is shutting down (closes the connection)."""


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def cluster_id_of(broker: Broker) -> str:
    """The data directory's cluster id: made once (Kafka's 22-character form), then kept.

    Clients compare it across reconnects to detect talking to a different cluster, so it must
    survive restarts; it lives in the data directory's LMDB environment.
    """
    env = broker.meta.env
    db = env.open_db(b"server")
    with env.begin(db=db, write=True) as txn:
        raw = txn.get(b"cluster_id")
        if raw is None:
            raw = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=")
            txn.put(b"cluster_id", raw)
    return bytes(raw).decode()


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


class Handlers(AdminHandlers, TxnHandlers):
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
        if any(t["name"] not in known for t in requested):
            # auto-creation makes directories and commits metadata: not on the event loop
            return await asyncio.to_thread(self._metadata, body, v)
        return self._metadata(body, v)

    def _metadata(self, body: dict, v: int) -> dict:
        requested = body.get("topics")
        allow_create = body.get("allow_auto_topic_creation", True) and self.auto_create_topics
        if requested is None or (v == 0 and not requested):
            names = self.broker.list_topics()
            create = False
        else:
            names = [t["name"] for t in requested]
            create = allow_create
        topics = []
        for name in names:
            topics.append(self._topic_metadata(name, create))
        return {
            "throttle_time_ms": 0,
            "brokers": [{"node_id": NODE_ID, "host": self.host, "port": self.port, "rack": None}],
            "cluster_id": self.cluster_id,
            "controller_id": NODE_ID,
            "topics": topics,
            "cluster_authorized_operations": _ALL_OPS,
        }

    def _topic_metadata(self, name: str, create: bool) -> dict:
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
                "topic_authorized_operations": _ALL_OPS}

    def find_coordinator(self, body: dict, v: int, client: Any) -> dict:
        return {"error_code": NONE, "error_message": None, "node_id": NODE_ID,
                "host": self.host, "port": self.port, "throttle_time_ms": 0}

    # ------------------------------------------------------------------ produce
    def produce(self, body: dict, v: int, client: Any) -> dict | None:
        responses = []
        for td in body.get("topic_data", []):
            name = td["name"]
            parts = []
            for pd in td.get("partition_data", []):
                parts.append(self._produce_partition(name, pd["index"], pd.get("records")))
            responses.append({"name": name, "partition_responses": parts})
        if body.get("acks", 1) == 0:
            return None
        # acks=-1 and acks=1 are the same on one node: the append above already applied the
        # topic's fsync policy (fsync="always" fsyncs before we get here).
        return {"responses": responses, "throttle_time_ms": 0}

    def _produce_partition(self, topic: str, partition: int, records: Any) -> dict:
        out = {"index": partition, "error_code": NONE, "base_offset": -1,
               "log_append_time_ms": -1, "log_start_offset": -1, "record_errors": [],
               "error_message": None}
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
        tps = [(t["topic"], p["partition"]) for t in topics for p in t["partitions"]]
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
                try:
                    plog = self.broker.partition_log(name, idx)
                    hw = plog.next_offset
                    pr["high_watermark"] = pr["last_stable_offset"] = hw
                    pr["log_start_offset"] = plog.log_start_offset
                    budget = min(p.get("partition_max_bytes", max_bytes), max_bytes - total)
                    if budget > 0 or total == 0:
                        sl = self.txn_read(plog, p["fetch_offset"], max(budget, 1),
                                           isolation, pr)
                        if sl is not None:
                            total += sl.length
                            pr["records"] = sl.read() if sl.length <= _SMALL_SLICE else sl
                except OffsetOutOfRangeError as e:
                    pr["error_code"] = e.kafka_code
                    errors = True
                except LogMQError as e:
                    pr["error_code"] = e.kafka_code
                    errors = True
                parts.append(pr)
            out_topics.append({"topic": name, "partitions": parts})
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
            "protocol_name": res.protocol_name or "",
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
        try:
            fut = self.coordinator.sync_group(body["group_id"], body["generation_id"],
                                              body["member_id"], assignments,
                                              body.get("group_instance_id"))
            data = await self._until_stopped(asyncio.wrap_future(fut))
        except LogMQError as e:
            return {"throttle_time_ms": 0, "error_code": e.kafka_code, "assignment": b""}
        return {"throttle_time_ms": 0, "error_code": NONE, "assignment": data or b""}

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
        try:
            return self._offset_fetch(body)
        except ConfigError as e:  # a group id that cannot be one (NUL, ...)
            return self._offset_fetch_error(body, INVALID_GROUP_ID, e)
        except LogMQError as e:
            return self._offset_fetch_error(body, e.kafka_code, e)

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
                            "protocol_type": "", "protocol_data": "", "members": []})
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
        return {"throttle_time_ms": 0, "error_code": NONE,
                "groups": [{"group_id": g, "protocol_type": pt}
                           for g, pt, _state in self.coordinator.list_groups()]}

    # ------------------------------------------------------------------ admin
    def delete_topics(self, body: dict, v: int, client: Any) -> dict:
        out = []
        for name in body.get("topic_names", []):
            code = NONE
            try:
                self.broker.delete_topic(name)  # the coordinator drops its offsets too
            except LogMQError as e:
                code = e.kafka_code
            out.append({"name": name, "error_code": code})
        return {"throttle_time_ms": 0, "responses": out}

    def init_producer_id(self, body: dict, v: int, client: Any) -> dict | Awaitable[dict]:
        if body.get("transactional_id") is not None:
            return self.txn_init_producer_id(body, v)
        pid = self.producer_ids.allocate()
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
            20: self.delete_topics, 21: self.delete_records, 22: self.init_producer_id,
            **self.admin_table(), **self.txn_table(),
        }
