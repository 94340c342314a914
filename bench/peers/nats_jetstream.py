"""NATS JetStream: ``nats-server -js`` (Debian), file storage, driven by nats-py (asyncio).

The record key is the subject (``b.key-N``: NATS' own way to key messages; the stream
captures ``b.>``). Produce is ``publish_async`` (acked by the server, up to 4,000 in flight,
nats-py's default window) then waiting for every ack; consume is a durable pull consumer
fetching 1,000 at a time with AckAll, one ack per fetch (the equivalent of committing after
each poll).

Durability: JetStream acknowledges a publish after writing it to its message block file; its
own fsync timer (nats-server 2.9 has no ``sync_interval`` setting; later versions default to
2 minutes) decides when it reaches the disk. Weaker than logmq's 1 s, never stronger.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from typing import Any

from peers.base import Pacer, Peer, ServerProc, Skip, free_port, latency_stats, stamp, unstamp

FETCH = 1000


class NatsJetStream(Peer):
    name = "NATS JetStream"
    durability = "file storage; ack after write to the block file, fsync on the server's timer"
    partitions = 1

    def check(self) -> None:
        if shutil.which("nats-server") is None:
            raise Skip("nats-server not installed (apt-get install nats-server)")
        try:
            import nats  # noqa: F401
        except ImportError as e:
            raise Skip("nats-py not installed (pip install nats-py)") from e

    def open(self, tmp: str) -> None:
        self.srv: ServerProc | None = None
        port = free_port()
        self.url = f"nats://127.0.0.1:{port}"
        self.srv = ServerProc(
            [shutil.which("nats-server") or "nats-server", "-js", "-sd",
             os.path.join(tmp, "nats"), "-a", "127.0.0.1", "-p", str(port)],
            port, os.path.join(tmp, "nats.log"))

    def close(self) -> None:
        if getattr(self, "srv", None) is not None:
            self.srv.stop()
            self.srv = None

    def server_pid(self) -> int | None:
        return self.srv.pid if self.srv is not None else None

    async def _connect(self, stream: str) -> tuple[Any, Any]:
        import nats

        nc = await nats.connect(self.url)
        js = nc.jetstream()
        try:
            await js.add_stream(name=stream, subjects=[f"{stream}.>"], storage="file")
        except Exception as e:  # noqa: BLE001 - already there from the produce phase
            if "already in use" not in str(e):
                raise
        return nc, js

    def produce(self, n: int, size: int) -> dict[str, Any]:
        return asyncio.run(self._produce(n, size))

    async def _produce(self, n: int, size: int) -> dict[str, Any]:
        nc, js = await self._connect("b")
        subjects = [f"b.key-{i}" for i in range(1000)]
        value = b"x" * size
        pub = js.publish_async
        t = time.perf_counter()
        for i in range(n):
            await pub(subjects[i % 1000], value)
        await asyncio.wait_for(js.publish_async_completed(), 300)
        secs = time.perf_counter() - t
        await nc.close()
        return {"seconds": secs}

    def consume(self, n: int, size: int) -> dict[str, Any]:
        return asyncio.run(self._consume(n))

    async def _consume(self, n: int) -> dict[str, Any]:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        nc, js = await self._connect("b")
        sub = await js.pull_subscribe("b.>", "dur", config=ConsumerConfig(
            ack_policy=AckPolicy.ALL, deliver_policy=DeliverPolicy.ALL, max_ack_pending=-1))
        got = 0
        t = time.perf_counter()
        while got < n:
            msgs = await sub.fetch(FETCH, timeout=10)
            got += len(msgs)
            await msgs[-1].ack()  # AckAll: covers the whole fetch
        secs = time.perf_counter() - t
        push = await self._push(js, n)
        await nc.close()
        return {"seconds": secs, "alt": {"ordered push consumer": push}}

    async def _push(self, js: Any, n: int) -> float:
        """The same stream read by an ordered push consumer (no acks, flow-controlled).

        nats-py's pull ``fetch`` awaits every message through ``asyncio.wait_for`` (a task
        per message), which is most of its cost; the push path shows what the server gives.
        """
        done = asyncio.Event()
        got = 0

        async def cb(msg: Any) -> None:
            nonlocal got
            got += 1
            if got >= n:
                done.set()

        t = time.perf_counter()
        sub = await js.subscribe("b.>", cb=cb, ordered_consumer=True)
        await asyncio.wait_for(done.wait(), 300)
        secs = time.perf_counter() - t
        await sub.unsubscribe()
        return secs

    def latency(self, rate: int, seconds: float, size: int) -> dict[str, Any]:
        return asyncio.run(self._latency(rate, seconds, size))

    async def _latency(self, rate: int, seconds: float, size: int) -> dict[str, Any]:
        """Paced publish_async and a pull consumer (fetch up to 1,000, 100 ms expiry).

        Both are coroutines on one event loop, the way a nats-py app runs them.
        """
        import nats.errors
        from nats.js.api import AckPolicy, ConsumerConfig

        nc, js = await self._connect("lat")
        sub = await js.pull_subscribe("lat.>", "latc", config=ConsumerConfig(
            ack_policy=AckPolicy.ALL, max_ack_pending=-1))
        pacer = Pacer(rate, seconds)
        lat: list[int] = []
        deadline = time.monotonic() + seconds + 30

        async def reader() -> None:
            mono = time.monotonic_ns
            while len(lat) < pacer.total and time.monotonic() < deadline:
                try:
                    msgs = await sub.fetch(FETCH, timeout=0.1)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                now = mono()
                lat.extend(now - unstamp(m.data) for m in msgs)
                await msgs[-1].ack()

        task = asyncio.create_task(reader())
        subjects = [f"lat.key-{i}" for i in range(1000)]
        pad = b"x" * (size - 8)
        while not pacer.done():
            due = pacer.due()
            for i in range(pacer.sent, due):
                await js.publish_async(subjects[i % 1000], stamp(pacer.scheduled(i), 8) + pad)
            pacer.sent = due
            await asyncio.sleep(pacer.pause())
        await asyncio.wait_for(js.publish_async_completed(), 60)
        await asyncio.wait_for(task, seconds + 30)
        await nc.close()
        return latency_stats(lat, pacer.total, seconds)
