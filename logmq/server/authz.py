"""Authorization, quotas and auditing around the Kafka handlers, without touching them.

:meth:`Security.wrap` takes the server's handler table and returns one whose entries run the
API's rule (``logmq.server.authz_rules``: refused topics/groups removed from the request,
put back with their error codes after), charge the principal's quotas (``throttle_time_ms`` in
the response, and the connection's next request waits out the throttle: Kafka's muting,
KIP-219) and write audit entries for the actions ``logmq.broker.audit`` lists. A wrapped
handler keeps its kind (plain or coroutine function), so what the connection offloads to a
thread stays offloaded.

With the authorizer off (the default) no ACL is checked and the ACL APIs answer
SECURITY_DISABLED, as Kafka without ``authorizer.class.name``; quotas and (when configured)
the audit log still apply. The principal is ``ClientInfo.principal``, set by the listener's
TLS/SASL layer (``User:ANONYMOUS`` without one); tests may map clients to principals with
:attr:`Security.principal_hook`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from logmq.broker.acls import AclOperation, AclStore, Authorizer, ResourceType
from logmq.broker.audit import Audit, audit_path
from logmq.errors import InvalidAclError, LogMQError
from logmq.kafka_codes import ErrorCode as _E
from logmq.server.authz_rules import RULES, Plan
from logmq.server.quotas import QuotaManager

if TYPE_CHECKING:
    from logmq.broker.broker import Broker

__all__ = ["Security"]

log = logging.getLogger("logmq.server.authz")
_DENIED = frozenset((_E.TOPIC_AUTHORIZATION_FAILED, _E.GROUP_AUTHORIZATION_FAILED,
                     _E.CLUSTER_AUTHORIZATION_FAILED,
                     _E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED))
#: APIs that wait for data or members: their wall time is not request time (quotas)
_LONG_POLLS = frozenset((1, 11, 14, 78))
#: APIs that never need a principal's permission (they establish who it is, or what we speak)
_OPEN_APIS = frozenset((17, 18, 36))


def outcome_of(code: int) -> str:
    if code == 0:
        return "ok"
    if code in _DENIED:
        return "denied"
    try:
        return "error:" + _E(code).name
    except ValueError:
        return f"error:{code}"


class _Ask:
    """One request's questions to the authorizer (principal and host fixed)."""

    __slots__ = ("sec", "principal", "host")

    def __init__(self, sec: Security, principal: str, host: str) -> None:
        self.sec = sec
        self.principal = principal
        self.host = host

    def may(self, op: AclOperation, rtype: ResourceType, name: str) -> bool:
        auth = self.sec.authorizer
        return auth is None or auth.authorize(self.principal, self.host, op, rtype, name)

    def may_any(self, op: AclOperation, rtype: ResourceType) -> bool:
        auth = self.sec.authorizer
        return auth is None or auth.authorize_any(self.principal, self.host, op, rtype)

    def ops(self, rtype: ResourceType, name: str) -> int:
        auth = self.sec.authorizer
        if auth is None:
            return -2147483648
        return auth.authorized_operations(self.principal, self.host, rtype, name)

    def topic_exists(self, name: str) -> bool:
        try:
            self.sec.broker.partitions_for(name)
        except LogMQError:
            return False
        return True

    def auto_create(self) -> bool:
        return self.sec.auto_create

    def name_of(self, entry: dict, key: str) -> str:
        name = entry.get(key)
        if name is not None:
            return str(name)
        tid = entry.get("topic_id")
        return self.sec.topic_by_id(tid) if tid else ""


