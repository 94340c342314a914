"""/healthz and /readyz across a server's life: 503 while recovery runs, 200 once serving."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading

from ops_util import get_json, wait_for

import logmq
from logmq.ops.http import OpsHttpServer

# Runs `logmq serve` with recovery held until a file exists: the test decides when recovery
# ends, so "during recovery" is a state it can observe, not a race it hopes to win.
HOLD_RECOVERY = r"""
import os, sys, time
import logmq.storage.log as L
release = sys.argv.pop(1)
_recover = L.PartitionLog._recover
def held(self):
    deadline = time.monotonic() + 60
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.01)
    _recover(self)
L.PartitionLog._recover = held
from logmq.cli import main
sys.argv[0] = "logmq"
main()
"""


def _unclean_dir(path: str) -> None:
    with logmq.open(path) as log:
        log.create_topic("big", partitions=3)
        with log.producer() as p:
            for i in range(3000):
                p.send("big", b"x" * 100, partition=i % 3)
    os.unlink(os.path.join(path, ".clean_shutdown"))  # as if the process had been killed


def test_readyz_is_503_while_recovering_then_200(tmp_path):
    data = str(tmp_path / "data")
    _unclean_dir(data)
    release = str(tmp_path / "release")
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_RECOVERY, release, "serve", "--data", data,
         "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        addr = None
        for line in proc.stderr:
            m = re.search(r"on http://([\d.]+:\d+)/", line)
            if m:
                addr = m.group(1)
                break
        assert addr, "the http listener never started"
        threading.Thread(target=proc.stderr.read, daemon=True).start()

        status, body = get_json(addr, "/readyz")
        assert status == 503 and body["phase"] == "recovering"
        assert "recovery" in body["reason"]
        status, body = get_json(addr, "/healthz")
        assert status == 200 and body["status"] == "ok"
        status, body = get_json(addr, "/api/v1/topics")
        assert status == 503 and "not ready" in body["error"]

        open(release, "w").close()
        wait_for(lambda: get_json(addr, "/readyz")[0] == 200, 60, "readiness after recovery")
        status, body = get_json(addr, "/readyz")
        assert body == {"status": "ready", "phase": "ready",
                        "reason": "recovery finished, listeners up, disk writable"}
        status, topic = get_json(addr, "/api/v1/topics/big")
        assert status == 200 and [p["end_offset"] for p in topic["partitions"]] == [1000] * 3

        r = subprocess.run([sys.executable, "-m", "logmq.cli", "status", "--http", addr],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "READY" in r.stdout and "NOT READY" not in r.stdout
        assert re.search(r"^big\s+3\s+3000\b", r.stdout, re.M), r.stdout
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_readiness_follows_the_phases_and_healthz_sees_a_stuck_loop(tmp_path):
    ops = OpsHttpServer(("127.0.0.1", 0), str(tmp_path), loop_timeout=0.3).start()
    addr = ops.hostport
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    unblock = threading.Event()
    try:
        assert get_json(addr, "/readyz")[1]["phase"] == "recovering"
        with logmq.open(tmp_path / "d") as log:
            ops.attach_broker(log)
            status, body = get_json(addr, "/readyz")
            assert status == 503 and body["reason"] == "starting listeners"
            ops.serving(None, loop)
            assert get_json(addr, "/readyz")[0] == 200
            assert get_json(addr, "/healthz") == (200, {
                "status": "ok", "reason": "process alive, event loop responsive"})
            loop.call_soon_threadsafe(unblock.wait, 30)  # the loop is now stuck
            status, body = get_json(addr, "/healthz")
            assert status == 503 and "did not answer" in body["reason"]
            unblock.set()
            wait_for(lambda: get_json(addr, "/healthz")[0] == 200, 10, "the loop to answer")
            ops.stopping()
            status, body = get_json(addr, "/readyz")
            assert status == 503 and body["reason"] == "shutting down"
    finally:
        unblock.set()
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        loop.close()
        ops.close()
