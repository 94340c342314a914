"""Where Kafka checks which ACL, per API: each rule filters a request before its handler and
merges the refused entries, with Kafka's error codes, into the handler's response after.

A rule gets the request body and an :class:`Ask` (the principal's questions to the
authorizer) and returns a :class:`Plan`: the body the handler should see (refused topics or
groups removed), or a whole response when nothing is left to handle, and a ``merge`` that
puts the refused entries back in their place. Error entries carry only the fields that differ
from the schema's defaults (the codec fills the rest). The checks follow Apache Kafka 4.4's
KafkaApis (which resource, which operation, which code, what is hidden instead of refused).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from logmq.broker.acls import CLUSTER_NAME, AclOperation, ResourceType
from logmq.kafka_codes import ErrorCode as _E

__all__ = ["Ask", "Plan", "RULES", "TOPIC_DENIED", "GROUP_DENIED", "CLUSTER_DENIED",
           "TXN_DENIED"]

TOPIC_DENIED: int = _E.TOPIC_AUTHORIZATION_FAILED
GROUP_DENIED: int = _E.GROUP_AUTHORIZATION_FAILED
CLUSTER_DENIED: int = _E.CLUSTER_AUTHORIZATION_FAILED
TXN_DENIED: int = _E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
UNKNOWN_TOPIC: int = _E.UNKNOWN_TOPIC_OR_PARTITION
_NOT_ASKED = -2147483648

Op = AclOperation
RT = ResourceType
T, G, C, X = RT.TOPIC, RT.GROUP, RT.CLUSTER, RT.TRANSACTIONAL_ID


class Ask(Protocol):
    """What a rule may ask about the request's principal."""

    def may(self, op: AclOperation, rtype: ResourceType, name: str) -> bool: ...

    def may_any(self, op: AclOperation, rtype: ResourceType) -> bool: ...

    def ops(self, rtype: ResourceType, name: str) -> int: ...

    def topic_exists(self, name: str) -> bool: ...

    def auto_create(self) -> bool: ...

    def name_of(self, entry: dict, key: str) -> str:
        """The topic an entry names (its ``key`` field, else its ``topic_id`` resolved)."""
        ...


@dataclass
class Plan:
    body: dict
    response: dict | None = None
    merge: Callable[[dict], dict] | None = None
    refused: list[Any] = field(default_factory=list)  # what the audit calls "denied"


def _cluster(a: Ask, op: AclOperation) -> bool:
    return a.may(op, C, CLUSTER_NAME)


def _topic_lists(body: dict, v: int, a: Ask, list_key: str, name_key: str, op: AclOperation,
                 out_key: str, out_name: str, part_key: str, out_parts: str,
                 out_part_index: str, code_key: str = "error_code",
                 extra: Callable[[str], int | None] | None = None,
                 parts_of: Callable[[dict], list[int]] | None = None) -> Plan:
    """The common shape: topics with partitions in, topics with partitions out."""
    keep, refused = [], []
    for t in body.get(list_key) or []:
        name = a.name_of(t, name_key)
        code = None if a.may(op, T, name) else TOPIC_DENIED
        if code is None and extra is not None:
            code = extra(name)
        if code is None:
            keep.append(t)
        else:
            refused.append((t, code))
    if not refused:
        return Plan(body)
    new = dict(body)
    new[list_key] = keep

    def entry(t: dict, code: int) -> dict:
        ps = parts_of(t) if parts_of else [p[part_key] for p in t.get("partitions") or []]
        return {out_name: t.get(name_key), "topic_id": t.get("topic_id"),
                out_parts: [{out_part_index: p, code_key: code} for p in ps]}

    def merge(resp: dict) -> dict:
        resp.setdefault(out_key, [])
        resp[out_key] = list(resp[out_key]) + [entry(t, c) for t, c in refused]
        return resp

    plan = Plan(new, merge=merge, refused=[a.name_of(t, name_key) for t, _ in refused])
    if not keep:
        plan.response = merge({"throttle_time_ms": 0, out_key: []})
    return plan


