"""A seeded wire fuzzer for ``logmq serve``: mutated frames of every advertised API and version.

For each case it takes a valid request (built from the message schemas, one per API and
version the server advertises), mutates it (bit flips, interesting integers over length
fields, truncation, insertion, duplication, a wrong size prefix, or record-level damage inside
a produced batch with its CRC recomputed so the validator, not the CRC, has to catch it; or,
for 30% of cases, a well-encoded body with odd values: NUL and newline names, extreme
integers, empty or repeated arrays, batches of odd shapes, so the handlers are reached),
sends it on one of several connections and reads the answer with a short timeout.

While it runs, a well-behaved client produces and fetches on its own topic and its round trip
latency is recorded, and the server's RSS is sampled. At the end the server must still be
alive, stop on SIGTERM within a bound, and ``logmq verify`` must pass on its data directory
(so nothing a malformed request carried was appended: every stored batch walks record by
record). Deterministic for a seed up to the timing of responses.

    python tools/fuzz_wire.py --cases 1000000 --seed 1 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from logmq.codec.batch import CRC_START, HEADER_SIZE, crc32c  # noqa: E402
from logmq.codec.records import encode_batch  # noqa: E402
from logmq.protocol import SUPPORTED_VERSIONS, decode_response, encode_request  # noqa: E402
from logmq.protocol._schemas import SCHEMAS  # noqa: E402
from logmq.protocol.codec import API_NAMES  # noqa: E402

__all__ = ["corpus", "Mutator", "FuzzReport", "run_against", "start_server", "main"]

_INTERESTING32 = (-1, 0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, -0x80000000,
                  1 << 20, 1 << 24, -2)
_INTERESTING8 = (0, 1, 0x7F, 0x80, 0xFF, 0xFE)
#: Topic the well-behaved client owns (the corpus only names "fz" topics and group "fzg").
WB_TOPIC = "wellbehaved"


# ---------------------------------------------------------------------- corpus
def _int_value(name: str) -> int:
    table = {"max_wait_ms": 20, "min_bytes": 1, "max_bytes": 1 << 16,
             "partition_max_bytes": 1 << 16, "acks": -1, "num_partitions": 1,
             "replication_factor": 1, "session_timeout_ms": 6000,
             "rebalance_timeout_ms": 50, "generation_id": -1, "timestamp": -1,
             "replica_id": -1, "timeout_ms": 50, "session_epoch": -1, "offset": 0,
             "committed_offset": 1, "retention_time_ms": -1, "key_type": 0,
             "current_leader_epoch": -1, "leader_epoch": -1, "log_start_offset": -1,
             "max_num_offsets": 1, "resource_type": 2, "producer_id": -1,
             "producer_epoch": -1, "transaction_timeout_ms": 60000}
    return table.get(name, 0)


def _str_value(name: str, nullable: bool) -> str | None:
    if name in ("name", "topic", "topic_name", "resource_name", "topic_names"):
        return "fz"
    if name in ("group_id", "key", "groups", "coordinator_keys"):
        return "fzg"
    if name == "protocol_type":
        return "consumer"
    if name in ("member_id", "rack_id", "client_software_name", "client_software_version"):
        return "" if not name.startswith("client") else "fuzz"
    if nullable:
        return None
    return "x"


def _value(name: str, ftype: str, sub: list | None, v: int, nullable: bool) -> Any:
    if ftype.startswith("[]"):
        et = ftype[2:]
        if et == "struct":
            return [_struct(sub or [], v)]
        return [_value(name, et, None, v, False)]
    if ftype == "struct":
        return _struct(sub or [], v)
    if ftype in ("int8", "int16", "int32", "int64", "uint16", "uint32"):
        return _int_value(name)
    if ftype == "float64":
        return 0.0
    if ftype == "bool":
        return name in ("allow_auto_topic_creation", "include_synonyms")
    if ftype == "string":
        return _str_value(name, nullable)
    if ftype == "records":
        return encode_batch([(b"k%d" % i, b"fuzz-value-%d" % i) for i in range(3)],
                            timestamp=int(time.time() * 1000))
    if ftype == "bytes":
        return b""
    if ftype == "uuid":
        return b"\x00" * 16
    raise ValueError(ftype)


def _struct(fields: list, v: int) -> dict:
    out: dict[str, Any] = {}
    for name, ftype, versions, nullable_v, tag, _tv, _default, sub in fields:
        if tag is not None or versions is None or not versions[0] <= v <= versions[1]:
            continue
        nullable = nullable_v is not None and nullable_v[0] <= v <= nullable_v[1]
        out[name] = _value(name, ftype, sub, v, nullable)
    return out


def bodies() -> list[tuple[int, int, dict]]:
    """One valid request body per advertised API and version."""
    out = []
    for api, (lo, hi) in sorted(SUPPORTED_VERSIONS.items()):
        schema: dict[str, Any] = SCHEMAS[API_NAMES[api] + "Request"]  # type: ignore[assignment]
        for v in range(lo, hi + 1):
            out.append((api, v, _struct(schema["fields"], v)))
    return out


def corpus() -> list[tuple[int, int, bytes]]:
    """One valid request frame (size prefix included) per advertised API and version."""
    return [(api, v, encode_request(api, v, 1, "fuzz", body)) for api, v, body in bodies()]


_STRINGS = ("", "\x00", "fz\n", "a\x00b", "x" * 300, "fz", "fzg", ".", "..", "__consumer_offsets",
            "\u00e9\u4e2d", "fz/../../etc", "g" * 249, "-1")
_INTS = (-1, 0, 1, 2, -2, 127, 128, 0x7FFF, -0x8000, 0x7FFFFFFF, -0x80000000, 1 << 20,
         (1 << 63) - 1, -(1 << 63), 100_000)


def _leaves(node: Any, path: tuple = ()) -> list[tuple]:
    out = [path] if path else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _leaves(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _leaves(v, path + (i,))
    return out


def _semantic(rng: random.Random, body: dict) -> dict:
    """A well-encoded body with one value made odd (reaches handlers, not just the decoder)."""
    body = copy.deepcopy(body)
    for _ in range(rng.choice((1, 1, 2, 3))):
        paths = _leaves(body)
        if not paths:
            return body
        path = rng.choice(paths)
        parent: Any = body
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        old = parent[key]
        if isinstance(old, bool):
            new: Any = not old
        elif isinstance(old, int):
            new = rng.choice(_INTS)
        elif isinstance(old, str) or old is None and rng.random() < 0.5:
            new = rng.choice(_STRINGS)
        elif isinstance(old, bytes) and old[:1] != b"" and len(old) > 61:
            new = _odd_batch(rng)
        elif isinstance(old, bytes):
            new = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        elif isinstance(old, list):
            new = [] if rng.random() < 0.3 or not old else old * rng.choice((2, 3, 50))
        else:
            new = None
        parent[key] = new
    return body


def _odd_batch(rng: random.Random) -> bytes:
    """Valid-looking batches of odd shapes: codecs, null keys, far timestamps, producer ids."""
    n = rng.randrange(1, 30)
    now = int(time.time() * 1000)
    ts = rng.choice((now, now - 10**12, now + 10**10, -1, 0))
    recs = [(rng.choice((None, b"k%d" % i)), rng.choice((None, b"", b"v" * rng.randrange(500))),
             [("h", rng.choice((None, b"x")))] * rng.randrange(3)) for i in range(n)]
    try:
        return encode_batch(recs, timestamp=ts, compression=rng.choice(
            ("none", "gzip", "snappy", "lz4", "zstd")), producer_id=rng.choice((-1, 0, 5)),
            producer_epoch=rng.choice((-1, 0)), base_sequence=rng.choice((-1, 0, 7)))
    except Exception:  # noqa: BLE001 (an encoder refusal: fall back to a plain batch)
        return encode_batch([(b"k", b"v")], timestamp=now)


# ---------------------------------------------------------------------- mutations
class Mutator:
    """Deterministic mutations of corpus frames: case ``i`` of seed ``s`` is always the same."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.bodies = bodies()
        self.frames = corpus()

    def case(self, i: int) -> tuple[int, bytes]:
        rng = random.Random(self.seed * 1_000_003 + i)
        k = rng.randrange(len(self.frames))
        api, v, frame = self.frames[k]
        if rng.random() < 0.3:
            try:
                odd = encode_request(api, v, rng.randrange(1 << 31), "fuzz",
                                     _semantic(rng, self.bodies[k][2]))
                return api, odd
            except Exception:  # noqa: BLE001 (a value the encoder cannot write: mutate bytes)
                pass
        body = bytearray(frame[4:])
        if api == 0 and rng.random() < 0.4:
            self._mutate_batch(rng, body)
        else:
            for _ in range(rng.choice((1, 1, 1, 2, 3, 5))):
                self._mutate(rng, body)
        size = len(body)
        if rng.random() < 0.03:
            size = rng.choice((0, 1, 7, size + 1, size - 1, 0x7FFFFFFF, -1, size * 2))
        return api, struct.pack(">i", size) + bytes(body)

    @staticmethod
    def _mutate(rng: random.Random, b: bytearray) -> None:
        op = rng.randrange(9)
        n = len(b)
        if n == 0:
            b += bytes(rng.randrange(256) for _ in range(8))
            return
        p = rng.randrange(n)
        if op == 0:
            b[p] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[p] = rng.choice(_INTERESTING8)
        elif op in (2, 3) and n >= 4:
            p = rng.randrange(n - 3)
            val = rng.choice(_INTERESTING32)
            if op == 2:
                struct.pack_into(">i", b, p, val if -2**31 <= val < 2**31 else -1)
            else:
                struct.pack_into(">h", b, p, max(-32768, min(32767, val)))
        elif op == 4 and n > 1:
            del b[rng.randrange(n // 2, n):]
        elif op == 5:
            b[p:p] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 32)))
        elif op == 6:
            del b[p:p + rng.randrange(1, 16)]
        elif op == 7:
            q = rng.randrange(n)
            b[p:p] = b[q:q + rng.randrange(1, 64)]
        else:
            b[p] = rng.randrange(256)

    def _mutate_batch(self, rng: random.Random, b: bytearray) -> None:
        """Damage inside the produced batch, then make its CRC right again."""
        at = b.find(b"\x02", 0)
        while at >= 0 and not (at >= 16 and len(b) - (at - 16) >= HEADER_SIZE):
            at = b.find(b"\x02", at + 1)
        if at < 0:
            self._mutate(rng, b)
            return
        start = at - 16
        end = start + 12 + struct.unpack_from(">i", b, start + 8)[0]
        batch = bytearray(b[start:end])
        for _ in range(rng.choice((1, 1, 2, 3))):
            self._mutate(rng, batch)
        if len(batch) >= HEADER_SIZE:
            struct.pack_into(">i", batch, 8, len(batch) - 12)
            struct.pack_into(">I", batch, 17, crc32c(bytes(batch[CRC_START:])))
        b[start:end] = batch
        # the records field's int32 length sits right before the batch
        if start >= 4:
            struct.pack_into(">i", b, start - 4, len(batch))


