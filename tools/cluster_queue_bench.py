"""How fast ``log.queue()`` moves records on a Kafka 4.4 share group, beside the embedded queue.

Starts a one-node Kafka from tools/kafka_oracle.py (share heartbeats at 0.5 s), fills a topic,
then drains it with ``members`` queue members (one thread each) that receive up to ``batch``
records and ack them in one commit; the embedded run does the same on a fresh data directory.
Prints records/s for each side (the time from the first receive to the last ack). Usage:

    python tools/cluster_queue_bench.py --records 20000 --batch 500 --members 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka_oracle import KafkaCluster  # noqa: E402

import logmq  # noqa: E402


def fill(log: Any, topic: str, n: int, partitions: int) -> None:
    log.create_topic(topic, partitions)
    with log.producer(linger_ms=20) as p:
        futs = [p.send(topic, b"x" * 100, key=b"%d" % i) for i in range(n)]
        for f in futs:
            f.result(60)


def drain(log: Any, topic: str, n: int, batch: int, members: int, timeout: float) -> float:
    group = f"bench-{uuid.uuid4().hex[:6]}"
    done = [0]
    lock = threading.Lock()
    started: list[float] = []
    queues = [log.queue(topic, group) for _ in range(members)]

    def work(q: Any) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with lock:
                if done[0] >= n:
                    return
            recs = q.receive(batch, timeout=0.5)
            if recs:
                with lock:
                    if not started:
                        started.append(time.perf_counter())
                q.ack(*recs)
                with lock:
                    done[0] += len(recs)

    threads = [threading.Thread(target=work, args=(q,)) for q in queues]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    end = time.perf_counter()
    for q in queues:
        q.close()
    if done[0] < n:
        raise SystemExit(f"only {done[0]} of {n} records acked in {timeout} s")
    return n / (end - started[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=300.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with logmq.connect(str(Path(tmp) / "data")) as log:
            fill(log, "jobs", a.records, a.partitions)
            emb = drain(log, "jobs", a.records, a.batch, a.members, a.timeout)
        cluster = KafkaCluster(Path(tmp) / "kafka", extra_config={
            "group.share.heartbeat.interval.ms": "500",
            "group.share.min.heartbeat.interval.ms": "500"}).start()
        try:
            with logmq.connect(f"kafka://{cluster.bootstrap}") as log:
                fill(log, "jobs", a.records, a.partitions)
                kaf = drain(log, "jobs", a.records, a.batch, a.members, a.timeout)
        finally:
            cluster.stop()
    print(f"{a.records} records of 100 B, {a.partitions} partitions, {a.members} member(s), "
          f"receive({a.batch}) + one ack commit per batch")
    print(f"embedded queue:          {emb:10,.0f} records/s")
    print(f"Kafka 4.4 share group:   {kaf:10,.0f} records/s  ({kaf / emb:.2f}x embedded)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
