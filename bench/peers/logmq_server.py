"""logmq served over the Kafka protocol (``logmq serve``), driven by real Kafka clients.

Two client libraries, because they bound the server from opposite sides: confluent-kafka
(librdkafka, C, its own I/O threads: the client is nearly free, so the numbers are the
server's) and kafka-python (pure Python: the client is the bottleneck). The server runs as
its own process, so its CPU share and RSS are measured separately from the client's.

Durability: the server's default topic setting, fsync="interval" (each produce request is
written with write(2) before the response, fsync every 1 s); acks=1, which on one node means
the same as acks=all.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from typing import Any

from peers.base import Pacer, Peer, Skip, keyed, latency_stats, stamp, unstamp

DURABILITY = 'server fsync="interval" (write(2) before the produce response, fsync every 1 s); acks=1'


class LogmqServer:
    """``python -m logmq.cli serve`` on a free loopback port, data under the session's tmp."""

    def __init__(self, data: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logmq.cli", "serve", "--data", data,
             "--listen", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            text=True)
        assert self.proc.stderr is not None
        lines = []
        for line in self.proc.stderr:  # the server's own log says where it listens
            lines.append(line)
            m = re.search(r"listening on ([\d.]+):(\d+)", line)
            if m:
                self.bootstrap = f"{m.group(1)}:{m.group(2)}"
                break
        else:
            raise RuntimeError("logmq serve exited before listening:\n" + "".join(lines))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for _ in self.proc.stderr:  # keep the pipe from filling; the log is not needed
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: finish requests, fsync, checkpoint
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class _ServerPeer(Peer):
    durability = DURABILITY
    partitions = 8
    python_server = True  # py-spy can profile it (see compare.py --profile)

    def open(self, tmp: str) -> None:
        self.srv: LogmqServer | None = None
        self.srv = LogmqServer(os.path.join(tmp, "srv"))
        self._create_topics(["t", "lat"])

    def close(self) -> None:
        srv = getattr(self, "srv", None)
        if srv is not None:
            srv.stop()
            self.srv = None

    def server_pid(self) -> int | None:
        return self.srv.proc.pid if self.srv is not None else None

    def _create_topics(self, names: list[str]) -> None:
        raise NotImplementedError


class ConfluentKafka(_ServerPeer):
    """confluent-kafka: produce with linger 5 ms / 1 MB batches, consume 100,000 at a time."""

    name = "logmq server + confluent-kafka"

    def check(self) -> None:
        try:
            import confluent_kafka  # noqa: F401
        except ImportError as e:
            raise Skip("confluent-kafka not installed (pip install confluent-kafka)") from e

    def _create_topics(self, names: list[str]) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.srv.bootstrap})
        for f in admin.create_topics([NewTopic(t, self.partitions, 1) for t in names]).values():
            f.result(30)

    def _producer(self, linger_ms: float) -> Any:
        from confluent_kafka import Producer

        return Producer({"bootstrap.servers": self.srv.bootstrap, "linger.ms": linger_ms,
                         "batch.size": 1_000_000, "batch.num.messages": 100_000,
                         "queue.buffering.max.messages": 2_000_000,
                         "queue.buffering.max.kbytes": 1_048_576, "acks": 1})

    def _consumer(self, topic: str, **extra: Any) -> Any:
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.srv.bootstrap, "group.id": "bench",
                      "enable.auto.commit": False, "fetch.max.bytes": 52_428_800,
                      "max.partition.fetch.bytes": 10_485_760, **extra})
        c.assign([TopicPartition(topic, i, 0) for i in range(self.partitions)])
        return c

    def produce(self, n: int, size: int) -> dict[str, Any]:
        recs = keyed(n, size)
        p = self._producer(5)
        produce = p.produce
        t = time.perf_counter()
        for k, v in recs:
            try:
                produce("t", v, key=k)
            except BufferError:  # local queue full: let librdkafka send, then retry
                p.poll(0.05)
                produce("t", v, key=k)
        left = p.flush(300)
        secs = time.perf_counter() - t
        if left:
            raise RuntimeError(f"confluent-kafka: {left} records not delivered")
        return {"seconds": secs}

    def consume(self, n: int, size: int) -> dict[str, Any]:
        c = self._consumer("t")
        got = 0
        t = time.perf_counter()
        deadline = time.monotonic() + 300
        while got < n and time.monotonic() < deadline:
            # ask for no more than is left: consume() waits for all it asked or the timeout
            for m in c.consume(min(100_000, n - got), 1.0):
                if m.error() is None:
                    got += 1
        secs = time.perf_counter() - t
        c.close()
        if got < n:
            raise RuntimeError(f"confluent-kafka consumed {got} of {n}")
        return {"seconds": secs}

    def latency(self, rate: int, seconds: float, size: int) -> dict[str, Any]:
        """linger.ms=1 producer here; a consumer thread long-polling (fetch.wait.max.ms 100)."""
        pacer = Pacer(rate, seconds)
        lat: list[int] = []
        c = self._consumer("lat", **{"fetch.wait.max.ms": 100, "fetch.min.bytes": 1})
        stop = threading.Event()

        def reader() -> None:
            mono = time.monotonic_ns
            while len(lat) < pacer.total and not stop.is_set():
                # consume(n, timeout) waits for all n or the timeout: block for the first
                # record only, then take whatever else is already here.
                first = c.poll(0.1)
                if first is None:
                    continue
                msgs = [first, *c.consume(10_000, 0)]
                now = mono()
                lat.extend(now - unstamp(m.value()) for m in msgs if m.error() is None)

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        p = self._producer(1)
        keys = [b"key-%d" % i for i in range(1000)]
        pad = b"x" * (size - 8)
        while not pacer.done():
            due = pacer.due()
            for i in range(pacer.sent, due):
                p.produce("lat", stamp(pacer.scheduled(i), 8) + pad, key=keys[i % 1000])
            pacer.sent = due
            p.poll(0)
            time.sleep(pacer.pause())
        p.flush(60)
        th.join(timeout=seconds + 30)
        stop.set()
        th.join()
        c.close()
        return latency_stats(lat, pacer.total, seconds)


