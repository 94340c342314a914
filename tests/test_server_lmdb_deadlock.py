"""Opening a named LMDB db while another thread is inside a write transaction must not
freeze the process (found by the wire fuzzer: the server stopped accepting connections and
ignored SIGTERM; see logmq.storage.meta.SafeEnv). Run in a subprocess, bounded in time."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SCRIPT = r"""
import sys, threading
from logmq.storage.meta import MetaStore

env = MetaStore(sys.argv[1]).env
inside = threading.Event()
opening = threading.Event()
done = []

def writer():
    with env.begin(write=True) as txn:
        inside.set()
        opening.wait(10)  # returns as soon as the opener is about to call open_db
        for i in range(100_000):  # Python work inside the transaction: needs the GIL
            pass
        txn.put(b"k", b"v")
    done.append("writer")

t = threading.Thread(target=writer)
t.start()
inside.wait(10)
opening.set()
env.open_db(b"late_db")  # old py-lmdb path: waits for the writer mutex holding the GIL
done.append("opener")
t.join()
print(sorted(done))
"""


def test_open_db_while_another_thread_writes_does_not_deadlock(tmp_path):
    for _ in range(3):  # each round would freeze on the old code almost always
        path = str(tmp_path / f"meta{_}")
        r = subprocess.run([sys.executable, "-c", _SCRIPT, path], capture_output=True,
                           text=True, timeout=30, cwd=ROOT,
                           env=dict(os.environ, PYTHONPATH=ROOT))
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "['opener', 'writer']"