# ---------------------------------------------------------------------------- data
def produce(body: dict, v: int, a: Ask) -> Plan:
    tid = body.get("transactional_id")
    if tid is not None and _transactional(body) and not a.may(Op.WRITE, X, tid):
        return _acks0(body, Plan(body, refused=[tid], response={"responses": [
            {"name": t["name"], "partition_responses": [
                {"index": p["index"], "error_code": TXN_DENIED} for p in t["partition_data"]]}
            for t in body.get("topic_data") or []]}))

    def missing(name: str) -> int | None:
        # producing is no way around CREATE: a topic that is not there stays not there
        if not a.topic_exists(name) and not (_cluster(a, Op.CREATE)
                                             or a.may(Op.CREATE, T, name)):
            return UNKNOWN_TOPIC
        return None

    return _acks0(body, _topic_lists(
        body, v, a, "topic_data", "name", Op.WRITE, "responses", "name", "index",
        "partition_responses", "index", extra=missing,
        parts_of=lambda t: [p["index"] for p in t["partition_data"]]))


def _transactional(body: dict) -> bool:
    """Does any partition's first batch have the transactional flag (attributes bit 4)?
    Kafka checks the transactional id only then."""
    for t in body.get("topic_data") or []:
        for p in t.get("partition_data") or []:
            r = p.get("records")
            if r is not None and len(r) >= 23 and r[22] & 0x10:
                return True
    return False


def _acks0(body: dict, plan: Plan) -> Plan:
    if body.get("acks", 1) == 0 and plan.response is not None:
        plan.response = None
        plan.body = dict(plan.body, topic_data=[])  # nothing to write, nothing to answer
    return plan


def fetch(body: dict, v: int, a: Ask) -> Plan:
    if body.get("replica_id", -1) >= 0 or (body.get("replica_state") or {}).get(
            "replica_id", -1) >= 0:
        if not _cluster(a, Op.CLUSTER_ACTION):
            return Plan(body, response={"error_code": CLUSTER_DENIED, "responses": []})
    plan = _topic_lists(body, v, a, "topics", "topic", Op.READ, "responses", "topic",
                        "partition", "partitions", "partition_index")
    if plan.refused:
        plan.body["max_wait_ms"] = 0  # errors answer at once, as Kafka does
    return plan


def list_offsets(body: dict, v: int, a: Ask) -> Plan:
    return _topic_lists(body, v, a, "topics", "name", Op.DESCRIBE, "topics", "name",
                        "partition_index", "partitions", "partition_index")


def delete_records(body: dict, v: int, a: Ask) -> Plan:
    return _topic_lists(body, v, a, "topics", "name", Op.DELETE, "topics", "name",
                        "partition_index", "partitions", "partition_index")


def describe_producers(body: dict, v: int, a: Ask) -> Plan:
    return _topic_lists(body, v, a, "topics", "name", Op.READ, "topics", "name", "",
                        "partitions", "partition_index",
                        parts_of=lambda t: list(t.get("partition_indexes") or []))


def metadata(body: dict, v: int, a: Ask) -> Plan:
    requested = body.get("topics")
    every = requested is None or (v == 0 and not requested)
    refused: list[tuple[str, int]] = []
    new = dict(body)
    if not every:
        keep = []
        create = body.get("allow_auto_topic_creation", True) and a.auto_create()
        for t in requested or []:
            name = a.name_of(t, "name")
            if not a.may(Op.DESCRIBE, T, name):
                refused.append((name, TOPIC_DENIED))
            elif create and not a.topic_exists(name) and not (
                    _cluster(a, Op.CREATE) or a.may(Op.CREATE, T, name)):
                refused.append((name, TOPIC_DENIED))
            else:
                keep.append(t)
        new["topics"] = keep
    want_topic_ops = body.get("include_topic_authorized_operations", False)
    want_cluster_ops = body.get("include_cluster_authorized_operations", False)

    def merge(resp: dict) -> dict:
        topics = resp.get("topics") or []
        if every:  # hidden, not refused
            topics = [t for t in topics if a.may(Op.DESCRIBE, T, a.name_of(t, "name"))]
        elif not new["topics"]:
            topics = []  # v0 with nothing left would have listed every topic
        order = {a.name_of(t, "name"): i for i, t in enumerate(requested or [])}
        topics = topics + [{"error_code": code, "name": n, "is_internal": False,
                            "partitions": [], "topic_authorized_operations": _NOT_ASKED}
                           for n, code in refused]
        if order:
            topics.sort(key=lambda t: order.get(a.name_of(t, "name"), len(order)))
        if want_topic_ops:
            for t in topics:
                if t.get("error_code", 0) == 0:
                    t["topic_authorized_operations"] = a.ops(T, a.name_of(t, "name"))
        resp["topics"] = topics
        if want_cluster_ops:
            resp["cluster_authorized_operations"] = a.ops(C, CLUSTER_NAME)
        return resp

    return Plan(new, merge=merge, refused=[n for n, _ in refused])


