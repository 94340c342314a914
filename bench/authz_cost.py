"""Cost of authorization, quotas and auditing per request, on the server's handler path.

Calls the Produce, Fetch and Metadata handlers in-process (no sockets: what is measured is the
wrapper of logmq/server/authz.py, not the network) bare, and through the wrapped table with
the authorizer off, on with an ACL that allows, on for a super user, and on with a byte-rate
quota that never throttles. Prints µs per request and the ratio to the bare handler, in one run.

    PYTHONPATH=. python bench/authz_cost.py
"""

from __future__ import annotations

import inspect
import tempfile
import time
from typing import Any

import logmq
from logmq.broker.acls import AclBinding
from logmq.codec.records import encode_batch
from logmq.server.authz import Security
from logmq.server.handlers import Handlers


class Client:
    host, port, client_id, principal, listener = "127.0.0.1", 1, "bench", "User:bob", "PLAINTEXT"


def pair(bare: Any, wrapped: Any, body: dict, v: int, rounds: int) -> tuple[float, float]:
    """Best µs per call of each, measured alternately (the log grows under both alike)."""
    client = Client()
    best = [float("inf"), float("inf")]
    for _ in range(7):
        for i, fn in enumerate((bare, wrapped)):
            t0 = time.perf_counter()
            for _ in range(rounds):
                fn(body, v, client)
            best[i] = min(best[i], (time.perf_counter() - t0) / rounds * 1e6)
    return best[0], best[1]


def main() -> None:
    data = tempfile.mkdtemp()
    rounds = 2000
    batch = encode_batch([(b"k", b"v" * 100)] * 10)
    produce = {"transactional_id": None, "acks": 1, "timeout_ms": 1000, "topic_data": [
        {"name": "t", "partition_data": [{"index": 0, "records": batch}]}]}
    offsets = {"replica_id": -1, "topics": [{"name": "t", "partitions": [
        {"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]}
    setups = {
        "authorizer off": {"authorizer": False},
        "ACL allows": {"authorizer": True},
        "super user": {"authorizer": True, "super_users": "User:bob"},
    }
    rows = []
    for label, cfg in setups.items():
        with logmq.open(f"{data}/{label.replace(' ', '-')}", fsync="never", cleaner=False,
                        **cfg) as broker:
            broker.create_topic("t")
            h = Handlers(broker, "127.0.0.1", 9092)
            sec = Security(broker)
            sec.acls.add([AclBinding.of(2, "t", 3, "User:*", "*", op, 3) for op in (3, 4)])
            table = sec.wrap(h.table())
            for api, body, name in ((0, produce, "produce"), (2, offsets, "list_offsets")):
                assert not inspect.iscoroutinefunction(table[api])
                bare, wrapped = pair(h.table()[api], table[api], body, 8 if api == 0 else 7,
                                     rounds)
                rows.append((label, name, bare, wrapped))
            if label == "ACL allows":
                sec.quotas.alter({"entries": [{"entity": [{"entity_type": "user",
                                                           "entity_name": None}],
                                               "ops": [{"key": "producer_byte_rate",
                                                        "value": 1e12}]}]}, 1, None)
                bare, wrapped = pair(h.table()[0], table[0], produce, 8, rounds)
                rows.append(("ACL + quota", "produce", bare, wrapped))
            sec.close()
    print(f"{'setup':16} {'api':13} {'bare µs':>8} {'wrapped µs':>11} {'ratio':>6}")
    for label, name, bare, wrapped in rows:
        print(f"{label:16} {name:13} {bare:8.1f} {wrapped:11.1f} {wrapped / bare:6.2f}")


if __name__ == "__main__":
    main()
