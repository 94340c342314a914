"""ACL management against Apache Kafka 4.4 (StandardAuthorizer) and logmq (--authorizer): the
same CreateAcls / DescribeAcls / DeleteAcls answers on the wire, and the same ``kafka-acls``
output.

Both brokers make the test's own (PLAINTEXT, so ``User:ANONYMOUS``) connections a super user,
as Kafka needs for its own listener. Kafka applies ACL changes to the broker a moment after
the controller commits them, so its describes are polled (bounded) until they settle.
Error messages differ (each broker words its own); codes and data must not. One deliberate
difference is not tested: a describe or delete filter with an UNKNOWN value makes Kafka close
the connection; logmq answers INVALID_REQUEST.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kafka_oracle import java_cmd
from wire_util import RawClient

from .conftest import KafkaCluster, ServerProcess

pytestmark = pytest.mark.oracle

ANY, MATCH, LITERAL, PREFIXED = 1, 2, 3, 4
TOPIC, GROUP, CLUSTER, TXN = 2, 3, 4, 5
ALLOW, DENY = 3, 2


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RawClient]]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-acl"), extra_config={
        "auto.create.topics.enable": "false",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS"})
    cluster.start()
    srv = ServerProcess(str(tmp_path_factory.mktemp("logmq-acl") / "data"), "--authorizer",
                        "--super-users", "User:ANONYMOUS")
    try:
        srv.start()
        clients = {"kafka": RawClient("127.0.0.1", cluster.ports[0]),
                   "logmq": RawClient(srv.host, srv.port)}
        clients["bootstrap:kafka"] = cluster.bootstrap  # type: ignore[assignment]
        clients["bootstrap:logmq"] = srv.bootstrap  # type: ignore[assignment]
        yield clients
    finally:
        srv.stop()
        cluster.stop()


def creation(rt: int, name: str, pt: int, principal: str, op: int, perm: int,
             host: str = "*") -> dict:
    return {"resource_type": rt, "resource_name": name, "resource_pattern_type": pt,
            "principal": principal, "host": host, "operation": op, "permission_type": perm}


def flt(rt: int = ANY, name: str | None = None, pt: int = ANY, principal: str | None = None,
        host: str | None = None, op: int = ANY, perm: int = ANY) -> dict:
    return {"resource_type_filter": rt, "resource_name_filter": name, "pattern_type_filter": pt,
            "principal_filter": principal, "host_filter": host, "operation": op,
            "permission_type": perm}


def described(resp: dict) -> tuple[int, list]:
    return resp["error_code"], sorted(
        (r["resource_type"], r["resource_name"], r["pattern_type"],
         tuple(sorted((a["principal"], a["host"], a["operation"], a["permission_type"])
                      for a in r["acls"])))
        for r in resp["resources"])


def both(brokers: dict, fn: Any) -> dict[str, Any]:
    return {k: fn(brokers[k]) for k in ("kafka", "logmq")}


def settled(c: RawClient, body: dict, want: Any, timeout: float = 15.0) -> Any:
    """Kafka's describe once it shows ``want`` (ACLs reach the broker after the commit)."""
    deadline = time.monotonic() + timeout
    while True:
        got = described(c.call(29, 3, body))
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.1)  # polling interval of a bounded wait


GOOD = [creation(TOPIC, "orders", LITERAL, "User:alice", 3, ALLOW),
        creation(TOPIC, "orders", LITERAL, "User:alice", 4, ALLOW, host="10.0.0.1"),
        creation(TOPIC, "*", LITERAL, "User:*", 8, ALLOW),
        creation(GROUP, "g-", PREFIXED, "User:bob", 3, DENY),
        creation(CLUSTER, "kafka-cluster", LITERAL, "User:ops", 7, ALLOW),
        creation(TXN, "tx", LITERAL, "User:alice", 4, ALLOW)]
BAD = [creation(CLUSTER, "other", LITERAL, "User:ops", 7, ALLOW),
       creation(TOPIC, "*", PREFIXED, "User:a", 3, ALLOW),  # Kafka takes it
       creation(TOPIC, "t", LITERAL, "User:a", ANY, ALLOW),
       creation(TOPIC, "t", LITERAL, "User:a", 3, ANY),
       creation(ANY, "t", LITERAL, "User:a", 3, ALLOW),
       creation(TOPIC, "t", MATCH, "User:a", 3, ALLOW),
       creation(TOPIC, "t", LITERAL, "alice", 3, ALLOW)]
FILTERS = {
    "all": flt(),
    "topic_match": flt(TOPIC, "orders", MATCH),
    "topic_literal": flt(TOPIC, "orders", LITERAL),
    "prefixed": flt(pt=PREFIXED),
    "principal": flt(principal="User:alice"),
    "host": flt(host="10.0.0.1"),
    "deny": flt(perm=DENY),
    "cluster": flt(CLUSTER),
}


@pytest.mark.parametrize("i", range(len(BAD)))
def test_create_acls_refusals(brokers, i):
    """One bad creation beside a good one: Kafka refuses some alone (INVALID_REQUEST), and
    fails the whole request for values no binding can hold (ANY, MATCH)."""
    good = creation(TOPIC, f"bad-{i}", LITERAL, "User:x", 3, ALLOW)
    got = both(brokers, lambda c: [r["error_code"] for r in c.call(30, 3, {
        "creations": [good, BAD[i]]})["results"]])
    assert got["logmq"] == got["kafka"]