class Security:
    """The authorizer (None when off), ACL store, quotas and audit log of one server."""

    def __init__(self, broker: Broker, *, auto_create: bool = True) -> None:
        cfg = broker.config
        self.broker = broker
        self.auto_create = auto_create
        self.acls = AclStore(broker.meta.env)
        supers = [p.strip() for p in (cfg.super_users or "").split(",") if p.strip()]
        self.authorizer: Authorizer | None = None
        if cfg.authorizer:
            try:
                self.authorizer = Authorizer(self.acls, supers,
                                             cfg.allow_everyone_if_no_acl_found)
            except InvalidAclError as e:
                raise InvalidAclError(f"super_users: {e}") from None
        self.audit = Audit(audit_path(cfg.audit_log, str(broker.path), cfg.authorizer),
                           self._topic_sink(cfg.audit_topic))
        self.quotas = QuotaManager(broker.meta.env)
        #: tests only: ``hook(client) -> principal`` instead of ``client.principal``
        self.principal_hook: Callable[[Any], str] | None = None
        self._ids: dict[bytes, str] = {}

    def close(self) -> None:
        self.audit.close()

    def _topic_sink(self, topic: str | None) -> Callable[[str, bytes], None] | None:
        """Audit entries as records of ``topic`` (one partition, made if missing)."""
        if not topic:
            return None
        from logmq.codec.records import encode_batch

        broker = self.broker
        broker.create_topic(topic, 1, exist_ok=True)

        def append(event: str, line: bytes) -> None:
            try:
                plog = broker.partition_log(topic, 0)
            except LogMQError:  # deleted (by someone allowed to): made again
                broker.create_topic(topic, 1, exist_ok=True)
                plog = broker.partition_log(topic, 0)
            plog.append(encode_batch([(event.encode(), line)]), validate=False)

        return append

    def topic_by_id(self, topic_id: bytes) -> str:
        """The name of the topic with this wire id ("" when none has it: a request naming
        it is answered UNKNOWN_TOPIC_ID by its handler, which nobody may read through)."""
        raw = bytes(topic_id)
        if raw not in self._ids:
            self._ids = {}
            for name in self.broker.list_topics():
                try:
                    self._ids[uuid.UUID(hex=self.broker.topic_id(name)).bytes] = name
                except ValueError:
                    continue
        return self._ids.get(raw, "")

    def api_table(self) -> dict[int, Callable[..., Any]]:
        """The security APIs' handlers: ACLs (29-31) and client quotas (48, 49)."""
        from logmq.server.acl_handlers import AclHandlers

        return {**AclHandlers(self).table(), **self.quotas.table()}

    def principal(self, client: Any) -> str:
        if self.principal_hook is not None:
            return self.principal_hook(client)
        return str(getattr(client, "principal", "User:ANONYMOUS"))

    def ask(self, client: Any) -> _Ask:
        return _Ask(self, self.principal(client), str(getattr(client, "host", "")))

    @staticmethod
    def peer(client: Any) -> str:
        return f"{getattr(client, 'host', '?')}:{getattr(client, 'port', 0)}"

    # ------------------------------------------------------------------ wrapping
    def wrap(self, table: dict[int, Callable[..., Any]]) -> dict[int, Callable[..., Any]]:
        """The handler table with every API's rule, quotas and audit around its handler."""
        return {api: self._wrap(api, h) for api, h in table.items()}

    def _wrap(self, api: int, handler: Callable[..., Any]) -> Callable[..., Any]:
        if api in _OPEN_APIS:
            return handler
        rule = RULES.get(api)
        if rule is None:
            log.debug("api %d has no authorization rule: served to every principal", api)

        def before(body: dict, v: int, client: Any) -> tuple[Plan, Any, float]:
            ask = self.ask(client)
            if rule is None or self.authorizer is None:
                plan = Plan(body)
            else:
                plan = rule(body, v, ask)
            return plan, ask, time.perf_counter()

        def after(body: dict, v: int, client: Any, plan: Plan, ask: _Ask, t0: float,
                  resp: dict | None) -> dict | None:
            if resp is not None and plan.merge is not None and plan.response is None:
                resp = plan.merge(resp)
            if resp is not None and "throttle_time_ms" not in resp:
                resp["throttle_time_ms"] = 0
            self._audit(api, body, client, ask.principal, plan, resp)
            spent = 0.0 if api in _LONG_POLLS else time.perf_counter() - t0
            return self.quotas.charge(api, body, resp, client, ask.principal, spent)

        quotas, audit = self.quotas, self.audit

        def idle() -> bool:
            """Nothing to check, charge or record: the handler alone (the default setup)."""
            return self.authorizer is None and not quotas.active and not audit.enabled

        if inspect.iscoroutinefunction(handler):
            @functools.wraps(handler)
            async def wrapped_async(body: dict, v: int, client: Any) -> dict | None:
                if idle():
                    return await handler(body, v, client)
                delay = self.quotas.pending_delay(client)
                if delay > 0:
                    await asyncio.sleep(delay)
                plan, ask, t0 = before(body, v, client)
                if plan.response is not None:
                    return after(body, v, client, plan, ask, t0, plan.response)
                resp = await handler(plan.body, v, client)
                return after(body, v, client, plan, ask, t0, resp)

            return wrapped_async

        @functools.wraps(handler)
        def wrapped(body: dict, v: int, client: Any) -> Any:
            if idle():
                return handler(body, v, client)
            delay = self.quotas.pending_delay(client)
            if delay > 0:
                try:
                    asyncio.get_running_loop()
                except RuntimeError:  # offloaded to a worker thread: waiting here is free
                    time.sleep(delay)
                else:  # on the event loop: answer later, without blocking the others
                    return _later(delay, lambda: run(body, v, client))
            return run(body, v, client)

        def run(body: dict, v: int, client: Any) -> Any:
            plan, ask, t0 = before(body, v, client)
            if plan.response is not None:
                return after(body, v, client, plan, ask, t0, plan.response)
            res = handler(plan.body, v, client)
            if inspect.isawaitable(res):  # a plain function that hands back an awaitable
                return _then(res, lambda r: after(body, v, client, plan, ask, t0, r))
            return after(body, v, client, plan, ask, t0, res)

        return wrapped

    # ------------------------------------------------------------------ audit
    def _audit(self, api: int, body: dict, client: Any, principal: str, plan: Plan,
               resp: dict | None) -> None:
        if not self.audit.enabled or resp is None:
            return
        rec = functools.partial(self.audit.record, principal=principal, peer=self.peer(client))
        if api == 19:
            for t in resp.get("topics") or []:
                rec("topic.create", outcome=outcome_of(t.get("error_code", 0)),
                    topic=t["name"], validate_only=bool(body.get("validate_only")))
        elif api == 20:
            for t in resp.get("responses") or []:
                rec("topic.delete", outcome=outcome_of(t.get("error_code", 0)),
                    topic=t.get("name"))
        elif api == 37:
            for t in resp.get("results") or []:
                rec("partitions.create", outcome=outcome_of(t.get("error_code", 0)),
                    topic=t["name"])
        elif api in (33, 44):
            for r in resp.get("responses") or []:
                kind = {2: "topic", 4: "broker", 32: "group"}.get(r["resource_type"], "config")
                rec(f"{kind}.alter", outcome=outcome_of(r.get("error_code", 0)),
                    resource=r["resource_name"])
        elif api == 21:
            asked = {(t["name"], p["partition_index"]): p["offset"]
                     for t in body.get("topics") or [] for p in t["partitions"]}
            for t in resp.get("topics") or []:
                for p in t["partitions"]:
                    rec("records.delete", outcome=outcome_of(p.get("error_code", 0)),
                        topic=t["name"], partition=p["partition_index"],
                        offset=asked.get((t["name"], p["partition_index"])),
                        low_watermark=p.get("low_watermark", -1))
        elif api == 8 and not body.get("member_id") and \
                body.get("generation_id_or_member_epoch", -1) < 0:
            # an admin commit (kafka-consumer-groups --reset-offsets), not a member's
            for t in resp.get("topics") or []:
                for p in t["partitions"]:
                    rec("offsets.commit", outcome=outcome_of(p.get("error_code", 0)),
                        group=body["group_id"], topic=t["name"],
                        partition=p["partition_index"])
        elif api == 47:
            top = resp.get("error_code", 0)
            for t in resp.get("topics") or [{"name": None, "partitions": [{}]}]:
                for p in t["partitions"]:
                    rec("offsets.delete", outcome=outcome_of(top or p.get("error_code", 0)),
                        group=body["group_id"], topic=t["name"],
                        partition=p.get("partition_index"))
        elif api == 42:
            for g in resp.get("results") or []:
                rec("group.delete", outcome=outcome_of(g.get("error_code", 0)),
                    group=g["group_id"])
        elif api == 49:
            for e in resp.get("entries") or []:
                rec("quota.alter", outcome=outcome_of(e.get("error_code", 0)),
                    entity={c["entity_type"]: c["entity_name"] for c in e["entity"]},
                    validate_only=bool(body.get("validate_only")))
        elif api == 51:
            for r in resp.get("results") or []:
                rec("user.alter", outcome=outcome_of(r.get("error_code", 0)), user=r["user"])
        elif api in (30, 31) and plan.response is not None:
            # refused ACL changes (the accepted ones are recorded by logmq.server.acl_handlers)
            rec("acl.create" if api == 30 else "acl.delete", outcome="denied",
                count=len(body.get("creations") or body.get("filters") or []))


async def _later(delay: float, fn: Callable[[], Any]) -> Any:
    await asyncio.sleep(delay)
    res = fn()
    return await res if inspect.isawaitable(res) else res


async def _then(aw: Any, fn: Callable[[Any], Any]) -> Any:
    return fn(await aw)