def describe_topic_partitions(body: dict, v: int, a: Ask) -> Plan:
    requested = body.get("topics") or []
    refused = [t["name"] for t in requested if not a.may(Op.DESCRIBE, T, t["name"])]
    new = dict(body, topics=[t for t in requested if t["name"] not in refused])

    def merge(resp: dict) -> dict:
        topics = [t for t in resp.get("topics") or [] if a.may(Op.DESCRIBE, T, t["name"])]
        for t in topics:  # this API always reports them (no include flag)
            if t.get("error_code", 0) == 0:
                t["topic_authorized_operations"] = a.ops(T, t["name"])
        topics += [{"error_code": TOPIC_DENIED, "name": n, "partitions": [],
                    "topic_authorized_operations": _NOT_ASKED} for n in refused]
        resp["topics"] = sorted(topics, key=lambda t: t["name"])
        return resp

    plan = Plan(new, merge=merge, refused=refused)
    if requested and not new["topics"]:
        plan.response = merge({"topics": [], "next_cursor": None})
    return plan


# ---------------------------------------------------------------------------- admin
def _named(body: dict, a: Ask, list_key: str, name_of: Callable[[Any], str],
           allowed: Callable[[str], bool], out_key: str,
           entry: Callable[[Any], dict]) -> Plan:
    items = body.get(list_key) or []
    keep = [i for i in items if allowed(name_of(i))]
    refused = [i for i in items if not allowed(name_of(i))]
    if not refused:
        return Plan(body)

    def merge(resp: dict) -> dict:
        resp[out_key] = list(resp.get(out_key) or []) + [entry(i) for i in refused]
        return resp

    plan = Plan(dict(body, **{list_key: keep}), merge=merge,
                refused=[name_of(i) for i in refused])
    if not keep:
        plan.response = merge({out_key: []})
    return plan


def create_topics(body: dict, v: int, a: Ask) -> Plan:
    cluster = _cluster(a, Op.CREATE)
    return _named(body, a, "topics", lambda t: t["name"],
                  lambda n: cluster or a.may(Op.CREATE, T, n), "topics",
                  lambda t: {"name": t["name"], "error_code": TOPIC_DENIED,
                             "error_message": "Authorization failed.",
                             "topic_config_error_code": TOPIC_DENIED})


def delete_topics(body: dict, v: int, a: Ask) -> Plan:
    if body.get("topic_names") is not None and not body.get("topics"):
        return _named(body, a, "topic_names", lambda n: n,
                      lambda n: a.may(Op.DELETE, T, n), "responses",
                      lambda n: {"name": n, "error_code": TOPIC_DENIED})
    return _named(body, a, "topics", lambda t: a.name_of(t, "name"),
                  lambda n: a.may(Op.DELETE, T, n), "responses",
                  lambda t: {"name": t.get("name"), "topic_id": t.get("topic_id"),
                             "error_code": TOPIC_DENIED,
                             "error_message": "Authorization failed."})


def create_partitions(body: dict, v: int, a: Ask) -> Plan:
    return _named(body, a, "topics", lambda t: t["name"], lambda n: a.may(Op.ALTER, T, n),
                  "results", lambda t: {"name": t["name"], "error_code": TOPIC_DENIED,
                                        "error_message": "Authorization failed."})


