"""The Kafka-wire rows of bench/queue_compare.py: confluent-kafka ``ShareConsumer`` processes
(KIP-932, implicit acknowledgement) against ``logmq serve`` running in this process.

The same data as the embedded rows (``N`` values of 100 B pre-filled into a topic of 4
partitions); the share group starts at the earliest offset (group config
``share.auto.offset.reset``). Consumers poll in a loop; implicit mode accepts a poll's records
with the next ShareFetch. What counts is the broker's own tally of acknowledged records (the
share group's ``acked`` counter, read every 5 ms by this process), so a record counts once its
acknowledgement is durable in the group state, exactly as for the embedded rows.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from typing import Any

_SPAWN = mp.get_context("spawn")
STALL_S = 60.0
WIRE_DUR = ("as embedded: the ShareFetch/ShareAcknowledge carrying the acknowledgement is "
            "answered after the LMDB commit of the group state")


def _consumer(bootstrap: str, group: str, ready: Any, stop: Any) -> None:
    from confluent_kafka import ShareConsumer

    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                       "share.acknowledgement.mode": "implicit", "log_level": 3})
    c.subscribe(["jobs"])
    ready.release()
    try:
        while not stop.is_set():
            c.poll(0.2)
        c.commit_sync(30)
    finally:
        c.close()


def share_wire(tmp: str, n: int, workers: int, prefill: Any) -> dict[str, Any]:
    """``workers`` ShareConsumer processes; the Kafka server and the data live here."""
    from logmq.broker.queues.kafka_configs import ShareGroupConfigs
    from logmq.testing.server import LogMQServer

    srv = LogMQServer(os.path.join(tmp, "lq"), fsync="interval", cleaner=False).start()
    procs: list[Any] = []
    stop = _SPAWN.Event()
    try:
        log = srv.broker
        rate = prefill(log, n)
        group = f"wire-{os.getpid()}-{time.monotonic_ns()}"
        ShareGroupConfigs(log.meta.env).alter(group, {"share.auto.offset.reset": "earliest"})
        sg = log.queues.open_group("jobs", group,
                                   ShareGroupConfigs(log.meta.env).group_config(group))
        ready = _SPAWN.Semaphore(0)
        procs = [_SPAWN.Process(target=_consumer, daemon=True,
                                args=(srv.bootstrap, group, ready, stop))
                 for _ in range(workers)]
        for p in procs:
            p.start()
        for _ in procs:
            if not ready.acquire(timeout=120):
                raise RuntimeError("a ShareConsumer process did not start")
        t0 = time.monotonic()
        last, seen = t0, -1
        while sg.acked < n:  # a measurement tick, not a synchronisation: the rate needs it
            time.sleep(0.005)
            if sg.acked != seen:
                last, seen = time.monotonic(), sg.acked
            elif time.monotonic() - last > STALL_S:
                raise RuntimeError(f"stalled at {seen} of {n} acknowledged")
            if not any(p.is_alive() for p in procs):
                raise RuntimeError("every ShareConsumer process exited")
        end = time.monotonic()
        return {"acked": sg.acked, "seconds": end - t0, "prefill_rate": rate}
    finally:
        stop.set()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.terminate()
        srv.stop()
