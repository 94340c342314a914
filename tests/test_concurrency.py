"""Several producer and consumer threads on one log: no loss, no duplicates, order per key."""

from __future__ import annotations

import threading

import logmq


def test_threads_produce_and_consume_concurrently(data_dir):
    n_threads, per_thread, parts = 4, 2000, 4
    with logmq.open(data_dir) as log:
        log.create_topic("t", partitions=parts, config={"segment.bytes": 32 * 1024})
        producer = log.producer(linger_ms=1, batch_size=4096)
        consumers = [log.consumer("t", auto_offset_reset="earliest") for _ in range(2)]
        total = n_threads * per_thread
        received: list[list] = [[] for _ in consumers]
        errors: list[BaseException] = []

        def produce(tid: int) -> None:
            try:
                futs = []
                for i in range(per_thread):
                    key = b"t%d-k%d" % (tid, i % 7)
                    if i % 3 == 0:
                        futs.append(producer.send("t", b"%d:%d" % (tid, i), key=key))
                    else:
                        producer.send_batch("t", [(key, b"%d:%d" % (tid, i))])
                for f in futs:
                    f.result(timeout=30)
            except BaseException as e:  # pragma: no cover - surfaced by the assert below
                errors.append(e)

        def consume(idx: int) -> None:
            c = consumers[idx]
            while len(received[idx]) < total:
                got = c.poll(timeout=30)
                if not got:
                    errors.append(AssertionError(f"consumer {idx} stalled"))
                    return
                received[idx].extend(got)

        threads = [threading.Thread(target=produce, args=(t,)) for t in range(n_threads)]
        threads += [threading.Thread(target=consume, args=(i,)) for i in range(len(consumers))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        producer.close()
        assert not errors, errors
        for recs in received:
            assert len(recs) == total
            ids = {(r.partition, r.offset) for r in recs}
            assert len(ids) == total  # no duplicates
            values = {r.value for r in recs}
            assert len(values) == total  # nothing lost
            per_part: dict[int, list[int]] = {}
            per_key: dict[bytes, list[int]] = {}
            for r in recs:
                per_part.setdefault(r.partition, []).append(r.offset)
                per_key.setdefault(r.key, []).append(int(r.value.split(b":")[1]))
            for offs in per_part.values():
                assert offs == sorted(offs)
            # send_batch calls are synchronous per thread, futures may interleave with them,
            # but within one kind of send a key's records keep the thread's order
            for k, seq in per_key.items():
                sync = [s for s in seq if s % 3 != 0]
                assert sync == sorted(sync), k
                asynchronous = [s for s in seq if s % 3 == 0]
                assert asynchronous == sorted(asynchronous), k
