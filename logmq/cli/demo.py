"""``logmq demo``: produce a few thousand records and replay them, to see the log work."""

from __future__ import annotations

import time

import click

import logmq
from logmq.cli.common import data_option


@click.command()
@data_option
@click.option("--records", default=100_000, show_default=True, help="records to produce")
@click.option("--partitions", default=4, show_default=True)
def demo(data: str, records: int, partitions: int) -> None:
    """Produce records into topic 'demo', replay them from the start, print rates."""
    with logmq.open(data) as log:
        if "demo" not in log.list_topics():
            log.create_topic("demo", partitions=partitions)
        n = log.partitions_for("demo")
        before = {p: log.end_offset(("demo", p)) for p in range(n)}
        producer = log.producer()
        value = b"x" * 100
        t0 = time.perf_counter()
        batch = [(f"key-{i % 1000}".encode(), value) for i in range(records)]
        producer.send_batch("demo", batch)
        producer.close()
        t1 = time.perf_counter()
        click.echo(f"produced {records:,} records of 100 B in {t1 - t0:.2f} s "
                   f"({records / (t1 - t0):,.0f} records/s, fsync={log.topic_config('demo')['fsync']})")
        consumer = log.consumer(max_poll_records=10_000)
        consumer.assign([("demo", p) for p in range(n)])
        for p in range(n):
            consumer.seek(("demo", p), before[p])
        got = 0
        t2 = time.perf_counter()
        while got < records:
            recs = consumer.poll(timeout=1.0)
            if not recs:
                break
            got += len(recs)
        t3 = time.perf_counter()
        consumer.close()
        click.echo(f"replayed {got:,} records in {t3 - t2:.2f} s ({got / max(t3 - t2, 1e-9):,.0f} records/s)")
        for info in log.describe_topic("demo").partitions:
            # inclusive ranges, as `logmq produce` prints them (end_offset is the next one)
            span = (f"offsets {info.start_offset}..{info.end_offset - 1}"
                    if info.end_offset > info.start_offset else "no records")
            click.echo(f"  demo-{info.partition}: {span}, "
                       f"{info.size_bytes:,} bytes in {info.segments} segment(s)")
        if log.in_memory:
            click.echo("data directory: in memory (gone when the command ends)")
        else:
            click.echo(f"data directory: {data} (run again to append more; files are "
                       "RecordBatch v2)")
