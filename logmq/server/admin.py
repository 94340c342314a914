"""Kafka's admin APIs on one node: topics, partitions, configs, groups, log dirs, producers.

A mixin of :class:`logmq.server.handlers.Handlers` (kept apart so neither module outgrows
650 lines). The answers follow what Apache Kafka 4.4 answers a single-broker KRaft cluster
(tests/oracle compares them): one log dir, broker 0 leads every partition, so ElectLeaders
has nothing to elect and replica assignments can only name broker 0.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Any

from logmq.errors import ConfigError, LogMQError, TopicExistsError, UnknownTopicError
from logmq.kafka_codes import ErrorCode as _E
from logmq.server.configs import (
    FIXED_TOPIC_KEYS,
    _check_fixed,
    alter_resource,
    describe_resource,
    topic_entries,
)
from logmq.server.limits import ServerLimits
from logmq.server.topic_ids import ZERO_ID, TopicIds, id_bytes
from logmq.storage.txn_ops import last_stable_offset

if TYPE_CHECKING:
    from logmq.broker.broker import Broker
    from logmq.broker.groups.consumer_group_coordinator import KafkaGroupCoordinator
    from logmq.storage.log import PartitionLog

__all__ = ["AdminHandlers", "max_timestamp_offset", "EARLIEST", "LATEST", "MAX_TIMESTAMP",
           "EARLIEST_LOCAL", "LATEST_TIERED"]

NODE_ID = 0
_ALL_OPS = -2147483648
#: every cluster operation allowed (what Kafka 4.4 reports without an authorizer)
_CLUSTER_OPS = 8096
# ListOffsets specs (negative "timestamps")
LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL, LATEST_TIERED = -1, -2, -3, -4, -5
EARLIEST_PENDING_UPLOAD = -6
#: the first ListOffsets version that may ask for each spec (Kafka refuses it before)
_SPEC_MIN_VERSION = {MAX_TIMESTAMP: 7, EARLIEST_LOCAL: 8, LATEST_TIERED: 9,
                     EARLIEST_PENDING_UPLOAD: 11}


def max_timestamp_offset(plog: PartitionLog) -> tuple[int, int]:
    """(timestamp, offset) of the first record carrying the partition's largest timestamp.

    As Kafka: the segment with the largest max timestamp (the first on ties), then in it the
    first batch whose max timestamp is that one, then that batch's first record with it.
    (-1, -1) for a log without records.
    """
    from logmq.codec.records import decode_batch

    segs = list(plog.segments)
    best = None
    for s in segs:
        if best is None or s.max_timestamp > best.max_timestamp:
            best = s
    if best is None or best.max_timestamp < 0:
        return -1, -1
    target = best.max_timestamp
    found = best.translate(best.offset_of_max_timestamp)
    starts = [found[0]] if found is not None else []
    starts.append(0)  # a header that disagrees with the index: walk the whole segment
    for start in starts:
        for pos, h in best.iter_headers(start):
            if h.max_timestamp != target:
                continue
            _, recs = decode_batch(plog.open_batch(best.read(pos, h.size)), 0)
            for rec in recs:
                if rec[1] == target:
                    return target, rec[0]
    return -1, -1


class AdminHandlers:
    """Handlers of the admin APIs; mixed into ``Handlers`` (which sets these attributes)."""

    broker: Broker
    coordinator: KafkaGroupCoordinator
    limits: ServerLimits
    auto_create_topics: bool
    host: str
    port: int
    cluster_id: str
    topic_ids: TopicIds

    # ------------------------------------------------------------------ cluster
    def describe_cluster(self, body: dict, v: int, client: Any) -> dict:
        """DescribeCluster (AdminClient.describeCluster): this one node, id 0, which is also
        the controller. Asked for controller endpoints (v1+, KIP-919), Kafka's broker
        listener answers MISMATCHED_ENDPOINT_TYPE, and so does this one."""
        if body.get("endpoint_type", 1) != 1:
            return {"throttle_time_ms": 0, "error_code": _E.MISMATCHED_ENDPOINT_TYPE,
                    "error_message": "The request was sent to an endpoint of type BROKER, "
                                     "but we wanted an endpoint of type CONTROLLER",
                    "endpoint_type": 1, "cluster_id": "", "controller_id": -1, "brokers": [],
                    "cluster_authorized_operations": _ALL_OPS}
        ops = _CLUSTER_OPS if body.get("include_cluster_authorized_operations") else _ALL_OPS
        return {"throttle_time_ms": 0, "error_code": _E.NONE, "error_message": None,
                "endpoint_type": 1, "cluster_id": self.cluster_id, "controller_id": NODE_ID,
                "brokers": [{"broker_id": NODE_ID, "host": self.host, "port": self.port,
                             "rack": None, "is_fenced": False}],
                "cluster_authorized_operations": ops}

    # ------------------------------------------------------------------ offsets
    def list_offsets(self, body: dict, v: int, client: Any) -> dict:
        out = []
        for t in body.get("topics", []):
            name = t["name"]
            parts = []
            for p in t["partitions"]:
                idx = p["partition_index"]
                pr = {"partition_index": idx, "error_code": _E.NONE, "timestamp": -1,
                      "offset": -1, "leader_epoch": 0, "old_style_offsets": []}
                try:
                    if v < _SPEC_MIN_VERSION.get(p["timestamp"], 0):
                        pr["error_code"] = _E.UNSUPPORTED_VERSION
                        pr["leader_epoch"] = -1
                    else:
                        self._list_offset(name, idx, p["timestamp"], pr)
                        if body.get("isolation_level"):  # read_committed: nothing past LSO
                            _below_lso(pr, p["timestamp"], self.broker.partition_log(name, idx))
                except LogMQError as e:
                    pr["error_code"] = e.kafka_code
                    pr["leader_epoch"] = -1
                parts.append(pr)
            out.append({"name": name, "partitions": parts})
        return {"throttle_time_ms": 0, "topics": out}

    def _list_offset(self, name: str, idx: int, ts: int, pr: dict) -> None:
        plog = self.broker.partition_log(name, idx)
        if ts in (EARLIEST, EARLIEST_LOCAL):  # no tiered storage: the local log is the log
            pr["offset"] = plog.log_start_offset
        elif ts == LATEST:
            pr["offset"] = plog.next_offset
        elif ts == MAX_TIMESTAMP:
            pr["timestamp"], pr["offset"] = max_timestamp_offset(plog)
            if pr["offset"] < 0:
                pr["leader_epoch"] = -1
        elif ts in (LATEST_TIERED, EARLIEST_PENDING_UPLOAD):
            # nothing is tiered (or waits to be): Kafka answers -1 for such a topic
            pr["leader_epoch"] = -1
        elif ts < 0:
            pr["error_code"] = _E.INVALID_REQUEST  # a spec Kafka 4.4 does not define
            pr["leader_epoch"] = -1
        else:
            from logmq.types import TopicPartition

            tp = TopicPartition(name, idx)
            hit = self.broker.offsets_for_times({tp: ts})[tp]
            if hit is not None:
                pr["offset"], pr["timestamp"] = hit.offset, hit.timestamp
            else:
                pr["leader_epoch"] = -1

    # ------------------------------------------------------------------ topics
    def create_topics(self, body: dict, v: int, client: Any) -> dict:
        out = []
        budget = self.limits.max_partitions_per_create
        for t in body.get("topics", []):
            res: dict[str, Any] = {"name": t["name"], "error_code": _E.NONE,
                                   "error_message": None, "configs": []}
            try:
                budget -= self._create_topic(t, body.get("validate_only", False), budget, res)
                if res["error_code"] == _E.NONE and v >= 5:
                    self._created(t, body.get("validate_only", False), res)
            except TopicExistsError:
                res["error_code"] = _E.TOPIC_ALREADY_EXISTS
                res["error_message"] = f"Topic '{t['name']}' already exists."
            except LogMQError as e:
                res["error_code"] = e.kafka_code
                res["error_message"] = str(e)
            out.append(res)
        return {"throttle_time_ms": 0, "topics": out}

    def _created(self, t: dict, validate_only: bool, res: dict) -> None:
        """CreateTopics v5+ answers with the topic's partitions, replication and configs
        (KIP-525), v7+ its id; a validate-only request with what the topic would get."""
        from logmq.config import resolve, validate_topic_config

        name = t["name"]
        if validate_only:
            n = t.get("num_partitions", -1)
            res["num_partitions"] = len(t.get("assignments") or []) or (
                self.broker.num_partitions if n in (-1, None) else n)
            over = validate_topic_config({c["name"]: c["value"] for c in t.get("configs", [])
                                          if c["name"] not in FIXED_TOPIC_KEYS})
            eff = resolve(self.broker.defaults, over)
        else:
            res["num_partitions"] = self.broker.partitions_for(name)
            res["topic_id"] = id_bytes(self.broker.topic_id(name))
            eff = self.broker.topic_config(name)
            over = self.broker.describe_topic(name).overrides
        res["replication_factor"] = 1
        res["configs"] = [{k: e[k] for k in ("name", "value", "read_only", "config_source",
                                             "is_sensitive")}
                          for e in topic_entries(eff, over)]

    def _create_topic(self, t: dict, validate_only: bool, budget: int, res: dict) -> int:
        """Create one topic of a CreateTopics request; the partitions it used of ``budget``."""
        name = t["name"]
        n = t.get("num_partitions", -1)
        rf = t.get("replication_factor", -1)
        assignments = t.get("assignments") or []
        cap = self.limits.max_partitions_per_create
        if assignments:
            if n not in (-1, None) or rf not in (-1, None):
                return _fail(res, _E.INVALID_REQUEST, "Both numPartitions or replicationFactor "
                             "and replicasAssignments were set. Both cannot be used at the "
                             "same time.")
            indexes = sorted(a["partition_index"] for a in assignments)
            if indexes != list(range(len(indexes))):
                return _fail(res, _E.INVALID_REPLICA_ASSIGNMENT, "partitions should be a "
                             f"consecutive 0-based integer sequence, got {indexes}")
            for a in assignments:
                if list(a["broker_ids"]) != [NODE_ID]:
                    return _fail(res, _E.INVALID_REPLICA_ASSIGNMENT,
                                 f"partition {a['partition_index']}: replicas "
                                 f"{list(a['broker_ids'])} (this cluster is broker 0 alone)")
            n = len(indexes)
        wanted = self.broker.num_partitions if n in (-1, None) else n
        if wanted > budget:
            return _fail(res, _E.INVALID_PARTITIONS,
                         f"{wanted} partitions exceed what one CreateTopics may create "
                         f"(max_partitions_per_create={cap}, {budget} left in this request)")
        if n is not None and n != -1 and n < 1:
            return _fail(res, _E.INVALID_PARTITIONS, "Number of partitions was set to an "
                         "invalid non-positive value.")
        if rf not in (-1, 1, None):
            return _fail(res, _E.INVALID_REPLICATION_FACTOR,
                         "logmq is a single node: replication factor must be 1")
        config = {c["name"]: c["value"] for c in t.get("configs", [])}
        for k in [k for k in config if k in FIXED_TOPIC_KEYS]:
            _check_fixed(k, config.pop(k))
        if validate_only:
            from logmq.config import validate_topic_config
            from logmq.storage.manager import validate_topic_name

            validate_topic_name(name)
            validate_topic_config(config)
            if name in self.broker.list_topics():
                raise TopicExistsError(name)
            return 0
        self.broker.create_topic(name, partitions=None if n in (-1, None) else n,
                                 config=config)
        return wanted

    def delete_topics(self, body: dict, v: int, client: Any) -> dict:
        wanted: list[tuple[str | None, bytes]]
        if v >= 6:  # each topic by name or by id
            wanted = [(t.get("name"), t.get("topic_id") or ZERO_ID)
                      for t in body.get("topics", [])]
        else:
            wanted = [(n, ZERO_ID) for n in body.get("topic_names", [])]
        out = []
        for name, tid in wanted:
            res: dict[str, Any] = {"name": name, "topic_id": tid, "error_code": _E.NONE,
                                   "error_message": None}
            if name is None:
                name = res["name"] = self.topic_ids.name_of(tid)
                if name is None:
                    res.update(error_code=_E.UNKNOWN_TOPIC_ID,
                               error_message="This server does not host this topic ID.")
                    out.append(res)
                    continue
            try:
                res["topic_id"] = self.topic_ids.id_of(name)
                self.broker.delete_topic(name)  # the coordinator drops its offsets too
            except LogMQError as e:
                res.update(error_code=e.kafka_code, topic_id=ZERO_ID,
                           error_message="This server does not host this topic-partition."
                           if isinstance(e, UnknownTopicError) else str(e))
            out.append(res)
        return {"throttle_time_ms": 0, "responses": out}

    def create_partitions(self, body: dict, v: int, client: Any) -> dict:
        results = []
        names = [t["name"] for t in body.get("topics", [])]
        for t in body.get("topics", []):
            res: dict[str, Any] = {"name": t["name"], "error_code": _E.NONE,
                                   "error_message": None}
            try:
                if names.count(t["name"]) > 1:
                    _fail(res, _E.INVALID_REQUEST, "Duplicate topic name.")
                else:
                    self._create_partitions(t, body.get("validate_only", False), res)
            except LogMQError as e:
                res["error_code"] = e.kafka_code
                res["error_message"] = str(e)
            results.append(res)
        return {"throttle_time_ms": 0, "results": results}

    def _create_partitions(self, t: dict, validate_only: bool, res: dict) -> None:
        name, count = t["name"], t["count"]
        try:
            have = self.broker.partitions_for(name)
        except UnknownTopicError:
            _fail(res, _E.UNKNOWN_TOPIC_OR_PARTITION,
                  "This server does not host this topic-partition.")
            return
        if count == have:
            _fail(res, _E.INVALID_PARTITIONS, f"Topic already has {have} partition(s).")
            return
        if count < have:
            _fail(res, _E.INVALID_PARTITIONS, f"The topic {name} currently has {have} "
                  f"partition(s); {count} would not be an increase.")
            return
        assignments = t.get("assignments")
        if assignments is not None:
            if len(assignments) != count - have:
                _fail(res, _E.INVALID_REPLICA_ASSIGNMENT, f"Attempted to add {count - have} "
                      f"additional partition(s), but only {len(assignments)} assignment(s) "
                      "were specified.")
                return
            for a in assignments:
                if list(a["broker_ids"]) != [NODE_ID]:
                    _fail(res, _E.INVALID_REPLICA_ASSIGNMENT, f"replicas "
                          f"{list(a['broker_ids'])}: this cluster is broker 0 alone")
                    return
        if count - have > self.limits.max_partitions_per_create:
            _fail(res, _E.INVALID_PARTITIONS, f"{count - have} new partitions exceed "
                  f"max_partitions_per_create={self.limits.max_partitions_per_create}")
            return
        if not validate_only:
            self.broker.create_partitions(name, count)

    def describe_topic_partitions(self, body: dict, v: int, client: Any) -> dict:
        """Metadata's topic half, paged by ``response_partition_limit`` and a cursor."""
        requested = [t["name"] for t in body.get("topics", [])]
        names = sorted(set(requested)) if requested else self.broker.list_topics()
        limit = max(1, min(body.get("response_partition_limit", 2000) or 2000, 2000))
        cursor = body.get("cursor")
        if cursor is not None:
            names = [n for n in names if n >= cursor["topic_name"]]
        topics: list[dict[str, Any]] = []
        next_cursor = None
        left = limit
        for name in names:
            try:
                n = self.broker.partitions_for(name)
            except LogMQError as e:
                code = _E.UNKNOWN_TOPIC_OR_PARTITION if isinstance(e, UnknownTopicError) \
                    else e.kafka_code
                topics.append({"error_code": code, "name": name, "topic_id": b"\x00" * 16,
                               "partitions": [], "topic_authorized_operations": _ALL_OPS})
                continue
            first = cursor["partition_index"] if cursor and name == cursor["topic_name"] else 0
            if left == 0:
                next_cursor = {"topic_name": name, "partition_index": first}
                break
            stop = min(n, first + left)
            parts = [{"error_code": _E.NONE, "partition_index": p, "leader_id": NODE_ID,
                      "leader_epoch": 0, "replica_nodes": [NODE_ID], "isr_nodes": [NODE_ID],
                      "eligible_leader_replicas": [], "last_known_elr": [],
                      "offline_replicas": []} for p in range(first, stop)]
            left -= stop - first
            topics.append({"error_code": _E.NONE, "name": name,
                           "topic_id": id_bytes(self.broker.topic_id(name)),
                           "is_internal": False, "partitions": parts,
                           "topic_authorized_operations": _ALL_OPS})
            if stop < n:
                next_cursor = {"topic_name": name, "partition_index": stop}
                break
        return {"throttle_time_ms": 0, "topics": topics, "next_cursor": next_cursor}

    def elect_leaders(self, body: dict, v: int, client: Any) -> dict:
        """Broker 0 already leads every partition: ELECTION_NOT_NEEDED for each one named.

        With no partitions named (all of them), Kafka leaves out those not needing an
        election, so the answer is empty.
        """
        out = []
        for t in body.get("topic_partitions") or []:
            try:
                n = self.broker.partitions_for(t["topic"])
            except UnknownTopicError:
                n = 0
            res = []
            for p in t["partitions"]:
                if 0 <= p < n:
                    res.append({"partition_id": p, "error_code": _E.ELECTION_NOT_NEEDED,
                                "error_message": "Leader election not needed for topic "
                                                 "partition."})
                else:
                    res.append({"partition_id": p, "error_code": _E.UNKNOWN_TOPIC_OR_PARTITION,
                                "error_message": "The partition does not exist."})
            out.append({"topic": t["topic"], "partition_result": res})
        return {"throttle_time_ms": 0, "error_code": _E.NONE, "replica_election_results": out}

    # ------------------------------------------------------------------ configs
    def describe_configs(self, body: dict, v: int, client: Any) -> dict:
        with_doc = bool(body.get("include_documentation"))
        return {"throttle_time_ms": 0, "results": [
            describe_resource(self.broker, r, auto_create=self.auto_create_topics,
                              with_doc=with_doc) for r in body.get("resources", [])]}

    def alter_configs(self, body: dict, v: int, client: Any) -> dict:
        return self._alter(body, incremental=False)

    def incremental_alter_configs(self, body: dict, v: int, client: Any) -> dict:
        return self._alter(body, incremental=True)

    def _alter(self, body: dict, incremental: bool) -> dict:
        vo = bool(body.get("validate_only"))
        return {"throttle_time_ms": 0, "responses": [
            alter_resource(self.broker, r, incremental=incremental, validate_only=vo)
            for r in body.get("resources", [])]}

    # ------------------------------------------------------------------ groups
    def delete_groups(self, body: dict, v: int, client: Any) -> dict:
        results = []
        for g in body.get("groups_names", []):
            try:  # one at a time: a group id that cannot be one fails alone
                err = self.coordinator.delete_groups([g]).get(g)
                code = _E.NONE if err is None else getattr(err, "kafka_code",
                                                           _E.UNKNOWN_SERVER_ERROR)
            except ConfigError:
                code = _E.INVALID_GROUP_ID
            except LogMQError as e:
                code = e.kafka_code
            results.append({"group_id": g, "error_code": code})
        return {"throttle_time_ms": 0, "results": results}

    def offset_delete(self, body: dict, v: int, client: Any) -> dict:
        """Drop committed offsets of some partitions, unless the group's members consume
        them (GROUP_SUBSCRIBED_TO_TOPIC), as Kafka does."""
        try:
            return self._offset_delete(body["group_id"], body.get("topics", []))
        except ConfigError:  # a group id that cannot be one (NUL, ...)
            return {"error_code": _E.INVALID_GROUP_ID, "throttle_time_ms": 0, "topics": []}
        except LogMQError as e:
            return {"error_code": e.kafka_code, "throttle_time_ms": 0, "topics": []}

    def _offset_delete(self, gid: str, topics: list[dict]) -> dict:
        subscribed, known = self._group_subscriptions(gid)
        if not known:
            return {"error_code": _E.GROUP_ID_NOT_FOUND, "throttle_time_ms": 0, "topics": []}
        doomed: set[tuple[str, int]] = set()
        out = []
        existing = set(self.broker.list_topics())
        for t in topics:
            name = t["name"]
            parts = []
            for p in t["partitions"]:
                idx = p["partition_index"]
                if name not in existing:
                    code = _E.UNKNOWN_TOPIC_OR_PARTITION
                elif name in subscribed:
                    code = _E.GROUP_SUBSCRIBED_TO_TOPIC
                else:
                    code = _E.NONE
                    doomed.add((name, idx))
                parts.append({"partition_index": idx, "error_code": code})
            out.append({"name": name, "partitions": parts})
        if doomed:
            self.coordinator.delete_offsets(gid, doomed)
        return {"error_code": _E.NONE, "throttle_time_ms": 0, "topics": out}

    def _group_subscriptions(self, gid: str) -> tuple[set[str], bool]:
        """(topics the members subscribe to, whether the group exists at all)."""
        from logmq.protocol.consumer_protocol import decode_subscription

        if not any(g == gid for g, _pt, _st in self.coordinator.list_groups()):
            return set(), False
        d = self.coordinator.describe_group(gid)
        topics: set[str] = set()
        if d.state in ("Dead", "Empty"):
            return topics, True
        # members' metadata is described only when Stable; mid-rebalance it is in flux, and
        # Kafka then treats the group as subscribed to what it consumed before: be safe
        opaque = not d.members  # rebalancing: the members' subscriptions are not known
        for m in d.members:
            try:
                topics.update(decode_subscription(m.metadata).get("topics") or [])
            except Exception:  # not the consumer protocol (an embedded or custom member)
                opaque = True
        if opaque:  # protect every topic the group has offsets for
            topics.update(t for t, _p in self.coordinator.fetch_offsets(gid, None))
        return topics, True

    # ------------------------------------------------------------------ log dirs, producers
    def describe_log_dirs(self, body: dict, v: int, client: Any) -> dict:
        wanted = body.get("topics")
        want: dict[str, set[int]] | None = None
        if wanted is not None:
            want = {t["topic"]: set(t["partitions"]) for t in wanted}
        by_topic: dict[str, list[dict]] = {}
        for (topic, p), plog in sorted(self.broker.partition_logs()):
            if want is not None and p not in want.get(topic, ()):
                continue
            by_topic.setdefault(topic, []).append({
                "partition_index": p, "partition_size": plog.size_bytes, "offset_lag": 0,
                "is_future_key": False})
        path = os.path.abspath(self.broker.path)
        try:
            du = shutil.disk_usage(path)
            total, usable = du.total, du.free
        except OSError:
            total = usable = -1
        return {"throttle_time_ms": 0, "error_code": _E.NONE, "results": [{
            "error_code": _E.NONE, "log_dir": path,
            "topics": [{"name": t, "partitions": ps} for t, ps in by_topic.items()],
            "total_bytes": total, "usable_bytes": usable}]}

    def describe_producers(self, body: dict, v: int, client: Any) -> dict:
        out = []
        for t in body.get("topics", []):
            parts = []
            for idx in t["partition_indexes"]:
                pr: dict[str, Any] = {"partition_index": idx, "error_code": _E.NONE,
                                      "error_message": None, "active_producers": []}
                try:
                    plog = self.broker.partition_log(t["name"], idx)
                    for pid, e in sorted(plog.producer_state.producers.items()):
                        pr["active_producers"].append({
                            "producer_id": pid, "producer_epoch": e.epoch,
                            "last_sequence": e.last_seq, "last_timestamp": e.last_timestamp,
                            "coordinator_epoch": e.coordinator_epoch,
                            "current_txn_start_offset": e.txn_first})
                except LogMQError as e:
                    pr["error_code"] = e.kafka_code
                    pr["error_message"] = str(e)
                parts.append(pr)
            out.append({"name": t["name"], "partitions": parts})
        return {"throttle_time_ms": 0, "topics": out}

    def admin_table(self) -> dict[int, Any]:
        return {2: self.list_offsets, 19: self.create_topics, 20: self.delete_topics,
                32: self.describe_configs,
                33: self.alter_configs, 35: self.describe_log_dirs, 37: self.create_partitions,
                42: self.delete_groups, 43: self.elect_leaders,
                44: self.incremental_alter_configs, 47: self.offset_delete,
                60: self.describe_cluster, 61: self.describe_producers,
                75: self.describe_topic_partitions}


def _below_lso(pr: dict, ts: int, plog: PartitionLog) -> None:
    """read_committed ListOffsets, as Kafka: latest is the last stable offset, and a lookup by
    time finds nothing at or past it."""
    lso = last_stable_offset(plog)
    if ts == LATEST:
        pr["offset"] = lso
    elif ts >= 0 and pr["offset"] >= lso:
        pr["offset"] = pr["timestamp"] = pr["leader_epoch"] = -1


def _fail(res: dict, code: int, message: str) -> int:
    res["error_code"] = code
    res["error_message"] = message
    return 0
