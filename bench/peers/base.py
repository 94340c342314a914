"""What every system in ``bench/compare.py`` implements, and the helpers they share.

A peer is measured in *sessions*: ``open(tmp)`` starts its server (if it has one) on a free
loopback port with its data under ``tmp``, then ``produce``/``consume``/``latency`` run, then
``close()`` stops the server. One fresh session per workload and run, so no workload sees the
previous one's data, memory or background work (AOF rewrites, compactions, checkpoints).

Each call returns plain numbers (seconds, counts); the harness turns them into rates and adds
the server's CPU share, so every system is measured by the same arithmetic.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import time
from typing import Any

__all__ = ["Peer", "Skip", "ServerProc", "free_port", "keyed", "stamp", "unstamp",
           "latency_stats", "Pacer", "KEYS", "proc_cpu", "proc_rss_mb", "RssSampler"]

KEYS = 1000  # distinct keys in every workload (the 1,000 keys)
_STAMP = struct.Struct(">q")


class Skip(Exception):
    """The system cannot run here (server binary or client package missing)."""


class Peer:
    """One system under test. Subclasses set the class attributes and override the calls.

    ``durability`` is printed beside the numbers: a throughput figure means nothing without
    what an acknowledged write survives.
    """

    name = "?"
    durability = "?"
    partitions = 8  # 1 where the system has no partitions
    has_latency = True

    def check(self) -> None:
        """Raise :class:`Skip` if a binary or package is missing (cheap, before any run)."""

    def open(self, tmp: str) -> None:
        """Start a fresh server / store whose data lives under ``tmp``."""

    def close(self) -> None:
        """Stop what ``open`` started; must be safe to call after a failed ``open``."""

    def server_pid(self) -> int | None:
        """The server process, for CPU share and RSS (None: everything runs in-process)."""
        return None

    def produce(self, n: int, size: int) -> dict[str, Any]:
        """Write ``n`` records of ``size`` B (keys ``key-0``..``key-999``): ``{"seconds"}``."""
        raise NotImplementedError

    def consume(self, n: int, size: int) -> dict[str, Any]:
        """Read back the ``n`` records just produced, from the beginning: ``{"seconds"}``."""
        raise NotImplementedError

    def latency(self, rate: int, seconds: float, size: int) -> dict[str, Any]:
        """Send at ``rate`` records/s for ``seconds`` while a consumer reads them.

        Returns :func:`latency_stats` of send -> receipt, in milliseconds.
        """
        raise NotImplementedError


# --------------------------------------------------------------------------- machine
def cpu_model() -> str:
    """The CPU's model name (printed beside every table: numbers mean little without it)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only backend, or None (with a line saying so)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install matplotlib): no chart")
        return None
    return plt


# --------------------------------------------------------------------------- servers
def free_port() -> int:
    """A free loopback port (the server binds it a moment later; fine on a quiet machine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProc:
    """A foreign server (redis-server, nats-server) started on loopback and always stopped.

    Output goes to a log file under the session's temp dir, so a server that fails to start
    can say why in the Skip message.
    """

    def __init__(self, argv: list[str], port: int, log_path: str) -> None:
        self.port = port
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self._wait_listening()

    def _wait_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                with open(self.log_path, errors="replace") as f:
                    tail = f.read()[-500:]
                raise Skip(f"server exited with code {self.proc.returncode}: {tail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)  # waiting for a foreign process to bind; nothing to wake us
        self.stop()
        raise Skip("server did not start listening within 20 s")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# --------------------------------------------------------------------------- workload
def keyed(n: int, size: int) -> list[tuple[bytes, bytes]]:
    """The workload's records: 1,000 keys round robin, one shared value object (no copies)."""
    value = b"x" * size
    keys = [b"key-%d" % i for i in range(KEYS)]
    return [(keys[i % KEYS], value) for i in range(n)]


def stamp(t_ns: int, size: int) -> bytes:
    """A ``size``-byte value whose first 8 bytes are a CLOCK_MONOTONIC time in ns.

    CLOCK_MONOTONIC is system-wide on Linux, so producer and consumer may be different
    threads or processes.
    """
    return _STAMP.pack(t_ns) + b"x" * max(0, size - 8)


def unstamp(value: bytes) -> int:
    return _STAMP.unpack_from(value)[0]


class Pacer:
    """Fixed-rate sending without coordinated omission.

    ``due()`` says how many records should have been sent by now; each record is stamped with
    its *scheduled* time (``scheduled(i)``), so a producer that falls behind shows up in the
    latency instead of silently sending later and measuring from then.
    """

    def __init__(self, rate: int, seconds: float) -> None:
        self.rate = rate
        self.total = int(rate * seconds)
        self.t0 = time.monotonic_ns() + 20_000_000  # 20 ms to get the loops going
        self.sent = 0

    def scheduled(self, i: int) -> int:
        return self.t0 + i * 1_000_000_000 // self.rate

    def due(self) -> int:
        now = time.monotonic_ns()
        return min(self.total, max(0, (now - self.t0) * self.rate // 1_000_000_000 + 1))

    def pause(self) -> float:
        """Seconds until the next record is due (sleep this long, at most 1 ms)."""
        nxt = self.scheduled(self.sent) - time.monotonic_ns()
        return min(0.001, max(0.0, nxt / 1e9))

    def done(self) -> bool:
        return self.sent >= self.total


def latency_stats(lat_ns: list[int], expected: int, seconds: float) -> dict[str, Any]:
    """p50/p99/p999/max in ms of send -> receipt, and how many arrived."""
    if not lat_ns:
        return {"received": 0, "expected": expected, "p50_ms": float("nan"),
                "p99_ms": float("nan"), "p999_ms": float("nan"), "max_ms": float("nan")}
    s = sorted(lat_ns)

    def q(f: float) -> float:
        return s[min(len(s) - 1, int(f * len(s)))] / 1e6

    return {"received": len(s), "expected": expected, "rate": expected / seconds,
            "p50_ms": q(0.5), "p99_ms": q(0.99), "p999_ms": q(0.999), "max_ms": s[-1] / 1e6}


# --------------------------------------------------------------------------- /proc
_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc (Linux; no psutil needed)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def proc_rss_mb(pid: int) -> float:
    """Resident set size in MB, from /proc/PID/status."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class RssSampler:
    """Peak RSS of a process over a phase, sampled every 100 ms on a daemon thread."""

    def __init__(self, pid: int) -> None:
        import threading

        self.pid = pid
        self.peak = proc_rss_mb(pid)
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, proc_rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._th.join()
        return max(self.peak, proc_rss_mb(self.pid))