class KafkaPython(_ServerPeer):
    """kafka-python (pure Python): linger 5 ms / 1 MB batches; poll up to 100,000 records."""

    name = "logmq server + kafka-python"

    def check(self) -> None:
        try:
            import kafka  # noqa: F401
        except ImportError as e:
            raise Skip("kafka-python not installed (pip install kafka-python)") from e

    def _create_topics(self, names: list[str]) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.srv.bootstrap)
        admin.create_topics([NewTopic(t, self.partitions, 1) for t in names])
        admin.close()

    def _producer(self, linger_ms: int) -> Any:
        from kafka import KafkaProducer

        return KafkaProducer(bootstrap_servers=self.srv.bootstrap, linger_ms=linger_ms,
                             batch_size=1_000_000, acks=1, max_request_size=16 << 20)

    def _consumer(self, topic: str, **extra: Any) -> Any:
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=self.srv.bootstrap, enable_auto_commit=False,
                          fetch_max_bytes=52_428_800, max_partition_fetch_bytes=10_485_760,
                          **extra)
        tps = [TopicPartition(topic, i) for i in range(self.partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        return c

    def produce(self, n: int, size: int) -> dict[str, Any]:
        recs = keyed(n, size)
        p = self._producer(5)
        send = p.send
        t = time.perf_counter()
        for k, v in recs:
            send("t", v, key=k)
        p.flush(300)
        secs = time.perf_counter() - t
        p.close()
        return {"seconds": secs}

    def consume(self, n: int, size: int) -> dict[str, Any]:
        c = self._consumer("t", max_poll_records=100_000)
        got = 0
        t = time.perf_counter()
        deadline = time.monotonic() + 300
        while got < n and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=1000).values():
                got += len(recs)
        secs = time.perf_counter() - t
        c.close()
        if got < n:
            raise RuntimeError(f"kafka-python consumed {got} of {n}")
        return {"seconds": secs}

    def latency(self, rate: int, seconds: float, size: int) -> dict[str, Any]:
        pacer = Pacer(rate, seconds)
        lat: list[int] = []
        c = self._consumer("lat", fetch_max_wait_ms=100, max_poll_records=10_000)
        stop = threading.Event()

        def reader() -> None:
            mono = time.monotonic_ns
            while len(lat) < pacer.total and not stop.is_set():
                for recs in c.poll(timeout_ms=100).values():
                    now = mono()
                    lat.extend(now - unstamp(r.value) for r in recs)

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        p = self._producer(1)
        keys = [b"key-%d" % i for i in range(1000)]
        pad = b"x" * (size - 8)
        while not pacer.done():
            due = pacer.due()
            for i in range(pacer.sent, due):
                p.send("lat", stamp(pacer.scheduled(i), 8) + pad, key=keys[i % 1000])
            pacer.sent = due
            time.sleep(pacer.pause())
        p.flush(60)
        th.join(timeout=seconds + 30)
        stop.set()
        th.join()
        p.close()
        c.close()
        return latency_stats(lat, pacer.total, seconds)