def _config_rule(op: AclOperation, out_key: str) -> Callable[[dict, int, Ask], Plan]:
    def rule(body: dict, v: int, a: Ask) -> Plan:
        def allowed(r: dict) -> bool:
            rt = r["resource_type"]
            if rt == 2:
                return a.may(op, T, r["resource_name"])
            if rt == 32:
                return a.may(op, G, r["resource_name"])
            return _cluster(a, op)

        def entry(r: dict) -> dict:
            rt = r["resource_type"]
            code = TOPIC_DENIED if rt == 2 else GROUP_DENIED if rt == 32 else CLUSTER_DENIED
            return {"error_code": code, "error_message": None, "resource_type": rt,
                    "resource_name": r["resource_name"], "configs": []}

        items = body.get("resources") or []
        keep = [r for r in items if allowed(r)]
        refused = [r for r in items if not allowed(r)]
        if not refused:
            return Plan(body)
        order = [(r["resource_type"], r["resource_name"]) for r in items]

        def merge(resp: dict) -> dict:
            out = list(resp.get(out_key) or []) + [entry(r) for r in refused]
            out.sort(key=lambda r: order.index((r["resource_type"], r["resource_name"]))
                     if (r["resource_type"], r["resource_name"]) in order else len(order))
            resp[out_key] = out
            return resp

        plan = Plan(dict(body, resources=keep), merge=merge,
                    refused=[r["resource_name"] for r in refused])
        if not keep:
            plan.response = merge({out_key: []})
        return plan

    return rule


def _cluster_only(op: AclOperation, response: dict) -> Callable[[dict, int, Ask], Plan]:
    def rule(body: dict, v: int, a: Ask) -> Plan:
        if _cluster(a, op):
            return Plan(body)
        return Plan(body, response=dict(response), refused=[CLUSTER_NAME])

    return rule


def init_producer_id(body: dict, v: int, a: Ask) -> Plan:
    tid = body.get("transactional_id")
    if tid is not None:
        if a.may(Op.WRITE, X, tid):
            return Plan(body)
        return Plan(body, response={"error_code": TXN_DENIED}, refused=[tid])
    if _cluster(a, Op.IDEMPOTENT_WRITE) or a.may_any(Op.WRITE, T):
        return Plan(body)
    return Plan(body, response={"error_code": CLUSTER_DENIED}, refused=[CLUSTER_NAME])


# ---------------------------------------------------------------------------- groups
def _group_rule(op: AclOperation, denied: Callable[[dict, int], dict],
                key: str = "group_id") -> Callable[[dict, int, Ask], Plan]:
    def rule(body: dict, v: int, a: Ask) -> Plan:
        gid = body.get(key)
        if gid is None or a.may(op, G, gid):
            return Plan(body)
        return Plan(body, response=denied(body, v), refused=[gid])

    return rule


def _join_denied(body: dict, v: int) -> dict:
    return {"error_code": GROUP_DENIED, "generation_id": -1, "protocol_name": "",
            "leader": "", "member_id": body.get("member_id", ""), "members": []}


def _top(code: int) -> Callable[[dict, int], dict]:
    return lambda body, v: {"error_code": code}


def find_coordinator(body: dict, v: int, a: Ask) -> Plan:
    kt = body.get("key_type", 0)
    rt, code = (X, TXN_DENIED) if kt == 1 else (G, GROUP_DENIED)
    keys = body.get("coordinator_keys")
    if keys is None or v < 4:
        key = body.get("key", "")
        if kt not in (0, 1) or a.may(Op.DESCRIBE, rt, key):
            return Plan(body)
        return Plan(body, response={"error_code": code, "error_message": None, "node_id": -1,
                                    "host": "", "port": -1}, refused=[key])
    return _named(body, a, "coordinator_keys", lambda k: k,
                  lambda k: a.may(Op.DESCRIBE, rt, k), "coordinators",
                  lambda k: {"key": k, "node_id": -1, "host": "", "port": -1,
                             "error_code": code, "error_message": None})


def offset_commit(body: dict, v: int, a: Ask) -> Plan:
    gid = body["group_id"]
    if not a.may(Op.READ, G, gid):
        return Plan(body, refused=[gid], response={"topics": [
            {"name": t["name"], "partitions": [
                {"partition_index": p["partition_index"], "error_code": GROUP_DENIED}
                for p in t["partitions"]]} for t in body.get("topics") or []]})
    return _topic_lists(body, v, a, "topics", "name", Op.READ, "topics", "name",
                        "partition_index", "partitions", "partition_index")