# ---------------------------------------------------------------------- the campaign
@dataclass
class FuzzReport:
    cases: int = 0
    seconds: float = 0.0
    outcomes: Counter = field(default_factory=Counter)
    wrong_correlation: int = 0
    wb_rounds: int = 0
    wb_errors: list = field(default_factory=list)
    wb_latency_ms: list = field(default_factory=list)
    rss_mb: list = field(default_factory=list)
    stalled: bool = False

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.wb_latency_ms) or [0.0]
        return {
            "cases": self.cases, "stalled": self.stalled, "seconds": round(self.seconds, 1),
            "cases_per_s": round(self.cases / max(self.seconds, 1e-9)),
            "outcomes": dict(self.outcomes), "wrong_correlation": self.wrong_correlation,
            "wellbehaved_rounds": self.wb_rounds, "wellbehaved_errors": self.wb_errors[:5],
            "wellbehaved_ms_p50": round(lat[len(lat) // 2], 1),
            "wellbehaved_ms_p99": round(lat[int(len(lat) * 0.99)], 1),
            "wellbehaved_ms_max": round(lat[-1], 1),
            "rss_mb_start": self.rss_mb[0] if self.rss_mb else None,
            "rss_mb_max": max(self.rss_mb) if self.rss_mb else None,
            "rss_mb_end": self.rss_mb[-1] if self.rss_mb else None,
        }


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    size = struct.unpack(">i", await reader.readexactly(4))[0]
    return await reader.readexactly(size)


async def _worker(host: str, port: int, mut: Mutator, cases: Any, rep: FuzzReport,
                  timeout: float, stop_at: float, halt: threading.Event) -> None:
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    for i in cases:
        if time.monotonic() > stop_at or halt.is_set():
            _drop(conn)
            return
        _api, frame = mut.case(i)
        corr = struct.unpack_from(">i", frame, 8)[0] if len(frame) >= 12 else None
        try:
            if conn is None:
                async with asyncio.timeout(5):  # a context, not wait_for's task per call
                    conn = await asyncio.open_connection(host, port)
            reader, writer = conn
            writer.write(frame)
            async with asyncio.timeout(timeout):
                await writer.drain()
                resp = await _read_frame(reader)
            rep.outcomes["answered"] += 1
            if corr is not None and len(resp) >= 4 and struct.unpack_from(">i", resp)[0] != corr:
                rep.wrong_correlation += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            rep.outcomes["closed"] += 1
            _drop(conn)
            conn = None
        except TimeoutError:
            rep.outcomes["no_answer"] += 1  # acks=0, long polls, a wrong size prefix
            _drop(conn)
            conn = None
        rep.cases += 1
    _drop(conn)


def _drop(conn: Any) -> None:
    if conn is not None:
        conn[1].transport.abort()


def _wellbehaved(host: str, port: int, rep: FuzzReport, stop: threading.Event) -> None:
    """Produce one record and fetch it back, over and over, timing each round trip."""
    import socket

    seq = 0
    sock: socket.socket | None = None
    corr = 0

    def call(api: int, v: int, body: dict) -> dict:
        nonlocal corr
        corr += 1
        assert sock is not None
        sock.sendall(encode_request(api, v, corr, "wb", body))
        hdr = _recv(sock, 4)
        c, resp = decode_response(api, v, _recv(sock, struct.unpack(">i", hdr)[0]))
        assert c == corr
        return resp

    while not stop.is_set():
        t0 = time.monotonic()
        try:
            if sock is None:
                sock = socket.create_connection((host, port), timeout=10)
                call(19, 4, {"topics": [{"name": WB_TOPIC, "num_partitions": 1,
                                         "replication_factor": 1}], "timeout_ms": 5000})
            batch = encode_batch([(b"wb", b"%d" % seq)], timestamp=int(time.time() * 1000))
            pr = call(0, 8, {"acks": -1, "timeout_ms": 5000, "topic_data": [
                {"name": WB_TOPIC, "partition_data": [{"index": 0, "records": batch}]}]})
            p = pr["responses"][0]["partition_responses"][0]
            if p["error_code"] != 0 or p["base_offset"] != seq:
                rep.wb_errors.append(("produce", seq, p["error_code"], p["base_offset"]))
            fr = call(1, 11, {"max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                              "session_epoch": -1, "topics": [{"topic": WB_TOPIC, "partitions": [
                                  {"partition": 0, "fetch_offset": seq,
                                   "partition_max_bytes": 1 << 20}]}]})
            recs = fr["responses"][0]["partitions"][0]["records"]
            if not recs:
                rep.wb_errors.append(("fetch", seq))
            seq += 1
        except Exception as e:  # noqa: BLE001 (any failure of the good client is a finding)
            rep.wb_errors.append(("exception", seq, repr(e)))
            if sock is not None:
                sock.close()
            sock = None
        rep.wb_latency_ms.append((time.monotonic() - t0) * 1000)
        rep.wb_rounds += 1
        stop.wait(0.05)
    if sock is not None:
        sock.close()


