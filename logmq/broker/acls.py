"""Kafka's ACL model: bindings kept in the data directory's LMDB, and the authorizer over them.

Pure (no sockets, no server): the Kafka server (``logmq.server.authz``), the CLI
(``logmq acls``) and tests use the same store and the same decision. The rules are Kafka's
(StandardAuthorizer): super users may do anything; a DENY that matches wins over any ALLOW;
READ, WRITE, DELETE and ALTER imply DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS, ALL
implies everything; ``User:*`` matches every principal, host ``*`` every host, a LITERAL
``*`` every resource of its type, a PREFIXED name every resource starting with it. A resource
no ACL names at all is refused unless ``allow_everyone_if_no_acl_found``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from logmq.broker.names import LMDB_MAX_KEY_BYTES, key_fits
from logmq.errors import InvalidAclError

if TYPE_CHECKING:
    import lmdb

__all__ = ["ResourceType", "PatternType", "AclOperation", "AclPermission", "AclBinding",
           "AclFilter", "AclStore", "Authorizer", "CLUSTER_NAME", "WILDCARD",
           "parse_operation", "parse_principal", "ANONYMOUS"]

CLUSTER_NAME = "kafka-cluster"
WILDCARD = "*"
ANONYMOUS = "User:ANONYMOUS"
_DB = b"acls"


class ResourceType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class AclOperation(IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class AclPermission(IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


#: which granted operations allow the asked one (besides itself and ALL)
_IMPLIED_BY: dict[AclOperation, frozenset[AclOperation]] = {
    AclOperation.DESCRIBE: frozenset((AclOperation.READ, AclOperation.WRITE,
                                      AclOperation.DELETE, AclOperation.ALTER)),
    AclOperation.DESCRIBE_CONFIGS: frozenset((AclOperation.ALTER_CONFIGS,)),
}
#: the operations each resource type has (Kafka's authorized-operations sets)
RESOURCE_OPERATIONS: dict[ResourceType, tuple[AclOperation, ...]] = {
    ResourceType.TOPIC: (AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE,
                         AclOperation.DELETE, AclOperation.ALTER, AclOperation.DESCRIBE,
                         AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS),
    ResourceType.GROUP: (AclOperation.READ, AclOperation.DELETE, AclOperation.DESCRIBE),
    ResourceType.CLUSTER: (AclOperation.CREATE, AclOperation.CLUSTER_ACTION,
                           AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
                           AclOperation.IDEMPOTENT_WRITE, AclOperation.ALTER,
                           AclOperation.DESCRIBE),
    ResourceType.TRANSACTIONAL_ID: (AclOperation.DESCRIBE, AclOperation.WRITE),
}


def parse_operation(text: str) -> AclOperation:
    """``READ``, ``read``, ``describe-configs`` or ``DescribeConfigs`` (kafka-acls' spelling)."""
    key = text.strip().replace("-", "_").upper()
    if key not in AclOperation.__members__:
        key = "".join("_" + c if c.isupper() and i else c
                      for i, c in enumerate(text.strip())).upper()
    try:
        op = AclOperation[key]
    except KeyError:
        raise InvalidAclError(f"unknown ACL operation {text!r} (one of "
                              f"{', '.join(o.name for o in AclOperation if o > 1)})") from None
    if op <= AclOperation.ANY:
        raise InvalidAclError(f"{text!r} is not an operation an ACL can grant")
    return op


def parse_principal(text: str) -> str:
    """Kafka's ``Type:name`` (``User:alice``, ``User:*``); anything else is refused."""
    kind, sep, name = text.partition(":")
    if not sep or not kind or not name:
        raise InvalidAclError(f"Could not parse principal from `{text}` (not of the form "
                              "Type:name, e.g. User:alice, or User:* for everyone)")
    return text


def concrete(resource_type: int, pattern_type: int, operation: int, permission: int) -> bool:
    """Values a binding may hold (no ANY, MATCH or UNKNOWN, nothing out of range)."""
    return (resource_type in _CONCRETE_TYPES and pattern_type in (3, 4)
            and 2 <= operation <= max(AclOperation) and permission in (2, 3))


@dataclass(frozen=True)
class AclBinding:
    """One ACL: ``principal`` from ``host`` is ALLOWed or DENYed ``operation`` on a resource."""

    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: AclOperation
    permission: AclPermission

    @classmethod
    def of(cls, resource_type: int, resource_name: str, pattern_type: int, principal: str,
           host: str, operation: int, permission: int) -> AclBinding:
        """A validated binding from wire values (Kafka's CreateAcls checks, same messages)."""
        try:
            rt, pt = ResourceType(resource_type), PatternType(pattern_type)
            op, perm = AclOperation(operation), AclPermission(permission)
        except ValueError as e:
            raise InvalidAclError(f"invalid ACL: {e}") from None
        if rt in (ResourceType.UNKNOWN, ResourceType.ANY):
            raise InvalidAclError("resource type must be one of TOPIC, GROUP, CLUSTER, "
                                  "TRANSACTIONAL_ID, DELEGATION_TOKEN, USER")
        if pt not in (PatternType.LITERAL, PatternType.PREFIXED):
            raise InvalidAclError("pattern type must be LITERAL or PREFIXED")
        if op in (AclOperation.UNKNOWN, AclOperation.ANY):
            raise InvalidAclError("operation must be a specific operation, not ANY or UNKNOWN")
        if perm not in (AclPermission.ALLOW, AclPermission.DENY):
            raise InvalidAclError("permission must be ALLOW or DENY")
        if not resource_name:
            raise InvalidAclError("resource name must not be empty")
        if rt is ResourceType.CLUSTER and resource_name != CLUSTER_NAME:
            raise InvalidAclError(
                f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}")
        if not host:
            raise InvalidAclError("host must not be empty ('*' for every host)")
        binding = cls(rt, resource_name, pt, parse_principal(principal), host, op, perm)
        if not key_fits(binding.key()):  # the binding is its LMDB key (logmq.broker.names)
            raise InvalidAclError(f"ACL too long: resource name, principal and host take "
                                  f"{len(binding.key())} bytes stored, at most "
                                  f"{LMDB_MAX_KEY_BYTES}")
        return binding

    def key(self) -> bytes:
        return json.dumps([int(self.resource_type), self.resource_name, int(self.pattern_type),
                           self.principal, self.host, int(self.operation),
                           int(self.permission)]).encode()

    @classmethod
    def from_key(cls, raw: bytes) -> AclBinding:
        rt, name, pt, principal, host, op, perm = json.loads(raw)
        return cls(ResourceType(rt), name, PatternType(pt), principal, host,
                   AclOperation(op), AclPermission(perm))

    def matches_resource(self, rtype: ResourceType, name: str) -> bool:
        if self.resource_type is not rtype:
            return False
        if self.pattern_type is PatternType.PREFIXED:
            return name.startswith(self.resource_name)
        return self.resource_name == name or self.resource_name == WILDCARD

    def describe(self) -> str:
        """One line, kafka-acls style (for the CLI and logs)."""
        return (f"{self.permission.name} {self.principal} from {self.host}: "
                f"{self.operation.name} on {self.resource_type.name}:"
                f"{self.pattern_type.name}:{self.resource_name}")

    def as_dict(self) -> dict[str, Any]:
        return {"resource_type": self.resource_type.name, "resource_name": self.resource_name,
                "pattern_type": self.pattern_type.name, "principal": self.principal,
                "host": self.host, "operation": self.operation.name,
                "permission": self.permission.name}


@dataclass(frozen=True)
class AclFilter:
    """What DescribeAcls / DeleteAcls select: None (or ANY) matches every value; pattern MATCH
    selects the bindings that would apply to the named resource (literal, wildcard, prefixes).
    """

    resource_type: ResourceType = ResourceType.ANY
    resource_name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: AclOperation = AclOperation.ANY
    permission: AclPermission = AclPermission.ANY

    @classmethod
    def of(cls, resource_type: int, resource_name: str | None, pattern_type: int,
           principal: str | None, host: str | None, operation: int,
           permission: int) -> AclFilter:
        try:
            f = cls(ResourceType(resource_type), resource_name, PatternType(pattern_type),
                    principal, host, AclOperation(operation), AclPermission(permission))
        except ValueError as e:
            raise InvalidAclError(f"invalid ACL filter: {e}") from None
        if _has_unknown(f):
            raise InvalidAclError("an ACL filter cannot match UNKNOWN values")
        return f

    def matches(self, b: AclBinding) -> bool:
        if self.resource_type is not ResourceType.ANY and b.resource_type is not \
                self.resource_type:
            return False
        if self.pattern_type is PatternType.MATCH:
            if self.resource_name is not None and not (
                    b.pattern_type is PatternType.LITERAL and b.resource_name in (
                        self.resource_name, WILDCARD)
                    or b.pattern_type is PatternType.PREFIXED
                    and self.resource_name.startswith(b.resource_name)):
                return False
        else:
            if self.pattern_type is not PatternType.ANY and b.pattern_type is not \
                    self.pattern_type:
                return False
            if self.resource_name is not None and b.resource_name != self.resource_name:
                return False
        if self.principal is not None and b.principal != self.principal:
            return False
        if self.host is not None and b.host != self.host:
            return False
        if self.operation is not AclOperation.ANY and b.operation is not self.operation:
            return False
        return self.permission is AclPermission.ANY or b.permission is self.permission


def _has_unknown(f: AclFilter) -> bool:
    return (f.resource_type is ResourceType.UNKNOWN or f.pattern_type is PatternType.UNKNOWN
            or f.operation is AclOperation.UNKNOWN or f.permission is AclPermission.UNKNOWN)


class AclStore:
    """The bindings of one data directory (LMDB database ``acls``), with an in-memory copy.

    The copy is what the authorizer reads (no LMDB transaction per request); every change is
    committed to LMDB first, then applied to the copy, and bumps :attr:`version` so cached
    decisions are dropped. A change replaces the set rather than mutating it: readers iterate
    it without the lock, from the event loop, while CreateAcls / DeleteAcls run on threads.
    """

    def __init__(self, env: lmdb.Environment) -> None:
        self._env = env
        self._db = env.open_db(_DB)
        self._lock = threading.Lock()
        self.version = 0
        with env.begin(db=self._db) as txn:
            self._acls: set[AclBinding] = {AclBinding.from_key(bytes(k))
                                           for k, _ in txn.cursor()}

    def __len__(self) -> int:
        return len(self._acls)

    def __iter__(self) -> Iterator[AclBinding]:
        return iter(sorted(self._acls, key=_sort_key))

    def add(self, bindings: Iterable[AclBinding]) -> list[AclBinding]:
        """Store ``bindings`` (already present ones are kept once); returns the new ones."""
        new = [b for b in dict.fromkeys(bindings) if b not in self._acls]
        if not new:
            return []
        with self._lock:
            with self._env.begin(db=self._db, write=True) as txn:
                for b in new:
                    txn.put(b.key(), b"1")
            self._acls = self._acls | set(new)
            self.version += 1
        return new

    def remove(self, flt: AclFilter) -> list[AclBinding]:
        """Delete every binding ``flt`` matches; returns them."""
        with self._lock:
            gone = sorted((b for b in self._acls if flt.matches(b)), key=_sort_key)
            if gone:
                with self._env.begin(db=self._db, write=True) as txn:
                    for b in gone:
                        txn.delete(b.key())
                self._acls = self._acls - set(gone)
                self.version += 1
        return gone

    def find(self, flt: AclFilter | None = None) -> list[AclBinding]:
        return [b for b in self if flt is None or flt.matches(b)]

    def for_type(self, rtype: ResourceType) -> list[AclBinding]:
        return [b for b in self._acls if b.resource_type is rtype]


def _sort_key(b: AclBinding) -> tuple:
    return (b.resource_type, b.pattern_type, b.resource_name, b.principal, b.host,
            b.operation, b.permission)


_CACHE_MAX = 10_000
_CONCRETE_TYPES = frozenset(int(t) for t in ResourceType if t > ResourceType.ANY)


class Authorizer:
    """Decides whether a principal may do an operation on a resource (Kafka's rules above)."""

    def __init__(self, store: AclStore, super_users: Iterable[str] = (),
                 allow_everyone_if_no_acl_found: bool = False) -> None:
        self.store = store
        self.super_users = frozenset(parse_principal(p) for p in super_users)
        self.allow_if_no_acl = allow_everyone_if_no_acl_found
        self._cache: dict[tuple, bool] = {}
        self._cache_version = -1

    def authorize(self, principal: str, host: str, operation: AclOperation,
                  rtype: ResourceType, name: str) -> bool:
        if principal in self.super_users:
            return True
        if self._cache_version != self.store.version or len(self._cache) > _CACHE_MAX:
            self._cache = {}
            self._cache_version = self.store.version
        key = (principal, host, operation, rtype, name)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._decide(principal, host, operation, rtype, name)
        return hit

    def _decide(self, principal: str, host: str, operation: AclOperation,
                rtype: ResourceType, name: str) -> bool:
        on_resource = [b for b in self.store.for_type(rtype) if b.matches_resource(rtype, name)]
        if not on_resource:
            return self.allow_if_no_acl
        granting = _IMPLIED_BY.get(operation, frozenset()) | {operation, AclOperation.ALL}
        allowed = False
        for b in on_resource:
            if b.principal not in (principal, "User:*") or b.host not in (host, WILDCARD):
                continue
            if b.permission is AclPermission.DENY:
                if b.operation in (operation, AclOperation.ALL):
                    return False
            elif b.operation in granting:
                allowed = True
        return allowed

    def authorize_any(self, principal: str, host: str, operation: AclOperation,
                      rtype: ResourceType) -> bool:
        """May ``principal`` do ``operation`` on at least one resource of this type (Kafka's
        authorizeByResourceType: an ALLOW that no DENY covers entirely)?"""
        if principal in self.super_users:
            return True
        granting = _IMPLIED_BY.get(operation, frozenset()) | {operation, AclOperation.ALL}
        mine = [b for b in self.store.for_type(rtype)
                if b.principal in (principal, "User:*") and b.host in (host, WILDCARD)]
        denies = [b for b in mine if b.permission is AclPermission.DENY
                  and b.operation in (operation, AclOperation.ALL)]
        if any(d.resource_name == WILDCARD and d.pattern_type is PatternType.LITERAL
               for d in denies):
            return False
        for b in mine:
            if b.permission is not AclPermission.ALLOW or b.operation not in granting:
                continue
            covered = any(
                d.pattern_type is PatternType.PREFIXED and b.resource_name.startswith(
                    d.resource_name)
                or d.pattern_type is PatternType.LITERAL and b.pattern_type is
                PatternType.LITERAL and d.resource_name == b.resource_name
                for d in denies)
            if not covered:
                return True
        return False

    def authorized_operations(self, principal: str, host: str, rtype: ResourceType,
                              name: str) -> int:
        """Kafka's ``authorized_operations`` bit field (bit = operation code) for one
        resource, as Metadata and DescribeGroups report it when asked."""
        bits = 0
        for op in RESOURCE_OPERATIONS.get(rtype, ()):
            if self.authorize(principal, host, op, rtype, name):
                bits |= 1 << int(op)
        return bits