def offset_fetch(body: dict, v: int, a: Ask) -> Plan:
    if v >= 8:
        return _offset_fetch_groups(body, v, a)
    gid = body["group_id"]
    if not a.may(Op.DESCRIBE, G, gid):
        return Plan(body, refused=[gid], response={"error_code": GROUP_DENIED, "topics": []})
    requested = body.get("topics")
    if requested is None:
        def hide(resp: dict) -> dict:
            resp["topics"] = [t for t in resp.get("topics") or []
                              if a.may(Op.DESCRIBE, T, t["name"])]
            return resp

        return Plan(body, merge=hide)
    plan = _topic_lists(body, v, a, "topics", "name", Op.DESCRIBE, "topics", "name", "",
                        "partitions", "partition_index",
                        parts_of=lambda t: list(t.get("partition_indexes") or []))
    if plan.response is not None:
        plan.response["error_code"] = 0
        for t in plan.response["topics"]:
            for p in t["partitions"]:
                p["committed_offset"] = -1
    return plan


def _offset_fetch_groups(body: dict, v: int, a: Ask) -> Plan:
    """OffsetFetch v8+: many groups, each checked (DESCRIBE) and its topics (DESCRIBE)."""
    keep, refused, topic_refusals = [], [], {}
    for g in body.get("groups") or []:
        gid = g["group_id"]
        if not a.may(Op.DESCRIBE, G, gid):
            refused.append(gid)
            continue
        topics = g.get("topics")
        if topics is not None:
            ok = [t for t in topics if a.may(Op.DESCRIBE, T, a.name_of(t, "name"))]
            bad = [t for t in topics if t not in ok]
            if bad:
                topic_refusals[gid] = bad
                g = dict(g, topics=ok)
        keep.append(g)

    def merge(resp: dict) -> dict:
        out = []
        for g in resp.get("groups") or []:
            gid = g["group_id"]
            topics = [t for t in g.get("topics") or []
                      if a.may(Op.DESCRIBE, T, a.name_of(t, "name"))]
            topics += [{"name": t.get("name"), "topic_id": t.get("topic_id"), "partitions": [
                {"partition_index": p, "committed_offset": -1, "error_code": TOPIC_DENIED}
                for p in t.get("partition_indexes") or []]}
                for t in topic_refusals.get(gid, [])]
            out.append(dict(g, topics=topics))
        out += [{"group_id": gid, "topics": [], "error_code": GROUP_DENIED} for gid in refused]
        resp["groups"] = out
        return resp

    plan = Plan(dict(body, groups=keep), merge=merge, refused=refused)
    if not keep and refused:
        plan.response = merge({"groups": []})
    return plan


def describe_groups(body: dict, v: int, a: Ask) -> Plan:
    want_ops = body.get("include_authorized_operations", False)
    plan = _named(body, a, "groups", lambda g: g, lambda g: a.may(Op.DESCRIBE, G, g),
                  "groups", lambda g: {"error_code": GROUP_DENIED, "group_id": g,
                                       "group_state": "", "protocol_type": "",
                                       "protocol_data": "", "members": [],
                                       "authorized_operations": _NOT_ASKED})
    order = list(body.get("groups") or [])
    inner = plan.merge

    def merge(resp: dict) -> dict:
        if inner is not None:
            resp = inner(resp)
        groups = list(resp.get("groups") or [])
        groups.sort(key=lambda g: order.index(g["group_id"]) if g["group_id"] in order
                    else len(order))
        if want_ops:
            for g in groups:
                if g.get("error_code", 0) == 0:
                    g["authorized_operations"] = a.ops(G, g["group_id"])
        resp["groups"] = groups
        return resp

    plan.merge = merge
    if plan.response is not None:
        plan.response = merge({"groups": []})
    return plan


def list_groups(body: dict, v: int, a: Ask) -> Plan:
    if _cluster(a, Op.DESCRIBE):
        return Plan(body)

    def hide(resp: dict) -> dict:
        resp["groups"] = [g for g in resp.get("groups") or []
                          if a.may(Op.DESCRIBE, G, g["group_id"])]
        return resp

    return Plan(body, merge=hide)


