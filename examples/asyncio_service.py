"""An asyncio service on ``logmq.aio``: consume orders, enrich them concurrently, produce.

The shape of many aiokafka services, on an embedded log: a consumer group reads ``orders``,
each batch is processed with bounded concurrency (an ``asyncio.Semaphore`` standing in for
calls to other services), results go to ``orders-enriched``, and offsets are committed only
after the results are appended (at-least-once). SIGINT/SIGTERM stop it cleanly; ``--demo``
feeds it orders and stops once they are all through.

    python examples/asyncio_service.py --demo
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile

import logmq.aio


async def enrich(order: dict, limit: asyncio.Semaphore) -> dict:
    async with limit:
        await asyncio.sleep(0.001)  # e.g. an HTTP call to a pricing service
        return {**order, "total_cents": order["qty"] * 250}


async def service(log: logmq.aio.AioLog, stop: asyncio.Event) -> int:
    await log.create_topic("orders-enriched", partitions=2, exist_ok=True)
    consumer = log.consumer("orders", group="enricher", auto_offset_reset="earliest",
                            enable_auto_commit=False)
    limit = asyncio.Semaphore(32)
    handled = 0
    async with log.producer() as producer:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=200)
            records = [r for recs in batches.values() for r in recs]
            if not records:
                continue
            results = await asyncio.gather(*(enrich(json.loads(r.value), limit)
                                             for r in records))
            await asyncio.gather(*(producer.send_nowait("orders-enriched",
                                                        json.dumps(o).encode(), key=r.key)
                                   for r, o in zip(records, results, strict=True)))
            await consumer.commit()  # after the results are durable in the log
            handled += len(records)
    await consumer.close()
    return handled


async def main(data: str, demo: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with logmq.aio.open(data) as log:
        await log.create_topic("orders", partitions=2, exist_ok=True)
        task = asyncio.create_task(service(log, stop))
        if demo:
            async with log.producer() as p:
                for i in range(500):
                    await p.send("orders", json.dumps({"id": i, "qty": i % 4 + 1}).encode(),
                                 key=f"c{i % 9}".encode())
            out = log.consumer("orders-enriched", auto_offset_reset="earliest")
            seen = 0
            deadline = loop.time() + 60
            while seen < 500 and loop.time() < deadline:
                seen += sum(len(v) for v in (await out.getmany(timeout_ms=1000)).values())
            await out.close()
            stop.set()
        handled = await task
        print(f"enriched {handled} orders")
        if demo:
            assert handled == 500 == seen, (handled, seen)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="data directory (default: a fresh temporary one)")
    ap.add_argument("--demo", action="store_true", help="feed 500 orders, stop when done")
    args = ap.parse_args()
    asyncio.run(main(args.data or tempfile.mkdtemp(prefix="service-"), args.demo))
