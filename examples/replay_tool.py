"""An offset replay tool: copy a time window (or offset range) of a topic somewhere else.

Typical use: a consumer had a bug between 10:00 and 10:20; after the fix, replay that window
into a side topic (or re-feed it) without touching the consumer group's offsets. Timestamps
map to offsets through the time index, so nothing before the window is read.

    python examples/replay_tool.py --demo                      # seed data, replay a window
    python examples/replay_tool.py --data DIR orders --from-ms T1 --to-ms T2 --to orders-replay
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

import logmq
from logmq.types import TopicPartition


def window(log: logmq.Broker, topic: str, from_ms: int | None, to_ms: int | None
           ) -> dict[TopicPartition, tuple[int, int]]:
    """[start, end) offsets per partition covering timestamps [from_ms, to_ms)."""
    tps = [TopicPartition(topic, p) for p in range(log.partitions_for(topic))]
    out = {}
    for tp in tps:
        start, end = log.offsets(tp)
        if from_ms is not None:
            hit = log.offsets_for_times({tp: from_ms})[tp]
            start = hit.offset if hit is not None else end
        if to_ms is not None:
            hit = log.offsets_for_times({tp: to_ms})[tp]
            end = hit.offset if hit is not None else end
        out[tp] = (start, max(start, end))
    return out


def replay(log: logmq.Broker, ranges: dict[TopicPartition, tuple[int, int]],
           dest: str | None) -> int:
    """Copy the ranges into ``dest`` (keys, headers, timestamps kept) or print JSON lines."""
    consumer = log.consumer(auto_offset_reset="earliest")
    consumer.assign([tp for tp, (a, b) in ranges.items() if b > a])
    for tp, (start, _) in ranges.items():
        if tp in consumer.assignment():
            consumer.seek(tp, start)
    producer = log.producer() if dest is not None else None
    copied = 0
    while consumer.assignment():
        records = consumer.poll(timeout=1.0)
        if not records:
            break
        for r in records:
            end = ranges[r.tp][1]
            if r.offset >= end:
                consumer.pause(r.tp)
                continue
            if producer is not None:
                producer.send(dest, r.value, key=r.key, headers=r.headers, timestamp=r.timestamp)
            else:
                print(json.dumps({"partition": r.partition, "offset": r.offset,
                                  "timestamp": r.timestamp, "value": r.value.decode()}))
            copied += 1
        if all(consumer.position(tp) >= ranges[tp][1] for tp in consumer.assignment()):
            break
    consumer.close()
    if producer is not None:
        producer.close()
    return copied


def demo() -> None:
    with logmq.open(tempfile.mkdtemp(prefix="replay-")) as log:
        log.create_topic("orders", partitions=3)
        t0 = 1_700_000_000_000
        with log.producer() as p:  # one order a minute for an hour, explicit timestamps
            for i in range(60):
                p.send("orders", f"order-{i}".encode(), key=f"c{i % 7}".encode(),
                       timestamp=t0 + i * 60_000)
        ranges = window(log, "orders", t0 + 10 * 60_000, t0 + 20 * 60_000)
        n = replay(log, ranges, "orders-replay")
        got = sorted(int(r.value.split(b"-")[1]) for r in
                     log.consumer("orders-replay", auto_offset_reset="earliest").poll(timeout=1))
        print(f"replayed {n} records of minutes 10-19 into orders-replay: {got}")
        assert got == list(range(10, 20))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("topic", nargs="?")
    ap.add_argument("--data", default="logmq-data")
    ap.add_argument("--from-ms", type=int)
    ap.add_argument("--to-ms", type=int)
    ap.add_argument("--to", dest="dest", help="destination topic (default: JSON lines on stdout)")
    ap.add_argument("--demo", action="store_true", help="run on generated data")
    args = ap.parse_args()
    if args.demo:
        return demo()
    if not args.topic:
        ap.error("a topic is required (or --demo)")
    with logmq.open(args.data) as log:
        n = replay(log, window(log, args.topic, args.from_ms, args.to_ms), args.dest)
    print(f"replayed {n} record(s)", file=sys.stderr)


if __name__ == "__main__":
    main()
