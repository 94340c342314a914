"""The produce validator's cost on the whole server path: ``logmq serve`` with it and without.

``bench/validator_cost.py`` times the validator and the produce handler in-process; this
measures what a client sees and what the server spends: a confluent-kafka producer sends
the same records to ``logmq serve`` run twice, once as shipped (the full validator of
``logmq.codec.validate``) and once with ``validate_produce`` swapped, in that server process
only, for the CRC-only check the server did before it existed (``iter_batches`` with
``validate=True``). Rounds alternate between the two, so load on the machine hits both alike.
Reported per variant: records/s (wall, client's view) and the server process's CPU time per
record (user + system, from /proc), the steadier figure on a shared machine.

    python bench/server_validation_cost.py [--records 1000000] [--rounds 2] [--compression none]

The swap is a benchmark device, not a setting: a server always validates.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

#: run in the server process for the "crc-only" variant, before logmq.cli starts
_CRC_ONLY = (
    "import logmq.server.handlers as h\n"
    "from logmq.codec.batch import iter_batches\n"
    "h.validate_produce = lambda data, policy: (data, iter_batches(data, validate=True))\n"
)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Server:
    def __init__(self, data: str, crc_only: bool) -> None:
        code = (_CRC_ONLY if crc_only else "") + (
            "import sys\nfrom logmq.cli import main\n"
            f"sys.argv = ['logmq', 'serve', '--data', {data!r}, '--listen', '127.0.0.1:0']\n"
            "main()\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     text=True)
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            m = re.search(r"listening on ([\d.]+):(\d+)", line)
            if m:
                self.bootstrap = f"{m.group(1)}:{m.group(2)}"
                break
        else:
            raise RuntimeError("logmq serve exited before listening")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr or ()],
                         daemon=True).start()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def _round(crc_only: bool, records: int, compression: str) -> tuple[float, float]:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    with tempfile.TemporaryDirectory(prefix="vsrv-") as tmp:
        srv = _Server(os.path.join(tmp, "data"), crc_only)
        try:
            admin = AdminClient({"bootstrap.servers": srv.bootstrap})
            for f in admin.create_topics([NewTopic("t", 8, 1)]).values():
                f.result(30)
            p = Producer({"bootstrap.servers": srv.bootstrap, "linger.ms": 5,
                          "compression.type": compression, "acks": 1,
                          "queue.buffering.max.messages": 1_000_000})
            value = b"v" * 100
            keys = [b"key-%d" % i for i in range(1000)]
            for i in range(20_000):  # warm up: connections, metadata, first segments
                p.produce("t", value, keys[i % 1000])
            p.flush(60)
            cpu0, t0 = _cpu_seconds(srv.proc.pid), time.perf_counter()
            for i in range(records):
                while True:
                    try:
                        p.produce("t", value, keys[i % 1000])
                        break
                    except BufferError:
                        p.poll(0.01)
            p.flush(120)
            wall = time.perf_counter() - t0
            cpu = _cpu_seconds(srv.proc.pid) - cpu0
            del p  # the client goes before its server (no reconnect noise)
            return records / wall, cpu / records * 1e6
        finally:
            srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--compression", default="none", help="none, gzip, lz4, zstd, snappy")
    args = ap.parse_args()
    best: dict[bool, tuple[float, float]] = {}
    for r in range(args.rounds):
        for crc_only in (False, True) if r % 2 == 0 else (True, False):
            rate, us = _round(crc_only, args.records, args.compression)
            name = "crc-only" if crc_only else "validator"
            print(f"round {r + 1} {name:9}: {rate:12,.0f} rec/s  server {us:6.3f} CPU-us/rec",
                  flush=True)
            old = best.get(crc_only)
            best[crc_only] = (max(rate, old[0]) if old else rate,
                              min(us, old[1]) if old else us)
    (on_rate, on_us), (off_rate, off_us) = best[False], best[True]
    print(f"\n{args.records:,} x 100 B, 8 partitions, compression={args.compression}, "
          f"best of {args.rounds}")
    print(f"server CPU per record: validator {on_us:.3f} us, crc-only {off_us:.3f} us "
          f"({on_us / off_us - 1:+.1%}); rec/s: {on_rate:,.0f} vs {off_rate:,.0f} "
          f"({on_rate / off_rate - 1:+.1%})")


if __name__ == "__main__":
    main()