def delete_groups(body: dict, v: int, a: Ask) -> Plan:
    return _named(body, a, "groups_names", lambda g: g, lambda g: a.may(Op.DELETE, G, g),
                  "results", lambda g: {"group_id": g, "error_code": GROUP_DENIED})


def offset_delete(body: dict, v: int, a: Ask) -> Plan:
    gid = body["group_id"]
    if not a.may(Op.DELETE, G, gid):
        return Plan(body, refused=[gid], response={"error_code": GROUP_DENIED, "topics": []})
    plan = _topic_lists(body, v, a, "topics", "name", Op.READ, "topics", "name",
                        "partition_index", "partitions", "partition_index")
    if plan.response is not None:
        plan.response["error_code"] = 0
    return plan


# ---------------------------------------------------------------------------- others'
def txn_offset_commit(body: dict, v: int, a: Ask) -> Plan:
    def all_parts(code: int) -> dict:
        return {"topics": [{"name": t.get("name"), "partitions": [
            {"partition_index": p["partition_index"], "error_code": code}
            for p in t["partitions"]]} for t in body.get("topics") or []]}

    if not a.may(Op.WRITE, X, body["transactional_id"]):
        return Plan(body, response=all_parts(TXN_DENIED), refused=[body["transactional_id"]])
    if not a.may(Op.READ, G, body["group_id"]):
        return Plan(body, response=all_parts(GROUP_DENIED), refused=[body["group_id"]])
    if v >= 6:
        return Plan(body)
    return _topic_lists(body, v, a, "topics", "name", Op.READ, "topics", "name",
                        "partition_index", "partitions", "partition_index")


def add_partitions_to_txn(body: dict, v: int, a: Ask) -> Plan:
    if v >= 4:
        if _cluster(a, Op.CLUSTER_ACTION):
            return Plan(body)
        return Plan(body, response={"error_code": CLUSTER_DENIED}, refused=[CLUSTER_NAME])
    tid = body["v3_and_below_transactional_id"]

    def answer(code_of: Callable[[str], int]) -> dict:
        return {"results_by_topic_v3_and_below": [
            {"name": t["name"], "results_by_partition": [
                {"partition_index": p, "partition_error_code": code_of(t["name"])}
                for p in t["partitions"]]} for t in body["v3_and_below_topics"]]}

    if not a.may(Op.WRITE, X, tid):
        return Plan(body, response=answer(lambda n: TXN_DENIED), refused=[tid])
    bad = {t["name"] for t in body["v3_and_below_topics"] if not a.may(Op.WRITE, T, t["name"])}
    if not bad:
        return Plan(body)
    # Kafka fails the whole request: refused topics get the code, the others OPERATION_NOT_ATTEMPTED
    return Plan(body, refused=sorted(bad), response=answer(
        lambda n: TOPIC_DENIED if n in bad else _E.OPERATION_NOT_ATTEMPTED))


def add_offsets_to_txn(body: dict, v: int, a: Ask) -> Plan:
    if not a.may(Op.WRITE, X, body["transactional_id"]):
        return Plan(body, response={"error_code": TXN_DENIED},
                    refused=[body["transactional_id"]])
    if not a.may(Op.READ, G, body["group_id"]):
        return Plan(body, response={"error_code": GROUP_DENIED}, refused=[body["group_id"]])
    return Plan(body)


def _txn_rule(op: AclOperation) -> Callable[[dict, int, Ask], Plan]:
    def rule(body: dict, v: int, a: Ask) -> Plan:
        tid = body.get("transactional_id")
        if tid is None or a.may(op, X, tid):
            return Plan(body)
        return Plan(body, response={"error_code": TXN_DENIED}, refused=[tid])

    return rule


def describe_transactions(body: dict, v: int, a: Ask) -> Plan:
    return _named(body, a, "transactional_ids", lambda t: t,
                  lambda t: a.may(Op.DESCRIBE, X, t), "transaction_states",
                  lambda t: {"transactional_id": t, "error_code": TXN_DENIED,
                             "transaction_state": "", "topics": []})