def _recv(sock: Any, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)


def _cpu_s(pid: int) -> float | None:
    """CPU seconds ``pid`` used so far (at nice 19 on a busy machine wall time says little)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, IndexError, ValueError):
        return None


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def run_against(host: str, port: int, pid: int | None, *, cases: int, seed: int,
                concurrency: int = 16, timeout: float = 0.25,
                max_seconds: float = 1e9, stall_s: float = 60.0) -> FuzzReport:
    """Fuzz a running server; ``pid`` (if local) is sampled for RSS.

    No case finishing for ``stall_s`` seconds ends the run as ``stalled`` (a frozen server:
    two deadlocks were found so), after asking a local server for its threads' stacks.
    """
    rep = FuzzReport()
    mut = Mutator(seed)
    stop = threading.Event()
    halt = threading.Event()  # set on a stall: the workers end
    wb = threading.Thread(target=_wellbehaved, args=(host, port, rep, stop), daemon=True)
    wb.start()

    def sample() -> None:
        last, since = -1, time.monotonic()
        while not stop.is_set():
            if pid is not None:
                r = _rss_mb(pid)
                if r is not None:
                    rep.rss_mb.append(r)
            if rep.cases != last:
                last, since = rep.cases, time.monotonic()
            elif time.monotonic() - since > stall_s:  # no case finished: the server froze
                rep.stalled = True
                if pid is not None:  # logmq serve writes every thread's stack to its log
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGUSR1)
                halt.set()
                return
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.monotonic()

    async def main() -> None:
        it = iter(range(cases))
        await asyncio.gather(*(_worker(host, port, mut, it, rep, timeout, t0 + max_seconds,
                                       halt) for _ in range(concurrency)))

    try:
        asyncio.run(main())
    finally:
        rep.seconds = time.monotonic() - t0
        stop.set()
        wb.join(30)
        sampler.join(5)
    return rep


def start_server(data: str, *limits: str) -> tuple[subprocess.Popen, str, int]:
    """``logmq serve`` on a free port; returns (process, host, port).

    Its log goes to ``server_log(data)``; :func:`server_errors` reads the ERROR lines back.
    """
    ready = os.path.join(tempfile.mkdtemp(prefix="fuzz-ready-"), "ready")
    args = [sys.executable, "-m", "logmq.cli", "serve", "--data", data, "--listen",
            "127.0.0.1:0", "--ready-file", ready]
    for lim in limits:
        args += ["--limit", lim]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    os.makedirs(os.path.dirname(os.path.abspath(data)), exist_ok=True)
    logf = open(server_log(data), "w")  # noqa: SIM115 (the child owns it)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=logf, env=env)
    logf.close()
    deadline = time.monotonic() + 60
    while not os.path.exists(ready):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("server did not start")
        time.sleep(0.05)
    host, port = open(ready).read().strip().rsplit(":", 1)
    return proc, host, int(port)


def server_log(data: str) -> str:
    return os.path.abspath(data).rstrip("/") + ".server.log"


def server_errors(data: str) -> list[str]:
    """ERROR lines (handler exceptions: bugs), tracebacks and refused connections (leaks)."""
    try:
        with open(server_log(data)) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    # the fuzzer never holds more than --concurrency + 1 connections, so a refused one means
    # the server kept connections its clients had closed
    return [ln for ln in lines if " ERROR " in ln or ln.startswith("Traceback")
            or "refusing connection" in ln
            or (ln and not ln[0].isdigit() and not ln.startswith(" "))]


#: Limits the campaign server runs with: partitions per CreateTopics kept small so mutated
#: partition counts cannot exhaust file descriptors (each partition holds its files open).
FUZZ_LIMITS = ("max_partitions_per_create=16",)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=0.25, help="seconds to wait per answer")
    ap.add_argument("--max-seconds", type=float, default=1e9)
    ap.add_argument("--data", default=None, help="data directory (default: a temp dir)")
    ap.add_argument("--connect", default=None, help="HOST:PORT of a running server instead")
    args = ap.parse_args(argv)
    if args.connect:
        host, port = args.connect.rsplit(":", 1)
        rep = run_against(host, int(port), None, cases=args.cases, seed=args.seed,
                          concurrency=args.concurrency, timeout=args.timeout,
                          max_seconds=args.max_seconds)
        print(json.dumps(rep.summary(), indent=2))
        return 0
    data = args.data or os.path.join(tempfile.mkdtemp(prefix="fuzz-"), "data")
    proc, host, port = start_server(data, *FUZZ_LIMITS)
    try:
        from fuzz_long_names import long_string_frames, send_frames  # imports this module
        long_frames = long_string_frames()
        long_closed = send_frames(host, port, long_frames)
        rep = run_against(host, port, proc.pid, cases=args.cases, seed=args.seed,
                          concurrency=args.concurrency, timeout=args.timeout,
                          max_seconds=args.max_seconds)
        alive = proc.poll() is None
        cpu0 = _cpu_s(proc.pid)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc: int | None
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            rc = None  # a finding: reported below, the server killed by the finally
        stop_s = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    verify = subprocess.run([sys.executable, "-m", "logmq.cli", "verify", "--data", data, "-q"],
                            capture_output=True, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    errors = server_errors(data)
    out = rep.summary() | {"long_name_frames": len(long_frames),
                           "long_name_frames_closed": long_closed,
                           "server_errors": len(errors), "server_error_lines": errors[:10],
                           "alive_at_end": alive, "sigterm_exit": rc,
                           "sigterm_seconds": round(stop_s, 2),
                           "server_cpu_s_before_sigterm": cpu0,
                           "verify_exit": verify.returncode,
                           "verify_tail": verify.stdout.strip().splitlines()[-3:]}
    print(json.dumps(out, indent=2))
    ok = alive and rc == 0 and verify.returncode == 0 and not rep.wb_errors and not errors \
        and not rep.stalled
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
