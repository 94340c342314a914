#!/usr/bin/env python3
"""The classic order pipeline on logmq queues: orders -> payments -> fulfilment -> notifications.

Each stage is a :class:`logmq.Worker` (a share group of threads) that reads one topic and
writes the next; failures end in dead-letter topics instead of being lost or retried forever:

* **payments** charges each order. A declined card is a permanent failure: ``reject()`` sends
  the order straight to ``orders.dlq``. A flaky gateway raises: the worker nacks, the order
  comes back after an exponential backoff with jitter, and after ``max_attempts`` it is
  dead-lettered too. Express orders are sent with a higher ``priority``.
* **fulfilment** asks the inventory service for stock with request-reply
  (``log.request`` / ``record.reply``); out-of-stock orders are rejected to
  ``payments.dlq`` (a refund process would read them from there).
* **notifications** "emails" the customer; a circuit breaker pauses it while the mail
  server is down instead of burning every message's attempts.

Forwarding uses ``msg_id`` per order and stage, so a record redelivered after a crash or an
expired lock never produces a second payment or shipment downstream (dedup index in LMDB).

At the end it checks that every order ended exactly once: notified, or in a dead-letter
topic, and prints the counts and queue stats.

Usage: ``python tools/order_pipeline.py --orders 2000 [--data DIR] [--seed N]``
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
import time

import logmq

STAGES = ("orders", "payments", "fulfilment", "notifications", "inventory")


def run(data: str, orders: int, seed: int) -> int:
    rng = random.Random(seed)
    declined = {i for i in range(orders) if rng.random() < 0.03}
    flaky_forever = {i for i in range(orders) if rng.random() < 0.02} - declined
    out_of_stock = {i for i in range(orders) if rng.random() < 0.03}
    stock_lock = threading.Lock()
    notified: dict[int, int] = {}
    done = threading.Condition()
    mail_down = threading.Event()

    with logmq.open(data) as log:
        for t in STAGES:
            if t not in log.list_topics():
                log.create_topic(t, partitions=4)
        producer = log.producer(linger_ms=1)

        def progress(*_: object) -> None:
            """Something ended (a notification, a dead letter, a failure): re-check."""
            with done:
                done.notify_all()

        def payment(rec: logmq.QueueRecord) -> None:
            order = json.loads(rec.value)
            oid = order["id"]
            if oid in declined:
                rec.reject("card declined")
                progress()
                return
            if oid in flaky_forever or (oid % 7 == 0 and rec.delivery_count == 1):
                raise TimeoutError("payment gateway timed out")
            producer.send("payments", json.dumps({**order, "paid": order["amount"]}),
                          key=rec.key, msg_id=f"pay-{oid}").result()

        def inventory(rec: logmq.QueueRecord) -> None:
            oid = json.loads(rec.value)["id"]
            with stock_lock:
                ok = oid not in out_of_stock
            rec.reply(b"reserved" if ok else b"out-of-stock")

        def fulfil(rec: logmq.QueueRecord) -> None:
            order = json.loads(rec.value)
            answer = log.request("inventory", rec.value, key=rec.key, timeout=30)
            if answer.value != b"reserved":
                rec.reject("out of stock: refund needed")
                progress()
                return
            producer.send("fulfilment", json.dumps({**order, "shipped": True}),
                          key=rec.key, msg_id=f"ship-{order['id']}").result()

        def notify(rec: logmq.QueueRecord) -> None:
            if mail_down.is_set():
                raise ConnectionError("mail server unavailable")
            oid = json.loads(rec.value)["id"]
            with done:
                notified[oid] = notified.get(oid, 0) + 1
                done.notify_all()

        common = {"backoff_base_ms": 20, "backoff_max_ms": 200, "max_attempts": 4}
        workers = [  # payment failures are per order, not an outage: a lenient breaker
            logmq.Worker(log, "orders", payment, group="payments", concurrency=3,
                         failure_threshold=20, cooldown_s=0.3, on_error=progress, **common),
            logmq.Worker(log, "inventory", inventory, group="inventory", concurrency=2),
            logmq.Worker(log, "payments", fulfil, group="fulfilment", concurrency=4, **common),
            logmq.Worker(log, "fulfilment", notify, group="notifications", concurrency=2,
                         failure_threshold=3, cooldown_s=0.2, on_error=progress, **common),
        ]
        for w in workers:
            w.start()

        t0 = time.monotonic()
        mail_down.set()  # the mail server starts down: the breaker holds notifications back
        for i in range(orders):
            express = i % 10 == 0
            producer.send("orders", json.dumps({"id": i, "amount": 10 + i % 90,
                                                "express": express}),
                          key=f"customer-{i % 97}", priority=9 if express else 0,
                          msg_id=f"order-{i}")
        producer.flush()
        with done:
            done.wait_for(lambda: workers[3].breaker.times_opened > 0, timeout=30)
        mail_down.clear()

        expected_ok = orders - len(declined) - len(flaky_forever) - len(
            out_of_stock - declined - flaky_forever)

        def dead_letters() -> int:
            return sum(log.queue(t, group=g).stats().dlq_size for t, g in
                       (("orders", "payments"), ("payments", "fulfilment")))

        with done:
            finished = done.wait_for(
                lambda: len(notified) >= expected_ok and dead_letters() >= orders - expected_ok,
                timeout=120)
        for w in workers:
            w.stop()
        elapsed = time.monotonic() - t0
        producer.close()

        dlq_orders = [json.loads(r.value)["id"] for r in _read_all(log, "orders.dlq")]
        dlq_payments = [json.loads(r.value)["id"] for r in _read_all(log, "payments.dlq")]
        problems = []
        if not finished:
            problems.append("timed out waiting for the pipeline to drain")
        if any(c != 1 for c in notified.values()):
            problems.append("an order was notified twice")
        ended = sorted(list(notified) + dlq_orders + dlq_payments)
        if ended != list(range(orders)):
            problems.append(f"{orders - len(set(ended))} orders missing or duplicated")
        print(f"{orders} orders in {elapsed:.2f} s: {len(notified)} notified, "
              f"{len(dlq_orders)} dead-lettered at payment "
              f"({len(declined)} declined, {len(flaky_forever)} gateway failures), "
              f"{len(dlq_payments)} out of stock (to refund)")
        for t, g in (("orders", "payments"), ("payments", "fulfilment"),
                     ("fulfilment", "notifications")):
            s = log.queue(t, group=g).stats()
            print(f"  {t:<11} group={g:<14} depth={s.depth} in_flight={s.in_flight} "
                  f"dlq={s.dlq_size}")
        print(f"  notification breaker opened {workers[3].breaker.times_opened} time(s)")
        for p in problems:
            print("PROBLEM:", p)
        if problems:
            return 1
        print("pipeline OK")
        return 0


def _read_all(log: logmq.Broker, topic: str) -> list[logmq.Record]:
    if topic not in log.list_topics():
        return []
    c = log.consumer(topic, auto_offset_reset="earliest")
    out: list[logmq.Record] = []
    total = sum(e - s for s, e in (log.offsets((topic, p))
                                   for p in range(log.partitions_for(topic))))
    while len(out) < total:
        out.extend(c.poll(timeout=1))
    c.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=2000)
    ap.add_argument("--data", help="data directory (default: a temporary one)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    data = args.data or tempfile.mkdtemp(prefix="logmq-orders-")
    try:
        return run(data, args.orders, args.seed)
    finally:
        if args.data is None:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
