"""The ACL store and authorizer alone (no server): Kafka's rules, persistence, filters."""

from __future__ import annotations

import lmdb
import pytest

from logmq.broker.acls import (
    CLUSTER_NAME,
    AclBinding,
    AclFilter,
    AclOperation,
    AclPermission,
    AclStore,
    Authorizer,
    PatternType,
    ResourceType,
    parse_operation,
)
from logmq.errors import InvalidAclError

Op, RT, PT, P = AclOperation, ResourceType, PatternType, AclPermission


@pytest.fixture
def env(tmp_path):
    e = lmdb.open(str(tmp_path / "meta"), max_dbs=8, map_size=1 << 24)
    yield e
    e.close()


def acl(name, op, perm=P.ALLOW, principal="User:alice", rtype=RT.TOPIC, pattern=PT.LITERAL,
        host="*"):
    return AclBinding.of(rtype, name, pattern, principal, host, op, perm)


def make(env, *bindings, supers=(), allow_if_none=False):
    store = AclStore(env)
    store.add(bindings)
    return Authorizer(store, supers, allow_if_none)


def test_no_acl_refuses_unless_allow_everyone(env):
    assert not make(env).authorize("User:alice", "h", Op.READ, RT.TOPIC, "t")
    assert make(env, allow_if_none=True).authorize("User:alice", "h", Op.READ, RT.TOPIC, "t")


def test_allow_everyone_applies_only_to_resources_no_acl_names(env):
    a = make(env, acl("t", Op.READ, principal="User:bob"), allow_if_none=True)
    assert not a.authorize("User:alice", "h", Op.READ, RT.TOPIC, "t")  # t has an ACL (bob's)
    assert a.authorize("User:alice", "h", Op.READ, RT.TOPIC, "other")


def test_literal_allow_and_implied_describe(env):
    a = make(env, acl("t", Op.READ), acl("c", Op.ALTER_CONFIGS))
    assert a.authorize("User:alice", "h", Op.READ, RT.TOPIC, "t")
    assert a.authorize("User:alice", "h", Op.DESCRIBE, RT.TOPIC, "t")  # READ implies it
    assert not a.authorize("User:alice", "h", Op.WRITE, RT.TOPIC, "t")
    assert not a.authorize("User:alice", "h", Op.READ, RT.TOPIC, "t2")
    assert not a.authorize("User:bob", "h", Op.READ, RT.TOPIC, "t")
    assert a.authorize("User:alice", "h", Op.DESCRIBE_CONFIGS, RT.TOPIC, "c")
    assert not a.authorize("User:alice", "h", Op.DESCRIBE, RT.TOPIC, "c")


def test_deny_wins_over_allow_and_all(env):
    a = make(env, acl("t", Op.ALL), acl("t", Op.WRITE, P.DENY))
    assert a.authorize("User:alice", "h", Op.READ, RT.TOPIC, "t")
    assert not a.authorize("User:alice", "h", Op.WRITE, RT.TOPIC, "t")
    b = make(env, acl("*", Op.ALL, P.DENY, principal="User:*"))
    assert not b.authorize("User:alice", "h", Op.READ, RT.TOPIC, "t")


def test_prefixed_wildcard_resource_and_principal(env):
    a = make(env, acl("orders-", Op.WRITE, pattern=PT.PREFIXED),
             acl("*", Op.READ, principal="User:*", rtype=RT.GROUP))
    assert a.authorize("User:alice", "h", Op.WRITE, RT.TOPIC, "orders-eu")
    assert not a.authorize("User:alice", "h", Op.WRITE, RT.TOPIC, "order")
    assert a.authorize("User:carol", "h", Op.READ, RT.GROUP, "any-group")
    assert not a.authorize("User:carol", "h", Op.READ, RT.TOPIC, "orders-eu")


def test_host_field(env):
    a = make(env, acl("t", Op.READ, host="10.0.0.1"))
    assert a.authorize("User:alice", "10.0.0.1", Op.READ, RT.TOPIC, "t")
    assert not a.authorize("User:alice", "10.0.0.2", Op.READ, RT.TOPIC, "t")


