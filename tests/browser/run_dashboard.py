"""The dashboard in a real browser: a server with --http, a producer, a lagging group and a
share group; then ``node dashboard.mjs`` loads the page in chromium (``.ci/step-browser.sh``).

Exits with the browser script's code; the screenshot lands in ``$ARTIFACTS/browser/``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def main() -> int:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka import TopicPartition as CTP

    import logmq

    artifacts = os.environ.get("ARTIFACTS", os.path.join(ROOT, "artifacts"))
    shot = os.path.join(artifacts, "browser", "dashboard.png")
    data = tempfile.mkdtemp(prefix="logmq-browser-")
    proc = subprocess.Popen(
        [sys.executable, "-m", "logmq.cli", "serve", "--data", data, "--listen", "127.0.0.1:0",
         "--http", "127.0.0.1:0", "--queue-listen", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        assert proc.stderr is not None
        http = kafka = queue = None
        for line in proc.stderr:
            sys.stderr.write(line)
            if m := re.search(r"on http://([\d.]+:\d+)/", line):
                http = m.group(1)
            if m := re.search(r"RemoteQueue\) at ([\d.]+):(\d+)", line):
                queue = (m.group(1), int(m.group(2)))
            if m := re.search(r"listening on ([\d.]+:\d+)", line):
                kafka = m.group(1)
                break
        assert http and kafka and queue, "server did not start"
        threading.Thread(target=proc.stderr.read, daemon=True).start()

        p = Producer({"bootstrap.servers": kafka, "linger.ms": 5})
        for i in range(40):
            p.produce("jobs", value=b"job %d" % i)
        p.flush(30)

        def produce() -> None:  # ~1000 records/s for at most 90 s
            deadline = time.monotonic() + 90
            while not stop.is_set() and time.monotonic() < deadline:
                for _ in range(50):
                    p.produce("orders", value=b"x" * 200)
                p.poll(0)
                stop.wait(0.05)
            p.flush(10)

        def consume() -> None:  # group "billing" commits half of what it reads: lag grows
            c = Consumer({"bootstrap.servers": kafka, "group.id": "billing",
                          "auto.offset.reset": "earliest", "enable.auto.commit": False})
            c.subscribe(["orders"])
            deadline = time.monotonic() + 90
            while not stop.is_set() and time.monotonic() < deadline:
                msg = c.poll(0.2)
                if msg is not None and msg.error() is None and msg.offset() % 100 == 0:
                    c.commit(offsets=[CTP("orders", msg.partition(), msg.offset() // 2)],
                             asynchronous=False)
            c.close()

        for fn in (produce, consume):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            threads.append(t)
        with open(os.path.join(data, "queue.authkey")) as f:
            key = bytes.fromhex(f.read().strip())
        q = logmq.RemoteQueue(queue, "jobs", group="workers", authkey=key)
        held = q.receive(5, timeout=10)  # in flight while the page looks
        r = subprocess.run(["node", os.path.join(HERE, "dashboard.mjs"), f"http://{http}/",
                            shot], cwd=HERE, timeout=300)
        for rec in held:
            rec.ack()
        q.close()
        return r.returncode
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
