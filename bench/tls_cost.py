#!/usr/bin/env python3
"""What TLS and SASL cost: produce/consume throughput over SASL_SSL vs PLAINTEXT in one run,
the server's CPU seconds per GB moved, and connection set-up latency per listener kind.

One ``logmq serve`` subprocess with a PLAINTEXT, an SSL and a SASL_SSL listener on the same
data directory (certificates made here with ``cryptography``; a SCRAM user added with
``logmq users add``). confluent-kafka produces N records and consumes them back through each
listener; the ratio SASL_SSL/PLAINTEXT is the number to read (Fetch on PLAINTEXT sends
segment bytes with sendfile, on TLS asyncio falls back to reading them into memory and
encrypting in user space: that and the record encryption are the cost). Set-up latency is a
raw socket: connect (+ TLS handshake) (+ SaslHandshake and the two SCRAM round trips at
the stored iteration count) + ApiVersions + Metadata, median of R runs.

    python bench/tls_cost.py [--records N] [--size BYTES] [--rounds K] [--connects R]
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(conf: dict, topic: str, n: int, size: int, pid: int
               ) -> tuple[float, float, float, float]:
    """(produce MB/s, consume MB/s, server CPU s per GB produced, per GB consumed)."""
    import confluent_kafka as ck

    payload = os.urandom(size)
    p = ck.Producer({**conf, "linger.ms": 5, "batch.size": 1 << 20, "acks": 1,
                     "queue.buffering.max.messages": 1_000_000})
    cpu0 = cpu_seconds(pid)
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
    cpu1 = cpu_seconds(pid)
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
    cpu2 = cpu_seconds(pid)
    c.close()
    assert got == n, (got, n)
    mb = n * size / 1e6
    return (mb / produce_s, mb / consume_s, (cpu1 - cpu0) * 1000 / mb,
            (cpu2 - cpu1) * 1000 / mb)


def _drain(stream: IO[str], path: str) -> None:
    with open(path, "w") as f:
        for line in stream:
            f.write(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--connects", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
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
        rates: dict[str, tuple[float, float, float, float]] = {}
        for rnd in range(args.rounds):  # interleaved; the best round of each (a shared box)
            for kind, extra in base.items():
                host, port = addrs[kind]
                conf = {"bootstrap.servers": f"{host}:{port}", **extra}
                r = throughput(conf, f"t-{kind.lower()}-{rnd}", args.records, args.size,
                               proc.pid)
                old = rates.get(kind)
                rates[kind] = r if old is None else (max(old[0], r[0]), max(old[1], r[1]),
                                                     min(old[2], r[2]), min(old[3], r[3]))
        for kind, r in rates.items():
            print(f"  {kind:10} produce {r[0]:7.1f} MB/s   consume {r[1]:7.1f} MB/s   "
                  f"server CPU s/GB: produce {r[2]:5.2f}, consume {r[3]:5.2f}")
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
