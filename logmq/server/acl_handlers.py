"""CreateAcls (30), DescribeAcls (29), DeleteAcls (31): ``kafka-acls`` and AdminClient manage
the ACLs of ``logmq.broker.acls`` over the wire.

Whether the principal may (ALTER / DESCRIBE on the cluster) is decided by the rules in
``logmq.server.authz_rules`` before these run; without the authorizer they answer
SECURITY_DISABLED, as Kafka does when no authorizer is configured (``logmq acls`` still
edits a stopped server's data directory).
"""

from __future__ import annotations

from typing import Any, Protocol

from logmq.broker.acls import AclBinding, AclFilter, AclStore, Authorizer, concrete
from logmq.broker.audit import Audit
from logmq.errors import InvalidAclError
from logmq.kafka_codes import ErrorCode as _E

__all__ = ["AclHandlers"]

_DISABLED = "No Authorizer is configured."


class Security(Protocol):
    """What these handlers need of ``logmq.server.authz.Security``."""

    acls: AclStore
    authorizer: Authorizer | None
    audit: Audit

    def principal(self, client: Any) -> str: ...

    def peer(self, client: Any) -> str: ...


class AclHandlers:
    def __init__(self, security: Security) -> None:
        self.sec = security

    def _record(self, event: str, client: Any, b: AclBinding) -> None:
        self.sec.audit.record(event, self.sec.principal(client), self.sec.peer(client), "ok",
                              acl=b.as_dict())

    def create_acls(self, body: dict, v: int, client: Any) -> dict:
        creations = body.get("creations") or []
        if self.sec.authorizer is None:
            return {"throttle_time_ms": 0, "results": [
                {"error_code": _E.SECURITY_DISABLED, "error_message": _DISABLED}
                for _ in creations]}
        if not all(concrete(c["resource_type"], c.get("resource_pattern_type", 3),
                            c["operation"], c["permission_type"]) for c in creations):
            # Kafka cannot turn such a creation into a binding and fails the whole request
            return {"throttle_time_ms": 0, "results": [
                {"error_code": _E.UNKNOWN_SERVER_ERROR, "error_message": None}
                for _ in creations]}
        results: list[dict] = []
        valid: list[AclBinding] = []
        for c in creations:
            try:
                b = AclBinding.of(c["resource_type"], c["resource_name"],
                                  c.get("resource_pattern_type", 3), c["principal"], c["host"],
                                  c["operation"], c["permission_type"])
            except InvalidAclError as e:
                results.append({"error_code": e.kafka_code, "error_message": str(e)})
                continue
            valid.append(b)
            results.append({"error_code": _E.NONE, "error_message": ""})  # Kafka's ""
        for b in self.sec.acls.add(valid):
            self._record("acl.create", client, b)
        return {"throttle_time_ms": 0, "results": results}

    @staticmethod
    def _filter(f: dict) -> AclFilter:
        return AclFilter.of(f["resource_type_filter"], f.get("resource_name_filter"),
                            f.get("pattern_type_filter", 3), f.get("principal_filter"),
                            f.get("host_filter"), f["operation"], f["permission_type"])

    def describe_acls(self, body: dict, v: int, client: Any) -> dict:
        if self.sec.authorizer is None:
            return {"throttle_time_ms": 0, "error_code": _E.SECURITY_DISABLED,
                    "error_message": _DISABLED, "resources": []}
        try:
            flt = self._filter(body)
        except InvalidAclError as e:
            return {"throttle_time_ms": 0, "error_code": e.kafka_code, "error_message": str(e),
                    "resources": []}
        groups: dict[tuple, list[dict]] = {}
        for b in self.sec.acls.find(flt):
            groups.setdefault((b.resource_type, b.resource_name, b.pattern_type), []).append(
                {"principal": b.principal, "host": b.host, "operation": int(b.operation),
                 "permission_type": int(b.permission)})
        return {"throttle_time_ms": 0, "error_code": _E.NONE, "error_message": None,
                "resources": [{"resource_type": int(rt), "resource_name": name,
                               "pattern_type": int(pt), "acls": acls}
                              for (rt, name, pt), acls in groups.items()]}

    def delete_acls(self, body: dict, v: int, client: Any) -> dict:
        filters = body.get("filters") or []
        if self.sec.authorizer is None:
            return {"throttle_time_ms": 0, "filter_results": [
                {"error_code": _E.SECURITY_DISABLED, "error_message": _DISABLED,
                 "matching_acls": []} for _ in filters]}
        out = []
        for f in filters:
            try:
                flt = self._filter(f)
            except InvalidAclError as e:
                out.append({"error_code": e.kafka_code, "error_message": str(e),
                            "matching_acls": []})
                continue
            gone = self.sec.acls.remove(flt)
            for b in gone:
                self._record("acl.delete", client, b)
            out.append({"error_code": _E.NONE, "error_message": None, "matching_acls": [
                {"error_code": _E.NONE, "error_message": None,
                 "resource_type": int(b.resource_type), "resource_name": b.resource_name,
                 "pattern_type": int(b.pattern_type), "principal": b.principal,
                 "host": b.host, "operation": int(b.operation),
                 "permission_type": int(b.permission)} for b in gone]})
        return {"throttle_time_ms": 0, "filter_results": out}

    def table(self) -> dict[int, Any]:
        return {29: self.describe_acls, 30: self.create_acls, 31: self.delete_acls}
