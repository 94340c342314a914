"""A Kafka client (confluent-kafka) against ``logmq serve``: admin, idempotent produce, group.

Starts ``logmq serve`` on a free port with a fresh data directory (or uses ``--bootstrap``
for a server you run yourself), then does what an application would against Kafka: create a
topic with the AdminClient, produce with idempotence, consume in a consumer group, commit, and
read the committed offsets back. Nothing here knows it is not talking to Kafka.

    python examples/kafka_client.py [--bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def start_server() -> tuple[subprocess.Popen[str], str]:
    data = tempfile.mkdtemp(prefix="kafka-example-")
    proc = subprocess.Popen([sys.executable, "-m", "logmq.cli", "serve", "--data", data,
                             "--listen", "127.0.0.1:0"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:  # the server logs its address once it listens
        m = re.search(r"listening on ([\d.]+:\d+)", line)
        if m:
            return proc, m.group(1)
    raise RuntimeError("logmq serve exited before listening")


def run(bootstrap: str) -> None:
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(10)

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "linger.ms": 5})
    for i in range(30):
        producer.produce(topic, f'{{"order": {i}}}'.encode(), key=f"customer-{i % 5}".encode(),
                         headers=[("source", b"example")])
    assert producer.flush(10) == 0

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "billing",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen = []
    deadline = time.monotonic() + 30
    while len(seen) < 30 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise RuntimeError(msg.error())
        seen.append((msg.partition(), msg.offset(), msg.key().decode()))
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    consumer.close()
    by_key: dict[str, set[int]] = {}
    for part, _off, key in seen:
        by_key.setdefault(key, set()).add(part)
    print(f"consumed {len(seen)} records from {topic}; each key stayed on one partition: "
          f"{all(len(p) == 1 for p in by_key.values())}")
    print("committed offsets:", {c.partition: c.offset for c in committed})
    assert len(seen) == 30 and sum(c.offset for c in committed) == 30


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", help="a running logmq serve (default: start one)")
    args = ap.parse_args()
    if args.bootstrap:
        return run(args.bootstrap)
    proc, bootstrap = start_server()
    try:
        run(bootstrap)
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