def list_transactions(body: dict, v: int, a: Ask) -> Plan:
    def hide(resp: dict) -> dict:
        resp["transaction_states"] = [s for s in resp.get("transaction_states") or []
                                      if a.may(Op.DESCRIBE, X, s["transactional_id"])]
        return resp

    return Plan(body, merge=hide)


def _describe_groups_new(body: dict, v: int, a: Ask) -> Plan:
    return _named(body, a, "group_ids", lambda g: g, lambda g: a.may(Op.DESCRIBE, G, g),
                  "groups", lambda g: {"error_code": GROUP_DENIED, "group_id": g,
                                       "error_message": None, "members": [],
                                       "authorized_operations": _NOT_ASKED})


def _per_item(op: AclOperation, out_key: str, items: Callable[[dict], list[dict]]
              ) -> Callable[[dict, int, Ask], Plan]:
    """Cluster-level APIs whose responses have one result per request item."""
    def rule(body: dict, v: int, a: Ask) -> Plan:
        if _cluster(a, op):
            return Plan(body)
        return Plan(body, refused=[CLUSTER_NAME], response={out_key: [
            dict(i, error_code=CLUSTER_DENIED, error_message="Authorization failed.")
            for i in items(body)]})

    return rule


RULES: dict[int, Callable[[dict, int, Ask], Plan]] = {
    0: produce, 1: fetch, 2: list_offsets, 3: metadata,
    8: offset_commit, 9: offset_fetch, 10: find_coordinator,
    11: _group_rule(Op.READ, _join_denied), 12: _group_rule(Op.READ, _top(GROUP_DENIED)),
    13: _group_rule(Op.READ, lambda b, v: {"error_code": GROUP_DENIED, "members": []}),
    14: _group_rule(Op.READ, lambda b, v: {"error_code": GROUP_DENIED, "assignment": b""}),
    15: describe_groups, 16: list_groups,
    19: create_topics, 20: delete_topics, 21: delete_records, 22: init_producer_id,
    24: add_partitions_to_txn, 25: add_offsets_to_txn, 26: _txn_rule(Op.WRITE),
    28: txn_offset_commit,
    29: _cluster_only(Op.DESCRIBE, {"error_code": CLUSTER_DENIED,
                                    "error_message": "Authorization failed.",
                                    "resources": []}),
    30: _per_item(Op.ALTER, "results", lambda b: [{} for _ in b.get("creations") or []]),
    31: _per_item(Op.ALTER, "filter_results",
                  lambda b: [{"matching_acls": []} for _ in b.get("filters") or []]),
    32: _config_rule(Op.DESCRIBE_CONFIGS, "results"),
    33: _config_rule(Op.ALTER_CONFIGS, "responses"),
    35: _cluster_only(Op.DESCRIBE, {"error_code": CLUSTER_DENIED, "results": []}),
    37: create_partitions, 42: delete_groups,
    43: _cluster_only(Op.ALTER, {"error_code": CLUSTER_DENIED,
                                "replica_election_results": []}),
    44: _config_rule(Op.ALTER_CONFIGS, "responses"), 47: offset_delete,
    48: _cluster_only(Op.DESCRIBE_CONFIGS, {"error_code": CLUSTER_DENIED,
                                           "error_message": "Authorization failed.",
                                           "entries": None}),
    49: _per_item(Op.ALTER_CONFIGS, "entries",
                  lambda b: [{"entity": e["entity"]} for e in b.get("entries") or []]),
    51: _per_item(Op.ALTER, "results", lambda b: [
        {"user": u["name"]} for u in (b.get("deletions") or []) + (b.get("upsertions") or [])]),
    50: _cluster_only(Op.DESCRIBE, {"error_code": CLUSTER_DENIED,
                                    "error_message": "Authorization failed.",
                                    "results": []}),
    61: describe_producers, 65: describe_transactions, 66: list_transactions,
    68: _group_rule(Op.READ, _top(GROUP_DENIED)), 69: _describe_groups_new,
    75: describe_topic_partitions,
    76: _group_rule(Op.READ, _top(GROUP_DENIED)), 77: _describe_groups_new,
    78: _group_rule(Op.READ, _top(GROUP_DENIED)), 79: _group_rule(Op.READ, _top(GROUP_DENIED)),
}
