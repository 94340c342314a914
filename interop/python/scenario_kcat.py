"""The differential scenario through kcat (the librdkafka command-line tool): see common.py.

kcat cannot set a record's timestamp, so produce uses the broker-visible CreateTime of now and
the comparison looks at timestamp types and order, not values; offset-by-time queries use
targets before and after "now" instead of the shared fixed timestamps.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

from common import N_RECORDS, PARTITIONS, Recorder, args, record

T = 30


def kcat(*argv: str, stdin: str | None = None) -> str:
    proc = subprocess.run(["kcat", *argv], input=stdin, capture_output=True, text=True,
                          timeout=T)
    if proc.returncode != 0:
        raise RuntimeError(_error_code(proc.stderr) or f"kcat exit {proc.returncode}")
    return proc.stdout


def _error_code(stderr: str) -> str | None:
    m = re.search(r"(Broker|Local): ([A-Za-z ]+)", stderr)
    if m:
        return m.group(2).strip()
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else None


def main() -> None:
    a = args()
    bs, topic, group = a.bootstrap, f"{a.prefix}-kcat", f"{a.prefix}-kcat-g"
    rec = Recorder("kcat")
    base = ["-b", bs, "-X", "topic.metadata.refresh.interval.ms=1000"]
    # kcat has no create-topic mode: the topic is made through confluent-kafka's admin, the
    # same librdkafka underneath
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(T)

    def metadata() -> Any:
        md = json.loads(kcat(*base, "-L", "-J", "-t", topic))
        t = md["topics"][0]
        return {"error": t.get("error"), "partitions": sorted(p["partition"]
                                                              for p in t["partitions"]),
                "leaders_known": all(p["leader"] >= 0 for p in t["partitions"])}
    rec.op("metadata", metadata)

    before = int(time.time() * 1000) - 1

    def produce() -> Any:
        out = []
        for i in range(N_RECORDS):
            part, k, v, h, _ts = record(i)
            hdrs = [x for hk, hv in h for x in ("-H", f"{hk}={hv.decode()}")]
            kcat(*base, "-P", "-t", topic, "-p", str(part), "-K", ":", *hdrs,
                 stdin=f"{k.decode()}:{v.decode()}\n")
            out.append(part)
        return out
    rec.op("produce", produce)

    def consume() -> Any:
        lines = kcat(*base, "-C", "-t", topic, "-o", "beginning", "-e", "-J",
                     "-c", str(N_RECORDS)).splitlines()
        msgs = [json.loads(x) for x in lines if x.startswith("{")]
        return sorted([m["partition"], m["offset"], m["key"], m["payload"], m.get("headers"),
                       m["tstype"], m["ts"] >= before] for m in msgs)
    rec.op("consume", consume)

    def query(ts: int) -> Any:
        out = {}
        for p in range(PARTITIONS):
            text = kcat(*base, "-Q", "-t", f"{topic}:{p}:{ts}")
            m = re.search(r"offset (-?\d+)", text)
            out[str(p)] = int(m.group(1)) if m else text.strip()
        return out
    rec.op("offsets_earliest", lambda: query(-2))
    rec.op("offsets_latest", lambda: query(-1))
    rec.op("offsets_by_time", lambda: {"before": query(before), "future": query(before + 10**9)})

    def group_consume() -> Any:
        lines = kcat(*base, "-G", group, "-X", "auto.offset.reset=earliest", "-o", "beginning",
                     "-e", "-J", "-c", str(N_RECORDS), topic).splitlines()
        msgs = [json.loads(x) for x in lines if x.startswith("{")]
        return sorted([m["partition"], m["offset"]] for m in msgs)
    rec.op("group_consume_commit", group_consume)

    def unknown() -> Any:
        md = json.loads(kcat(*base, "-L", "-J", "-t", f"{topic}-nope"))
        return md["topics"][0].get("error")
    rec.op("unknown_topic_metadata", unknown)
    rec.dump()


if __name__ == "__main__":
    main()
