"""Client quotas: Kafka's ``producer_byte_rate``, ``consumer_byte_rate`` and
``request_percentage`` per user and client id, kept in LMDB, enforced by throttling.

An entity is a user (the principal's name: ``User:alice`` -> ``alice``), a client id, both,
or their defaults (name None), and the quota that applies to a request is the first one
found in Kafka's order: user+client, user+default client, user, default user+client, default
user+default client, default user, client, default client. Users (and clients) matched
through a default each get their own allowance.

Enforcement is a leaky bucket per matched entity: a request's bytes (or, for
``request_percentage``, its handler time as a share of one thread) push the bucket's "ready
at" time forward by amount / rate; the response carries the time left as
``throttle_time_ms`` and the connection's next request waits it out (Kafka's muting after the
response, KIP-219), so the long-run rate is the quota, with at most ``BURST_S`` seconds of
credit after idling. Throttles are capped at ``MAX_THROTTLE_S`` (the rest is paid later).
``request_percentage`` counts the handler's wall time as a share of one thread, except for
the long polls (Fetch, ShareFetch, JoinGroup, SyncGroup), whose waiting is not work: their
bytes are what a fetch quota limits.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from logmq.broker.names import LMDB_MAX_KEY_BYTES, key_fits
from logmq.kafka_codes import ErrorCode as _E

if TYPE_CHECKING:
    import lmdb

__all__ = ["QuotaManager", "QUOTA_KEYS", "BURST_S", "MAX_THROTTLE_S"]

BURST_S = 0.5
MAX_THROTTLE_S = 10.0
_DB = b"quotas"
USER, CLIENT, IP = "user", "client-id", "ip"
#: the quota keys each entity kind may carry (Kafka's QuotaConfig names)
QUOTA_KEYS: dict[str, frozenset[str]] = {
    USER: frozenset(("producer_byte_rate", "consumer_byte_rate", "request_percentage",
                     "controller_mutation_rate")),
    CLIENT: frozenset(("producer_byte_rate", "consumer_byte_rate", "request_percentage",
                       "controller_mutation_rate")),
    IP: frozenset(("connection_creation_rate",)),
}
Entity = tuple[tuple[str, str | None], ...]
#: the order Kafka's answers list a entity's values in (its hash map's: tools print it)
_VALUE_ORDER = {k: i for i, k in enumerate((
    "connection_creation_rate", "request_percentage", "producer_byte_rate",
    "consumer_byte_rate", "controller_mutation_rate"))}


def _entity(parts: list[dict]) -> Entity:
    return tuple(sorted((p["entity_type"], p.get("entity_name")) for p in parts))


def _records_len(r: Any) -> int:
    if r is None:
        return 0
    length = getattr(r, "length", None)
    return int(length) if length is not None else len(r)


class QuotaManager:
    """Quota definitions (LMDB ``quotas``, cached) and the buckets of one server."""

    def __init__(self, env: lmdb.Environment) -> None:
        self._env = env
        self._db = env.open_db(_DB)
        self._lock = threading.Lock()
        with env.begin(db=self._db) as txn:
            self._quotas: dict[Entity, dict[str, float]] = {
                tuple((t, n) for t, n in json.loads(bytes(k))): json.loads(bytes(v))
                for k, v in txn.cursor()}
        self._ready: dict[tuple, float] = {}
        self._muted: dict[Any, float] = {}

    # ------------------------------------------------------------------ lookup
    def quota_for(self, key: str, user: str, client_id: str) -> tuple[Entity, float] | None:
        """(bucket, rate) of the quota ``key`` that applies, in Kafka's precedence order."""
        u, c = (USER, user), (CLIENT, client_id)
        ud, cd = (USER, None), (CLIENT, None)
        for ent, bucket in (((c, u), (c, u)), ((cd, u), (c, u)), ((u,), (u,)),
                            ((c, ud), (c, u)), ((cd, ud), (c, u)), ((ud,), (u,)),
                            ((c,), (c,)), ((cd,), (c,))):
            q = self._quotas.get(ent)
            if q is not None and key in q:
                return bucket, q[key]
        return None

    # ------------------------------------------------------------------ enforcement
    @property
    def active(self) -> bool:
        """Any quota defined, or a connection still muted."""
        return bool(self._quotas) or bool(self._muted)

    def pending_delay(self, client: Any) -> float:
        """Seconds the connection's next request must wait (0 when it is not muted)."""
        if not self._muted:
            return 0.0
        with self._lock:
            until = self._muted.pop(client, None)
        return 0.0 if until is None else max(0.0, until - time.monotonic())

    def charge(self, api: int, body: dict, resp: dict | None, client: Any, principal: str,
               seconds: float) -> dict | None:
        """Account one answered request; sets ``throttle_time_ms`` and mutes when over."""
        if not self._quotas:
            return resp
        user = principal.partition(":")[2] or principal
        cid = getattr(client, "client_id", None) or ""
        delay = self._take("request_percentage", user, cid, seconds * 100.0)
        if api == 0:
            n = sum(_records_len(p.get("records")) for t in body.get("topic_data") or []
                    for p in t.get("partition_data") or [])
            delay = max(delay, self._take("producer_byte_rate", user, cid, n))
        elif api == 1 and resp is not None:
            n = sum(_records_len(p.get("records")) for t in resp.get("responses") or []
                    for p in t.get("partitions") or [])
            delay = max(delay, self._take("consumer_byte_rate", user, cid, n))
        if delay <= 0.001:
            return resp
        delay = min(delay, MAX_THROTTLE_S)
        now = time.monotonic()
        with self._lock:
            if len(self._muted) > 1024:  # connections gone while muted
                self._muted = {k: t for k, t in self._muted.items() if t > now}
            self._muted[client] = now + delay
        if resp is not None:
            resp["throttle_time_ms"] = max(int(resp.get("throttle_time_ms") or 0),
                                           int(delay * 1000))
        return resp

    def _take(self, key: str, user: str, cid: str, amount: float) -> float:
        found = self.quota_for(key, user, cid)
        if found is None or amount <= 0:
            return 0.0
        bucket, rate = found
        now = time.monotonic()
        with self._lock:
            k = (bucket, key)
            floor = now - BURST_S  # idle time earns at most BURST_S of credit
            ready = max(self._ready.get(k, floor), floor) + amount / max(rate, 1e-9)
            self._ready[k] = ready
        return ready - now

    # ------------------------------------------------------------------ admin APIs
    def describe(self, body: dict, v: int, client: Any) -> dict:
        comps = body.get("components") or []
        types = [c["entity_type"] for c in comps]
        if len(set(types)) != len(types):
            return {"throttle_time_ms": 0, "error_code": _E.INVALID_REQUEST,
                    "error_message": "duplicate entity type in the filter", "entries": None}
        strict = bool(body.get("strict"))
        out = []
        for ent, values in sorted(self._quotas.items(), key=lambda kv: repr(kv[0])):
            named = dict(ent)
            if strict and set(named) != set(types):
                continue
            if not all(_component_matches(c, named) for c in comps):
                continue
            out.append({"entity": [{"entity_type": t, "entity_name": n} for t, n in ent],
                        "values": [{"key": k, "value": float(x)} for k, x in sorted(
                            values.items(), key=lambda kv: _VALUE_ORDER.get(kv[0], 99))]})
        return {"throttle_time_ms": 0, "error_code": 0, "error_message": None, "entries": out}

    def alter(self, body: dict, v: int, client: Any) -> dict:
        results = []
        for e in body.get("entries") or []:
            code, msg = self._alter_one(e, bool(body.get("validate_only")))
            results.append({"error_code": code, "error_message": msg, "entity": e["entity"]})
        return {"throttle_time_ms": 0, "entries": results}

    def _alter_one(self, e: dict, validate_only: bool) -> tuple[int, str | None]:
        ent = _entity(e.get("entity") or [])
        kinds = [t for t, _ in ent]
        if not ent or len(set(kinds)) != len(kinds) or any(t not in QUOTA_KEYS for t in kinds) \
                or (IP in kinds and len(kinds) > 1):
            return _E.INVALID_REQUEST, f"invalid quota entity {list(ent)}"
        allowed = frozenset.intersection(*(QUOTA_KEYS[t] for t in kinds))
        values = dict(self._quotas.get(ent, {}))
        for op in e.get("ops") or []:
            key = op["key"]
            if key not in allowed:
                return _E.INVALID_REQUEST, f"invalid quota key {key!r} for {'/'.join(kinds)}"
            if op.get("remove"):
                values.pop(key, None)
            elif not op["value"] > 0:
                return _E.INVALID_REQUEST, f"quota {key} must be positive"
            else:
                values[key] = float(op["value"])
        raw = json.dumps([list(p) for p in ent]).encode()
        if not key_fits(raw):  # the entity is the LMDB key (logmq.broker.names)
            return _E.INVALID_REQUEST, (f"quota entity names too long: {len(raw)} bytes stored, "
                                        f"at most {LMDB_MAX_KEY_BYTES}")
        if validate_only:
            return 0, None
        with self._lock:
            with self._env.begin(db=self._db, write=True) as txn:
                if values:
                    txn.put(raw, json.dumps(values).encode())
                else:
                    txn.delete(raw)
            if values:
                self._quotas[ent] = values
            else:
                self._quotas.pop(ent, None)
            self._ready = {}
        return 0, None

    def table(self) -> dict[int, Any]:
        return {48: self.describe, 49: self.alter}


def _component_matches(c: dict, named: dict[str, str | None]) -> bool:
    t = c["entity_type"]
    if t not in named:
        return False
    mt = c.get("match_type", 0)
    if mt == 0:
        return named[t] == c.get("match")
    if mt == 1:
        return named[t] is None
    return True