def test_create_acls(brokers):
    got = both(brokers, lambda c: c.call(30, 3, {"creations": GOOD})["results"])
    assert got["logmq"] == got["kafka"]
    assert [r["error_code"] for r in got["logmq"]] == [0] * len(GOOD)
    # the good halves of the refusal tests: drop them again
    both(brokers, lambda c: c.call(31, 3, {"filters": [flt(principal="User:x"),
                                                       flt(principal="User:a")]}))


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_describe_acls(brokers, name):
    want = described(brokers["logmq"].call(29, 3, FILTERS[name]))
    assert settled(brokers["kafka"], FILTERS[name], want) == want
    if name == "all":
        assert sum(len(r[3]) for r in want[1]) == len(GOOD)


def test_delete_acls_then_describe(brokers):
    body = {"filters": [flt(TOPIC, "orders", LITERAL, op=4), flt(GROUP, pt=ANY),
                        flt(TOPIC, "nothing", LITERAL)]}

    def deleted(c: RawClient) -> list:
        r = c.call(31, 3, body)
        return [(f["error_code"], sorted((m["error_code"], m["resource_type"],
                                          m["resource_name"], m["pattern_type"],
                                          m["principal"], m["host"], m["operation"],
                                          m["permission_type"]) for m in f["matching_acls"]))
                for f in r["filter_results"]]

    got = both(brokers, deleted)
    assert got["logmq"] == got["kafka"]
    want = described(brokers["logmq"].call(29, 3, flt()))
    assert settled(brokers["kafka"], flt(), want) == want


def kafka_acls(bootstrap: str, *args: str) -> str:
    proc = subprocess.run(java_cmd("org.apache.kafka.tools.AclCommand", "--bootstrap-server",
                                   bootstrap, *args, heap="-Xmx256m", short_lived=True),
                          capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_kafka_acls_cli(brokers):
    steps = [("--add", "--allow-principal", "User:carol", "--operation", "Read",
              "--operation", "Describe", "--topic", "cli-t", "--group", "cli-g"),
             ("--add", "--deny-principal", "User:carol", "--operation", "Write", "--topic",
              "cli-", "--resource-pattern-type", "prefixed"),
             ("--list", "--principal", "User:carol"),
             ("--remove", "--force", "--topic", "cli-t"),
             ("--list", "--topic", "cli-t")]
    for step in steps:
        ours = kafka_acls(brokers["bootstrap:logmq"], *step)
        deadline = time.monotonic() + 15
        while True:  # Kafka's broker applies ACL changes a moment after the commit
            theirs = kafka_acls(brokers["bootstrap:kafka"], *step)
            if step[0] != "--list" or _lines(theirs) == _lines(ours) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # polling interval of a bounded wait
        assert _lines(ours) == _lines(theirs), step


def _lines(out: str) -> list[str]:
    """Order of resources and entries is each broker's own: compare them as sets of lines."""
    return sorted(line.strip() for line in out.splitlines() if line.strip())


def kafka_configs(bootstrap: str, *args: str) -> tuple[int, str]:
    proc = subprocess.run(java_cmd("org.apache.kafka.tools.ConfigCommand", "--bootstrap-server",
                                   bootstrap, *args, heap="-Xmx256m", short_lived=True),
                          capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout


def test_client_quotas_with_kafka_configs(brokers):
    """Quotas of client ids (describing users also lists SCRAM credentials, which is the
    SASL side's API): the same output, the same DescribeClientQuotas answers."""
    steps = [("--alter", "--add-config", "producer_byte_rate=1048576,request_percentage=50",
              "--entity-type", "clients", "--entity-name", "app"),
             ("--alter", "--add-config", "consumer_byte_rate=2048", "--entity-type", "clients",
              "--entity-default"),
             ("--describe", "--entity-type", "clients", "--entity-name", "app"),
             ("--describe", "--entity-type", "clients"),
             ("--alter", "--delete-config", "request_percentage", "--entity-type", "clients",
              "--entity-name", "app"),
             ("--alter", "--add-config", "bogus_rate=1", "--entity-type", "clients",
              "--entity-name", "app"),
             ("--describe", "--entity-type", "clients", "--entity-name", "app")]
    for step in steps:
        ours = kafka_configs(brokers["bootstrap:logmq"], *step)
        theirs = kafka_configs(brokers["bootstrap:kafka"], *step)
        deadline = time.monotonic() + 15
        while step[0] == "--describe" and theirs != ours and time.monotonic() < deadline:
            time.sleep(0.2)  # polling interval: Kafka applies quota changes a moment later
            theirs = kafka_configs(brokers["bootstrap:kafka"], *step)
        assert (ours[0], _lines(ours[1])) == (theirs[0], _lines(theirs[1])), step
    body = {"components": [{"entity_type": "client-id", "match_type": 2, "match": None}],
            "strict": False}

    def quotas(c: RawClient) -> Any:
        r = c.call(48, 1, body)
        return r["error_code"], sorted(
            ((tuple((e["entity_type"], e["entity_name"]) for e in x["entity"]),
              tuple((v["key"], v["value"]) for v in x["values"]))
             for x in r["entries"] or []), key=repr)

    got = both(brokers, quotas)
    assert got["logmq"] == got["kafka"]
