"""Raw Kafka requests over a socket and hand-made record batches, for the server's hostile tests."""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

from logmq.codec.batch import CRC_START
from logmq.codec.records import crc32c, encode_batch, encode_varint
from logmq.protocol import decode_response, encode_request

PRODUCE_V = 8


class RawClient:
    """One blocking connection that sends encoded requests and reads whole responses."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.corr = 0

    def call(self, api: int, version: int, body: dict) -> dict:
        self.corr += 1
        self.sock.sendall(encode_request(api, version, self.corr, "raw", body))
        frame = self.read_frame()
        corr, resp = decode_response(api, version, frame)
        assert corr == self.corr
        return resp

    def read_frame(self) -> bytes:
        size = struct.unpack(">i", self._exact(4))[0]
        return self._exact(size)

    def _exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        return bytes(buf)

    def produce(self, topic: str, records: bytes, partition: int = 0) -> dict:
        resp = self.call(0, PRODUCE_V, {
            "transactional_id": None, "acks": -1, "timeout_ms": 5000,
            "topic_data": [{"name": topic, "partition_data": [
                {"index": partition, "records": records}]}]})
        return resp["responses"][0]["partition_responses"][0]

    def close(self) -> None:
        self.sock.close()


def fix_crc(batch: bytes | bytearray) -> bytes:
    """Recompute a batch's CRC-32C after editing it (anyone can: it proves nothing)."""
    b = bytearray(batch)
    struct.pack_into(">I", b, 17, crc32c(bytes(b[CRC_START:])))
    return bytes(b)


def with_header(batch: bytes, **fields: int) -> bytes:
    """Overwrite header fields by name, then fix the CRC."""
    at = {"attributes": (21, ">h"), "last_offset_delta": (23, ">i"),
          "base_timestamp": (27, ">q"), "max_timestamp": (35, ">q"), "producer_id": (43, ">q"),
          "producer_epoch": (51, ">h"), "base_sequence": (53, ">i"), "record_count": (57, ">i")}
    b = bytearray(batch)
    for name, value in fields.items():
        pos, fmt = at[name]
        struct.pack_into(fmt, b, pos, value)
    return fix_crc(b)


def with_payload(batch: bytes, payload: bytes) -> bytes:
    """The same header over new record bytes (length and CRC fixed)."""
    b = bytearray(batch[:61]) + payload
    struct.pack_into(">i", b, 8, len(b) - 12)
    return fix_crc(b)


def raw_record(offset_delta: int, key: bytes | None, value: bytes | None,
               ts_delta: int = 0, headers: list[tuple[bytes, bytes | None]] = ()) -> bytes:
    """One record's bytes with whatever fields the test wants (no validation)."""
    def blob(x: bytes | None) -> bytes:
        return encode_varint(-1) if x is None else encode_varint(len(x)) + x

    body = b"\x00" + encode_varint(ts_delta) + encode_varint(offset_delta) + blob(key)
    body += blob(value) + encode_varint(len(headers))
    for hk, hv in headers:
        body += encode_varint(len(hk)) + hk + blob(hv)
    return encode_varint(len(body)) + body


def good_batch(n: int = 1, key: bytes | None = b"k", ts: int | None = None, **kw: Any) -> bytes:
    return encode_batch([(key, b"v%d" % i) for i in range(n)], timestamp=ts, **kw)


def run_in_thread(fn: Any) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


class ThreadServer:
    """A KafkaServer on its own event loop in a thread, so a test can read its counters."""

    def __init__(self, broker: Any, **limits: int) -> None:
        import asyncio

        from logmq.server import KafkaServer
        from logmq.server.limits import ServerLimits

        self.loop = asyncio.new_event_loop()
        self.server = KafkaServer(broker, "127.0.0.1", 0, limits=ServerLimits().replace(**limits))
        self.thread = run_in_thread(self.loop.run_forever)
        self.host, self.port = self.run(self.server.start())

    def run(self, coro: Any, timeout: float = 30) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def state(self, fn: Any) -> Any:
        """``fn()`` evaluated on the server's loop (its state is not thread-safe)."""
        async def get() -> Any:
            return fn()

        return self.run(get())

    def close(self) -> None:
        try:
            self.run(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def wait_until(cond: Any, timeout: float, what: str = "condition") -> None:
    """Poll ``cond()`` until true, failing after ``timeout`` seconds (no sleeps as sync)."""
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
