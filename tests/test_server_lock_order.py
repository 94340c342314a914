"""Deleting a topic while the queue engine holds its lock and calls into the storage manager
must not deadlock (found by the wire fuzzer: DeleteTopics called the queue engine's
topic-deleted listener under the storage lock while a share group opening held the queue
engine's lock and waited for the storage lock; the event loop's Fetch then waited too).
Run in a subprocess, bounded in time."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SCRIPT = r"""
import sys, threading, time
import logmq

log = logmq.open(sys.argv[1])
log.create_topic("t")
q = log.queues
holding = threading.Event()

def opener():  # what ShareGroup creation does: queue lock, then the storage manager
    with q._lock:
        holding.set()
        deadline = time.monotonic() + 10
        while "t" in log.logs._topics and time.monotonic() < deadline:
            pass  # until delete_topic is under way (it pops the topic first)
        log.logs.add_waiter(("t", 0), lambda: None)

t = threading.Thread(target=opener)
t.start()
holding.wait(10)
log.delete_topic("t")  # storage lock, then the queue engine's listener
t.join()
log.close()
print("ok")
"""


def test_delete_topic_and_share_group_opening_do_not_deadlock(tmp_path):
    r = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / "data")],
                       capture_output=True, text=True, timeout=30, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