def test_super_user_and_cache_invalidation(env):
    a = make(env, acl("t", Op.ALL, P.DENY, principal="User:*"), supers=["User:admin"])
    assert a.authorize("User:admin", "h", Op.DELETE, RT.TOPIC, "t")
    assert not a.authorize("User:alice", "h", Op.READ, RT.TOPIC, "t")
    a.store.remove(AclFilter(permission=P.DENY))
    a.store.add([acl("t", Op.READ)])
    assert a.authorize("User:alice", "h", Op.READ, RT.TOPIC, "t")  # cached answer dropped


def test_authorize_any_and_operations_bits(env):
    a = make(env, acl("logs-", Op.WRITE, pattern=PT.PREFIXED),
             acl("logs-secret", Op.WRITE, P.DENY))
    assert a.authorize_any("User:alice", "h", Op.WRITE, RT.TOPIC)
    assert not a.authorize_any("User:bob", "h", Op.WRITE, RT.TOPIC)
    b = make(env, acl("x", Op.WRITE, principal="User:bob"),
             acl("x", Op.WRITE, P.DENY, principal="User:bob"))
    assert not b.authorize_any("User:bob", "h", Op.WRITE, RT.TOPIC)
    bits = a.authorized_operations("User:alice", "h", RT.TOPIC, "logs-1")
    assert bits == (1 << Op.WRITE) | (1 << Op.DESCRIBE)


def test_store_persists_and_filters(tmp_path):
    path = str(tmp_path / "meta")
    e = lmdb.open(path, max_dbs=8, map_size=1 << 24)
    s = AclStore(e)
    assert s.add([acl("t", Op.READ), acl("t", Op.READ), acl("p-", Op.WRITE,
                                                            pattern=PT.PREFIXED)]) != []
    e.close()
    e = lmdb.open(path, max_dbs=8, map_size=1 << 24)
    s = AclStore(e)
    assert len(s) == 2
    # MATCH: every binding that applies to the named resource
    assert [b.resource_name for b in s.find(AclFilter(RT.TOPIC, "p-1", PT.MATCH))] == ["p-"]
    assert [b.resource_name for b in s.find(AclFilter(RT.TOPIC, "t", PT.LITERAL))] == ["t"]
    assert len(s.find(AclFilter())) == 2
    gone = s.remove(AclFilter(operation=Op.WRITE))
    assert [b.resource_name for b in gone] == ["p-"] and len(s) == 1
    e.close()


@pytest.mark.parametrize("args", [
    (RT.ANY, "t", PT.LITERAL, "User:a", "*", Op.READ, P.ALLOW),
    (RT.TOPIC, "t", PT.MATCH, "User:a", "*", Op.READ, P.ALLOW),
    (RT.TOPIC, "t", PT.LITERAL, "alice", "*", Op.READ, P.ALLOW),
    (RT.TOPIC, "t", PT.LITERAL, "User:a", "*", Op.ANY, P.ALLOW),
    (RT.TOPIC, "t", PT.LITERAL, "User:a", "*", Op.READ, P.ANY),
    (RT.CLUSTER, "other", PT.LITERAL, "User:a", "*", Op.ALTER, P.ALLOW),
    (RT.TOPIC, "t", PT.LITERAL, "User:a", "*", 99, P.ALLOW),
])
def test_invalid_bindings_are_typed_errors(args):
    with pytest.raises(InvalidAclError):
        AclBinding.of(*args)
    assert AclBinding.of(RT.CLUSTER, CLUSTER_NAME, PT.LITERAL, "User:a", "*", Op.ALTER,
                         P.ALLOW).resource_name == CLUSTER_NAME


def test_parse_operation_spellings():
    assert parse_operation("read") is Op.READ
    assert parse_operation("DescribeConfigs") is Op.DESCRIBE_CONFIGS
    assert parse_operation("idempotent-write") is Op.IDEMPOTENT_WRITE
    with pytest.raises(InvalidAclError):
        parse_operation("fly")
    with pytest.raises(InvalidAclError):
        parse_operation("any")
