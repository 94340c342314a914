"""One KIP-848 scenario through confluent-kafka (``group.protocol=consumer``) and raw wire
calls, printing what a client can observe as one JSON line. Run against Apache Kafka 4.4 and
against logmq by tests/oracle/test_kip848_oracle.py, which compares the two.

Observed: the versions of APIs 68/69 advertised; what each member consumed (counts, no
duplicate, no gap, partitions held); ConsumerGroupDescribe's shape (state, epochs, assignor,
member types, assignment sizes); the final committed offsets; the error codes of fencing,
unknown members, bad requests, and of the classic/consumer boundary (with Kafka's migration
policy off). Partition *choices* are not compared (two correct assignors may differ).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from wire_util import RawClient  # noqa: E402

PARTS = 4
SUBSCRIPTION = b"\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff"  # v0, no topics, null user data


def until(cond: Any, members: list[Any], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        for m in members:
            m.pump()
    return True


class Member:
    def __init__(self, bootstrap: str, group: str, topics: list[str]) -> None:
        self.got: list[tuple[int, int, str]] = []
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                           "group.protocol": "consumer", "auto.offset.reset": "earliest",
                           "enable.auto.commit": False})
        self.c.subscribe(topics)

    def held(self) -> set[int]:
        return {p.partition for p in self.c.assignment()}

    def pump(self) -> None:
        for m in self.c.consume(100, 0.05):
            if m.error() is None:
                self.got.append((m.partition(), m.offset(), m.value().decode()))


class Poller:
    def __init__(self, c: Consumer) -> None:
        self.c = c

    def pump(self) -> None:
        self.c.poll(0.1)


def produce(bootstrap: str, topic: str, start: int, count: int) -> set[str]:
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(start, start + count):
        p.produce(topic, str(i).encode(), partition=i % PARTS)
    p.flush(30)
    return {str(i) for i in range(start, start + count)}


def describe_shape(raw: RawClient, group: str) -> dict[str, Any]:
    g = raw.call(69, 1, {"group_ids": [group], "include_authorized_operations": False})
    d = g["groups"][0]
    return {"error_code": d["error_code"], "state": d["group_state"],
            "group_epoch": d["group_epoch"], "assignment_epoch": d["assignment_epoch"],
            "assignor": d["assignor_name"],
            "members": sorted((m["member_type"], m["member_epoch"],
                               sum(len(t["partitions"]) for t in
                                   m["assignment"]["topic_partitions"]),
                               m["subscribed_topic_names"], m["subscribed_topic_regex"])
                              for m in d["members"])}


def hb(raw: RawClient, group: str, member: str, epoch: int, **kw: Any) -> dict[str, Any]:
    body = {"group_id": group, "member_id": member, "member_epoch": epoch,
            "instance_id": kw.get("instance_id"), "rack_id": None,
            "rebalance_timeout_ms": kw.get("rebalance_timeout_ms",
                                           30_000 if epoch == 0 else -1),
            "subscribed_topic_names": kw.get("topics"), "subscribed_topic_regex": None,
            "server_assignor": kw.get("assignor"),
            "topic_partitions": [] if epoch == 0 else None}
    r = raw.call(68, kw.get("v", 1), body)
    return {"error_code": r["error_code"], "member_epoch": r["member_epoch"]}


def scenario(bootstrap: str, prefix: str) -> dict[str, Any]:
    host, port = bootstrap.rsplit(":", 1)
    raw = RawClient(host, int(port), timeout=30)
    out: dict[str, Any] = {}
    versions = raw.call(18, 0, {})["api_keys"]
    out["versions"] = sorted((a["api_key"], a["min_version"], a["max_version"])
                             for a in versions if a["api_key"] in (68, 69))
    topic, group = f"{prefix}-t", f"{prefix}-g"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, PARTS, 1),
                                  NewTopic(f"{prefix}-raw", 2, 1)]).values():
        f.result(30)

    first = produce(bootstrap, topic, 0, 100)
    a = Member(bootstrap, group, [topic])
    ok = until(lambda: len(a.got) == 100, [a])
    out["a_alone"] = {"ok": ok, "held": len(a.held()), "exact": {v for *_, v in a.got} == first}
    a.c.commit(asynchronous=False)
    b = Member(bootstrap, group, [topic])
    ok = until(lambda: len(a.held()) == 2 and len(b.held()) == 2, [a, b])
    out["split"] = {"ok": ok, "disjoint": not (a.held() & b.held()),
                    "union": sorted(a.held() | b.held())}
    until(lambda: describe_shape(raw, group)["state"] == "Stable", [a, b], 20)
    out["describe_two"] = describe_shape(raw, group)
    second = produce(bootstrap, topic, 100, 100)
    ok = until(lambda: len(a.got) + len(b.got) == 200, [a, b])
    mixed = [v for *_, v in a.got[100:]] + [v for *_, v in b.got]
    out["second"] = {"ok": ok, "no_dup": len(mixed) == len(set(mixed)),
                     "no_gap": set(mixed) == second,
                     "owners": {p for p, *_ in a.got[100:]} <= a.held()
                     and {p for p, *_ in b.got} <= b.held()}
    a.c.commit(asynchronous=False)
    b.c.commit(asynchronous=False)
    a.c.close()
    before = len(b.got)
    ok = until(lambda: len(b.held()) == PARTS, [b])
    third = produce(bootstrap, topic, 200, 40)
    ok2 = until(lambda: len(b.got) >= before + 40, [b])
    out["after_leave"] = {"ok": ok and ok2, "exact": {v for *_, v in b.got[before:]} == third}
    until(lambda: describe_shape(raw, group)["state"] == "Stable", [b], 20)
    out["describe_one"] = describe_shape(raw, group)
    b.c.commit(asynchronous=False)
    committed = b.c.committed([TopicPartition(topic, p) for p in range(PARTS)], timeout=30)
    out["committed"] = sorted((p.partition, p.offset) for p in committed)
    b.c.close()
    out["describe_empty"] = describe_shape(raw, group)

    # raw heartbeats: epochs, fencing, unknown members, invalid requests
    rg, me = f"{prefix}-raw-g", str(uuid.uuid4())
    raw_topic = [f"{prefix}-raw"]
    out["raw_join"] = hb(raw, rg, me, 0, topics=raw_topic)
    out["raw_fenced"] = hb(raw, rg, me, 9)
    out["raw_unknown_member"] = hb(raw, rg, str(uuid.uuid4()), 1)
    out["raw_unknown_group"] = hb(raw, f"{prefix}-nope", me, 1)
    out["raw_no_subscription"] = hb(raw, rg, str(uuid.uuid4()), 0)
    out["raw_bad_assignor"] = hb(raw, rg, str(uuid.uuid4()), 0, topics=raw_topic,
                                 assignor="nope")
    out["raw_empty_member_v1"] = hb(raw, rg, "", 0, topics=raw_topic)
    out["raw_leave"] = hb(raw, rg, me, -1)
    out["raw_leave_again"] = hb(raw, rg, me, -1)

    # static members: a restart under a new member id keeps the epoch, no group epoch bump
    sg, s1, s2 = f"{prefix}-static-g", str(uuid.uuid4()), str(uuid.uuid4())
    out["static_join"] = hb(raw, sg, s1, 0, topics=raw_topic, instance_id="i1")
    out["static_dup"] = hb(raw, sg, s2, 0, topics=raw_topic, instance_id="i1")
    epoch = describe_shape(raw, sg)["group_epoch"]
    out["static_leave"] = hb(raw, sg, s1, -2, instance_id="i1")
    out["static_rejoin"] = hb(raw, sg, s2, 0, topics=raw_topic, instance_id="i1")
    out["static_old_id"] = hb(raw, sg, s1, out["static_join"]["member_epoch"],
                              instance_id="i1")
    shape = describe_shape(raw, sg)
    out["static_after"] = {"same_group_epoch": shape["group_epoch"] == epoch,
                           "members": shape["members"]}
    hb(raw, sg, s2, -1, instance_id="i1")

    # the classic/consumer boundary
    cg = f"{prefix}-classic"
    classic = Consumer({"bootstrap.servers": bootstrap, "group.id": cg,
                        "auto.offset.reset": "earliest"})
    classic.subscribe([topic])
    until(lambda: bool(classic.assignment()), [Poller(classic)])
    out["hb_into_classic"] = hb(raw, cg, str(uuid.uuid4()), 0, topics=[topic])
    classic.close()
    kg = f"{prefix}-consumer"
    out["consumer_join"] = hb(raw, kg, me, 0, topics=[topic])
    join = raw.call(11, 5, {"group_id": kg, "session_timeout_ms": 30_000,
                            "rebalance_timeout_ms": 30_000, "member_id": "",
                            "group_instance_id": None, "protocol_type": "consumer",
                            "protocols": [{"name": "range", "metadata": SUBSCRIPTION}]})
    out["classic_join_into_consumer"] = join["error_code"]
    dg = raw.call(15, 4, {"groups": [kg], "include_authorized_operations": False})["groups"][0]
    out["describe_groups_of_consumer"] = {
        "error_code": dg["error_code"], "state": dg["group_state"],
        "protocol_type": dg["protocol_type"], "protocol_data": dg["protocol_data"],
        "members": len(dg["members"])}
    lg = raw.call(16, 2, {})["groups"]
    out["list_groups"] = sorted((g["group_id"].removeprefix(prefix), g["protocol_type"])
                                for g in lg if g["group_id"].startswith(prefix))
    out["cgd_of_classic"] = describe_shape(raw, cg)["error_code"]
    out["cgd_unknown"] = describe_shape(raw, f"{prefix}-none")["error_code"]
    hb(raw, kg, me, -1)
    raw.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--prefix", default="k848")
    args = ap.parse_args()
    out = scenario(args.bootstrap, args.prefix)
    print(json.dumps(out, default=sorted, sort_keys=True))


if __name__ == "__main__":
    main()
