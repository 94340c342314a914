"""A logmq app on a 3-broker KRaft cluster (replication factor 3) while one broker is killed.

    python tools/cluster_failover.py [--seconds 20] [--rate 1000] [--kill-at 7]

Starts three combined broker+controller Apache Kafka nodes on loopback (tools/kafka_oracle.py),
creates a topic with replication factor 3 and min.insync.replicas=2 through
``logmq.connect("kafka://...")``, produces numbered records with an idempotent producer at a
fixed rate while a consumer group reads them, SIGKILLs the broker leading partition 0 at
``--kill-at`` seconds, and prints: records acked, acked but lost, duplicated, failed sends, and
the longest pause between two acknowledgements (the failover as the app sees it).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka_oracle import KafkaCluster  # noqa: E402

import logmq  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=int, default=1000, help="records per second")
    ap.add_argument("--kill-at", type=float, default=7.0)
    a = ap.parse_args()
    cluster = KafkaCluster(Path(tempfile.mkdtemp(prefix="failover-")), brokers=3)
    cluster.start()
    try:
        run(cluster, a.seconds, a.rate, a.kill_at)
    finally:
        cluster.stop()


def run(cluster: KafkaCluster, seconds: float, rate: int, kill_at: float) -> None:
    target = f"kafka://{cluster.bootstrap}"
    log = logmq.connect(target, request_timeout=60)
    log.create_topic("failover", 3, {"min.insync.replicas": 2}, replication_factor=3)
    md = log.admin.list_topics("failover", timeout=30).topics["failover"]
    leader = md.partitions[0].leader
    acked: list[tuple[float, int]] = []
    failed: list[str] = []
    lock = threading.Lock()
    t0 = time.monotonic()

    def on_done(seq: int):  # type: ignore[no-untyped-def]
        def cb(fut):  # type: ignore[no-untyped-def]
            err = fut.exception(0)
            with lock:
                if err is None:
                    acked.append((time.monotonic() - t0, seq))
                else:
                    failed.append(f"{type(err).__name__}: {err}")
        return cb

    killed_at: float | None = None
    with log.producer(idempotent=True, linger_ms=2) as p:
        seq = 0
        while (now := time.monotonic() - t0) < seconds:
            if killed_at is None and now >= kill_at:
                os.kill(cluster.procs[leader].pid, signal.SIGKILL)
                killed_at = now
            target_n = int(now * rate)
            while seq < target_n:
                p.send("failover", b"%d" % seq, key=b"k%d" % (seq % 97)).add_done_callback(
                    on_done(seq))
                seq += 1
            time.sleep(0.005)  # pacing the send rate, not synchronisation
        sent = seq
    seen: Counter[int] = Counter()
    c = log.consumer("failover", group="failover-check", auto_offset_reset="earliest")
    deadline = time.monotonic() + 60
    while sum(seen.values()) < len(acked) and time.monotonic() < deadline:
        for r in c.poll(1.0):
            seen[int(r.value)] += 1
    c.close()
    times = sorted(t for t, _ in acked)
    pause = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)
    acked_set = {s for _, s in acked}
    lost = len(acked_set - set(seen))
    dup = sum(n - 1 for n in seen.values() if n > 1)
    print(f"brokers 3, replication factor 3, min.insync.replicas 2; killed broker {leader} "
          f"(leader of partition 0) at {killed_at:.1f} s")
    print(f"sent {sent}, acked {len(acked)}, failed {len(failed)}, acked but lost {lost}, "
          f"duplicated {dup}, longest pause between acks {pause * 1000:.0f} ms")
    for f in sorted(set(failed))[:5]:
        print("  failure:", f)
    log.close()


if __name__ == "__main__":
    main()
