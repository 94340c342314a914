"""ACLs as real clients see them: confluent-kafka (librdkafka) and kafka-python.

Principals come from the client id (tests/acl_util.py) until the SASL listener sets them.
"""

from __future__ import annotations

import os
import sys
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from acl_util import PT, P, grant, secure_server  # noqa: E402


@pytest.fixture
def srv(tmp_path):
    s = secure_server(str(tmp_path / "d"))
    s.create_topic("orders")
    s.create_topic("orders-eu")
    s.create_topic("secret")
    yield s
    s.stop()


def deliver(srv, client_id: str, topic: str) -> KafkaError | None:
    """Produce one message; the delivery report's error (None: delivered)."""
    p = Producer({"bootstrap.servers": srv.bootstrap, "client.id": client_id,
                  "message.timeout.ms": 5000, "enable.idempotence": False})
    out: list = []
    p.produce(topic, b"v", on_delivery=lambda err, msg: out.append(err))
    deadline = time.monotonic() + 15
    while not out and time.monotonic() < deadline:
        p.poll(0.1)
    assert out, "no delivery report"
    return out[0]


def test_confluent_refused_then_allowed_then_denied(srv):
    err = deliver(srv, "alice", "orders")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    grant(srv, "User:alice", "WRITE", "orders", pattern=PT.PREFIXED)
    assert deliver(srv, "alice", "orders") is None
    assert deliver(srv, "alice", "orders-eu") is None
    grant(srv, "User:alice", "WRITE", "orders-eu", perm=P.DENY)  # DENY beats the prefix ALLOW
    err = deliver(srv, "alice", "orders-eu")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert deliver(srv, "admin", "secret") is None  # super user
    assert srv.broker.end_offset(("orders", 0)) == 1
    assert srv.broker.end_offset(("orders-eu", 0)) == 1


def test_confluent_metadata_hides_topics(srv):
    grant(srv, "User:alice", "READ", "orders")
    a = AdminClient({"bootstrap.servers": srv.bootstrap, "client.id": "alice"})
    assert set(a.list_topics(timeout=10).topics) == {"orders"}
    a = AdminClient({"bootstrap.servers": srv.bootstrap, "client.id": "admin"})
    assert set(a.list_topics(timeout=10).topics) == {"orders", "orders-eu", "secret"}


def test_confluent_admin_manages_acls(srv):
    admin = AdminClient({"bootstrap.servers": srv.bootstrap, "client.id": "admin"})
    b1 = AclBinding(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:bob",
                    "*", AclOperation.READ, AclPermissionType.ALLOW)
    b2 = AclBinding(ResourceType.GROUP, "g-", ResourcePatternType.PREFIXED, "User:bob",
                    "*", AclOperation.READ, AclPermissionType.ALLOW)
    for f in admin.create_acls([b1, b2]).values():
        assert f.result(10) is None
    flt = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:bob", None,
                           AclOperation.ANY, AclPermissionType.ANY)
    found = admin.describe_acls(flt).result(10)
    assert sorted(b.name for b in found) == ["g-", "orders"]
    deleted = admin.delete_acls([AclBindingFilter(
        ResourceType.GROUP, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
        AclPermissionType.ANY)])
    assert [b.name for f in deleted.values() for b in f.result(10)] == ["g-"]
    # a principal without ALTER on the cluster cannot add ACLs
    bob = AdminClient({"bootstrap.servers": srv.bootstrap, "client.id": "bob"})
    with pytest.raises(KafkaException) as e:
        for f in bob.create_acls([b2]).values():
            f.result(10)
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED


def test_kafka_python_group_and_topic_authorization(srv):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePatternFilter,
    )
    from kafka.admin import ResourceType as KpResourceType
    from kafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

    grant(srv, "User:bob", "READ", "orders")
    c = KafkaConsumer(bootstrap_servers=srv.bootstrap, client_id="bob", group_id="g1",
                      auto_offset_reset="earliest", consumer_timeout_ms=3000)
    try:
        c.subscribe(["orders"])
        with pytest.raises(GroupAuthorizationFailedError):
            c.poll(timeout_ms=5000)
    finally:
        c.close()
    p = KafkaProducer(bootstrap_servers=srv.bootstrap, client_id="bob", max_block_ms=5000)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            p.send("secret", b"x").get(timeout=10)
    finally:
        p.close()
    admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap, client_id="admin")
    try:
        acls, err = admin.describe_acls(ACLFilter(
            principal="User:bob", host=None, operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(KpResourceType.ANY, None,
                                                   ACLResourcePatternType.ANY)))
        assert [(a.resource_pattern.resource_name, a.operation.name) for a in acls] == [
            ("orders", "READ")]
    finally:
        admin.close()


def test_aiokafka_refused_then_allowed(srv):
    import asyncio

    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import TopicAuthorizationFailedError

    async def send(topic: str) -> None:
        p = AIOKafkaProducer(bootstrap_servers=srv.bootstrap, client_id="dave",
                             request_timeout_ms=5000)
        await p.start()
        try:
            await asyncio.wait_for(p.send_and_wait(topic, b"v"), 15)
        finally:
            await p.stop()

    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(send("orders"))
    grant(srv, "User:dave", "WRITE", "orders")
    asyncio.run(send("orders"))
    assert srv.broker.end_offset(("orders", 0)) == 1


def test_kcat_sees_only_what_it_may_describe(srv):
    import json
    import shutil
    import subprocess

    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None and not os.environ.get("CI"):
        pytest.skip("kcat is not installed (CI installs it)")
    assert kcat is not None
    grant(srv, "User:erin", "READ", "orders-", pattern=PT.PREFIXED)

    def listed(client_id: str) -> list[str]:
        out = subprocess.run([kcat, "-b", srv.bootstrap, "-X", f"client.id={client_id}", "-L",
                              "-J"], capture_output=True, text=True, timeout=30, check=True)
        return sorted(t["topic"] for t in json.loads(out.stdout)["topics"])

    assert listed("erin") == ["orders-eu"]
    assert listed("admin") == ["orders", "orders-eu", "secret"]
