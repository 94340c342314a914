#!/usr/bin/env python3
"""What TLS and SASL cost: produce/consume throughput over SASL_SSL vs PLAINTEXT in one run,
and connection set-up latency per listener kind.

One ``logmq serve`` subprocess with a PLAINTEXT, an SSL and a SASL_SSL listener on the same
data directory (certificates made here with ``cryptography``; a SCRAM user added with
``logmq users add``). confluent-kafka produces N records and consumes them back through each
listener; the ratio SASL_SSL/PLAINTEXT is the number to read (Fetch on PLAINTEXT sends
segment bytes with sendfile, on TLS asyncio falls back to reading them into memory and
encrypting in user space: that and the record encryption are the cost). Set-up latency is a
raw socket: connect (+ TLS handshake) (+ SaslHandshake and the two SCRAM round trips at
the stored iteration count) + ApiVersions + Metadata, median of R runs.

    python bench/tls_cost.py [--records N] [--size BYTES] [--connects R]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from logmq.protocol import encode_request  # noqa: E402
from tests.tls_util import make_pki  # noqa: E402


def _call(sock: socket.socket, api: int, v: int, corr: int, body: dict) -> bytes:
    sock.sendall(encode_request(api, v, corr, "bench", body))
    head = b""
    while len(head) < 4:
        head += sock.recv(4 - len(head))
    size = struct.unpack(">i", head)[0]
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


def connect_once(addr: tuple[str, int], kind: str, ca: str, password: str) -> float:
    import scramp

    from logmq.protocol import decode_response

    t0 = time.perf_counter()
    sock: socket.socket = socket.create_connection(addr, timeout=10)
    if kind != "PLAINTEXT":
        ctx = ssl.create_default_context(cafile=ca)
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    _call(sock, 18, 2, 1, {})
    if kind == "SASL_SSL":
        _call(sock, 17, 1, 2, {"mechanism": "SCRAM-SHA-256"})
        c = scramp.ScramClient(["SCRAM-SHA-256"], "bench", password)
        _, r = decode_response(36, 2, _call(sock, 36, 2, 3, {
            "auth_bytes": c.get_client_first().encode()}))
        c.set_server_first(r["auth_bytes"].decode())
        _, r = decode_response(36, 2, _call(sock, 36, 2, 4, {
            "auth_bytes": c.get_client_final().encode()}))
        assert r["error_code"] == 0, r
    _call(sock, 3, 8, 5, {"topics": None, "allow_auto_topic_creation": False,
                          "include_topic_authorized_operations": False})
    elapsed = time.perf_counter() - t0
    sock.close()
    return elapsed


def throughput(conf: dict, topic: str, n: int, size: int) -> tuple[float, float]:
    import confluent_kafka as ck

    payload = os.urandom(size)
    p = ck.Producer({**conf, "linger.ms": 5, "batch.size": 1 << 20, "acks": 1,
                     "queue.buffering.max.messages": 1_000_000})
    t0 = time.perf_counter()
    for _ in range(n):
        while True:
            try:
                p.produce(topic, payload)
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(120) == 0
    produce_s = time.perf_counter() - t0
    c = ck.Consumer({**conf, "group.id": "bench-" + topic, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, "fetch.max.bytes": 50 << 20})
    c.subscribe([topic])
    got = 0
    t0 = time.perf_counter()
    deadline = t0 + 300
    while got < n and time.perf_counter() < deadline:
        for m in c.consume(10_000, 1.0):
            if not m.error():
                got += 1
    consume_s = time.perf_counter() - t0
    c.close()
    assert got == n, (got, n)
    mb = n * size / 1e6
    return mb / produce_s, mb / consume_s


def _drain(stream: IO[str], path: str) -> None:
    with open(path, "w") as f:
        for line in stream:
            f.write(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--connects", type=int, default=50)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="logmq-tls-bench-")
    pki = make_pki(os.path.join(tmp, "pki"))
    data = os.path.join(tmp, "data")
    password = "bench-password"
    subprocess.run([sys.executable, "-m", "logmq.cli", "users", "add", "bench",
                    "--password-stdin", "--iterations", "4096", "--data", data],
                   input=password + "\n", text=True, check=True, capture_output=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "logmq.cli", "serve", "--data", data,
         "--listen", "PLAINTEXT://127.0.0.1:0", "--listen", "SSL://127.0.0.1:0",
         "--listen", "SASL_SSL://127.0.0.1:0", "--ssl-certfile", pki.server_cert,
         "--ssl-keyfile", pki.server_key], stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": ROOT})
    addrs: dict[str, tuple[str, int]] = {}
    assert proc.stderr is not None
    for line in proc.stderr:
        m = re.search(r"listening on ([\d.]+):(\d+) \((\w+);", line)
        if m:
            addrs[m.group(3)] = (m.group(1), int(m.group(2)))
        if len(addrs) == 3:
            break
    log = os.path.join(tmp, "server.log")  # keep draining it, or a full pipe stalls the server
    threading.Thread(target=_drain, args=(proc.stderr, log), daemon=True).start()
    try:
        print(f"records {args.records} x {args.size} B, one logmq serve, confluent-kafka")
        base = {"PLAINTEXT": {}, "SASL_SSL": {
            "security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-256",
            "sasl.username": "bench", "sasl.password": password, "ssl.ca.location": pki.ca}}
        rates = {}
        for kind, extra in base.items():
            host, port = addrs[kind]
            conf = {"bootstrap.servers": f"{host}:{port}", **extra}
            rates[kind] = throughput(conf, "t-" + kind.lower(), args.records, args.size)
            print(f"  {kind:10} produce {rates[kind][0]:7.1f} MB/s   consume "
                  f"{rates[kind][1]:7.1f} MB/s")
        print(f"  SASL_SSL/PLAINTEXT: produce {rates['SASL_SSL'][0] / rates['PLAINTEXT'][0]:.2f}"
              f"x, consume {rates['SASL_SSL'][1] / rates['PLAINTEXT'][1]:.2f}x")
        print(f"connection set-up to first Metadata, median of {args.connects}:")
        for kind in ("PLAINTEXT", "SSL", "SASL_SSL"):
            times = [connect_once(addrs[kind], kind, pki.ca, password)
                     for _ in range(args.connects)]
            print(f"  {kind:10} {statistics.median(times) * 1000:7.2f} ms  (p90 "
                  f"{sorted(times)[int(len(times) * 0.9)] * 1000:.2f} ms)")
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
