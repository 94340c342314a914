"""What newer request versions change in shape, translated to the shape the handlers serve.

Kafka 4 reorganised a few requests without changing what they mean: OffsetFetch v8+ asks for
several groups at once, OffsetCommit and OffsetFetch v10 name topics by id instead of by
name. Rather than a second copy of each handler, these functions rewrite the request into the
older form, call the one handler, and rewrite its answer back, so the semantics (which error
when) stay written once in ``handlers.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from logmq.kafka_codes import ErrorCode as _E
from logmq.server.topic_ids import ZERO_ID, TopicIds

__all__ = ["by_topic_id", "offset_fetch_groups", "filter_groups"]


def by_topic_id(ids: TopicIds, topics: list[dict], call: Callable[[list[dict]], list[dict]],
                unknown: Callable[[dict], dict]) -> list[dict]:
    """Serve ``topics`` named by ``topic_id`` through ``call``, which takes and answers topics
    named by ``name`` (in the order given). A topic whose id names none is answered by
    ``unknown(request_topic)`` (an UNKNOWN_TOPIC_ID entry) without reaching ``call``."""
    named: list[dict] = []
    plan: list[tuple[dict, bool]] = []
    for t in topics:
        name = ids.name_of(t.get("topic_id"))
        plan.append((t, name is not None))
        if name is not None:
            named.append(dict(t, name=name))
    answered = iter(call(named) if named else [])
    out = []
    for t, known in plan:
        if known:
            out.append(dict(next(answered), topic_id=t["topic_id"]))
        else:
            out.append(dict(unknown(t), topic_id=t.get("topic_id") or ZERO_ID))
    return out


def _fetch_unknown(t: dict) -> dict:
    return {"partitions": [{"partition_index": p, "committed_offset": -1,
                            "committed_leader_epoch": -1, "metadata": "",
                            "error_code": _E.UNKNOWN_TOPIC_ID}
                           for p in t.get("partition_indexes") or []]}


def offset_fetch_groups(ids: TopicIds, body: dict, v: int,
                        one: Callable[[dict], dict]) -> dict:
    """OffsetFetch v8+: each group of the request answered by ``one`` (the v7 handler, which
    takes ``{group_id, topics, require_stable}`` and answers ``{error_code, topics}``)."""
    groups = []
    for g in body.get("groups") or []:
        req = {"group_id": g["group_id"], "topics": g.get("topics"),
               "require_stable": body.get("require_stable", False),
               "member_id": g.get("member_id"), "member_epoch": g.get("member_epoch", -1)}
        if v < 10 or g.get("topics") is None:
            resp = one(req)
            topics = resp.get("topics", [])
            if v >= 10:  # all committed offsets: name each topic by its id (gone ones drop)
                topics = [dict(t, topic_id=ids.id_of(t["name"])) for t in topics]
                topics = [t for t in topics if t["topic_id"] != ZERO_ID]
            groups.append({"group_id": g["group_id"], "error_code": resp["error_code"],
                           "topics": topics})
            continue
        code: list[int] = [_E.NONE]

        def call(named: list[dict], req: dict = req, code: list[int] = code) -> list[dict]:
            resp = one(dict(req, topics=named))
            code[0] = resp["error_code"]
            return list(resp.get("topics", []))

        topics = by_topic_id(ids, g["topics"], call, _fetch_unknown)
        groups.append({"group_id": g["group_id"], "error_code": code[0], "topics": topics})
    return {"throttle_time_ms": 0, "groups": groups}


def filter_groups(groups: list[dict], body: dict) -> list[dict]:
    """ListGroups v4+ ``states_filter`` and v5+ ``types_filter`` (both case-insensitive, as in
    Kafka; an empty filter keeps every group)."""
    states = {s.lower() for s in body.get("states_filter") or []}
    types = {t.lower() for t in body.get("types_filter") or []}
    return [g for g in groups
            if (not states or g["group_state"].lower() in states)
            and (not types or g["group_type"].lower() in types)]
