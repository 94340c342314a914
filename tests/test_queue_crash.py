"""Share-group durability with real processes and SIGKILL.

* A remote worker is killed while it holds records: the owner gives them back at once (the
  attempt counts) and the other workers finish the queue; every record is acked exactly once.
* The process that owns the data directory is killed while its worker threads ack: after a
  restart no acknowledged record comes back, every other record does (at-least-once), and
  delivery counts survive.

The processes report through files they append to (each batch is one ``write`` followed by a
flush, so it is in the kernel when the next step starts and survives SIGKILL) and through
stdout lines; the test waits on those, never on a sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter, defaultdict

import logmq
from logmq.broker.queues.remote import QueueServer, RemoteQueue

GROUP_CFG = {"max_attempts": 1000, "backoff_base_ms": 0}  # no dead letters, no backoff


def fill(log, topic: str, n: int, partitions: int) -> None:
    log.create_topic(topic, partitions=partitions)
    log.producer().send_batch(topic, [(b"k%d" % i, b"%d" % i) for i in range(n)])


def read_lines(path: str) -> list[list[str]]:
    """Complete lines of a report file, split into words (a torn last line is ignored)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        data = f.read()
    return [line.split() for line in data.split("\n")[:-1]]


def count_tag(paths: list[str], tag: str) -> int:
    return sum(1 for p in paths for w in read_lines(p) if w and w[0] == tag)


def wait_until(cond, timeout: float, what: str, procs=()) -> None:
    """Poll ``cond`` until true; fail after ``timeout`` s or if a watched process exits."""
    deadline = time.monotonic() + timeout
    while not cond():
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"process exited ({p.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def wait_for_progress(count, target: int, what: str, proc: subprocess.Popen,
                      stderr_path: str, stall_s: float = 30.0) -> None:
    """Poll ``count()`` until it reaches ``target``; fail once it has not grown for
    ``stall_s`` s (a slow machine only slows it; a stall is a finding), with the process's
    stderr and its threads' stacks (SIGUSR1: faulthandler) in the message."""
    last, since = -1, time.monotonic()
    while True:
        n = count()
        if n >= target:
            return
        if n != last:
            last, since = n, time.monotonic()
        problem = None
        if proc.poll() is not None:
            problem = f"process exited ({proc.returncode})"
        elif time.monotonic() - since > stall_s:
            problem = f"no progress for {stall_s:.0f} s"
            os.kill(proc.pid, signal.SIGUSR1)
            t0 = time.monotonic()  # the dump is written by the process: wait for it to appear
            while "most recent call first" not in _read(stderr_path) and time.monotonic() - t0 < 10:
                time.sleep(0.05)
        if problem:
            raise AssertionError(f"{problem} waiting for {what} (at {n}); its stderr:\n"
                                 + _read(stderr_path)[-6000:])
        time.sleep(0.005)


def _read(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read()


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(30)
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


# ---------------------------------------------------------------------------------------------
# 1. a remote worker dies holding records

REMOTE_WORKER = r"""
import random, sys, time
from logmq.broker.queues.remote import RemoteQueue

host, port, key, out, role, seed = sys.argv[1:7]
rng = random.Random(int(seed))
q = RemoteQueue((host, int(port)), "jobs", group="workers", authkey=bytes.fromhex(key),
                lock_ms=600_000, max_attempts=1000, backoff_base_ms=0)
f = open(out, "a")

def note(tag, recs):
    f.write("".join("%s %d %d %d\n" % (tag, r.partition, r.offset, r.delivery_count)
                    for r in recs))
    f.flush()

if role == "victim":
    for _ in range(5):
        recs = q.receive(10, timeout=5)
        q.ack_many(recs)
        note("acked", recs)
    held = q.receive(25, timeout=5)
    note("held", held)
    print("holding", flush=True)
    sys.stdin.read()  # blocks until SIGKILL (the test never closes this pipe first)
    sys.exit(3)

print("ready", flush=True)
sys.stdin.readline()  # "go"
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    recs = q.receive(rng.randint(1, 30), timeout=0.2)
    if recs:
        q.ack_many(recs)
        note("acked", recs)
    elif q.stats().depth == 0:
        break
else:
    sys.exit("queue not drained within 60 s")
q.close()
"""


def test_sigkill_of_a_remote_worker_holding_records(tmp_path, data_dir, python_exe):
    n = 2000
    script = tmp_path / "remote_worker.py"
    script.write_text(REMOTE_WORKER)
    procs: list[subprocess.Popen] = []
    with logmq.open(data_dir) as log:
        fill(log, "jobs", n, partitions=2)
        server = QueueServer(log, ("127.0.0.1", 0)).start()
        host, port = server.address
        try:
            def spawn(role: str, i: int) -> tuple[subprocess.Popen, str]:
                out = str(tmp_path / f"{role}{i}.txt")
                p = subprocess.Popen(
                    [python_exe, str(script), host, str(port), server.authkey.hex(), out, role,
                     str(i)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                procs.append(p)
                return p, out

            share = log.queue("jobs", group="workers", **GROUP_CFG)  # stats; receives nothing
            # a graceful leave, for contrast: the records are back before close() returns
            rq = RemoteQueue(server.address, "jobs", group="workers", authkey=server.authkey,
                             **GROUP_CFG)
            returned = {(r.partition, r.offset) for r in rq.receive(5, timeout=5)}
            assert len(returned) == 5 and share.stats().in_flight == 5
            rq.close()
            s = share.stats()
            assert (s.in_flight, s.members) == (0, 1)

            victim, victim_out = spawn("victim", 0)
            assert victim.stdout.readline() == "holding\n"  # it holds 25 records, unacked
            workers = [spawn("worker", i) for i in (1, 2)]
            for p, _ in workers:
                assert p.stdout.readline() == "ready\n"
            held = {(int(w[1]), int(w[2])) for w in read_lines(victim_out) if w[0] == "held"}
            assert len(held) == 25
            s = share.stats()
            assert s.in_flight == 25 and s.members == 4

            for p, _ in workers:
                p.stdin.write("go\n")
                p.stdin.flush()
            # kill it while the others are busy acking
            outs = [out for _, out in workers]
            wait_until(lambda: count_tag(outs, "acked") >= 300, 30, "300 acks",
                       [p for p, _ in workers])
            os.kill(victim.pid, signal.SIGKILL)
            assert victim.wait(30) == -signal.SIGKILL
            for p, _ in workers:
                p.stdin.close()
                assert p.wait(90) == 0
            s = share.stats()
            assert (s.depth, s.in_flight, s.members) == (0, 0, 1)  # the workers closed
            share.close()
        finally:
            for p in procs:
                kill(p)
            server.close()

    acks: Counter = Counter()
    counts: dict[tuple[int, int], list[int]] = defaultdict(list)
    for out in [victim_out, *outs]:
        for w in read_lines(out):
            if w[0] == "acked":
                key = (int(w[1]), int(w[2]))
                acks[key] += 1
                counts[key].append(int(w[3]))
    assert sum(acks.values()) == n and len(acks) == n  # every record acked, none twice
    victim_acked = {(int(w[1]), int(w[2])) for w in read_lines(victim_out) if w[0] == "acked"}
    assert len(victim_acked) == 50 and not victim_acked & held
    assert returned <= victim_acked  # given back first, so the victim's first batch had them
    for key, cs in counts.items():
        # the held ones were given back when the victim's connection dropped, attempt counted
        assert cs == ([2] if key in held or key in returned else [1]), (key, cs)

    with logmq.open(data_dir) as log:  # the acks were durable in the owner
        q = log.queue("jobs", group="workers", **GROUP_CFG)
        assert q.receive(100, timeout=0.2) == []
        assert q.stats().depth == 0


# ---------------------------------------------------------------------------------------------
# 2. the owner of the data directory dies while its worker threads ack

OWNER = r"""
import faulthandler, os, random, signal, sys, threading
import logmq

faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks when it stalls

data, outdir, seed, n_threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
CFG = dict(lock_ms=600_000, max_attempts=1000, backoff_base_ms=0)
log = logmq.open(data)

def note(f, tag, recs):
    f.write("".join("%s %d %d %d\n" % (tag, r.partition, r.offset, r.delivery_count)
                    for r in recs))
    f.flush()

def worker(i):
    rng = random.Random(seed * 100 + i)
    q = log.queue("jobs", group="w", **CFG)
    f = open(os.path.join(outdir, "w%d.txt" % i), "a")
    while True:
        recs = q.receive(rng.randint(1, 20), timeout=1)
        note(f, "recv", recs)
        back = [r for r in recs if rng.random() < 0.05]
        for r in back:
            r.nack(delay=0)
        keep = [r for r in recs if r not in back]
        note(f, "acking", keep)
        q.ack_many(keep)
        note(f, "acked", keep)

def holder():
    q = log.queue("jobs", group="w", **CFG)
    f = open(os.path.join(outdir, "holder.txt"), "a")
    note(f, "recv", q.receive(15, timeout=5))
    print("holding", flush=True)

holder()
for i in range(n_threads):
    threading.Thread(target=worker, args=(i,), daemon=True).start()
threading.Event().wait()  # until SIGKILL
"""

THREADS = 3
MAX_BATCH = 20


def test_sigkill_of_the_owner_loses_no_ack_and_redelivers_the_rest(tmp_path, data_dir,
                                                                   python_exe):
    n = 4000
    thresholds = [150, 600, 350]  # acks (reported) in each round before the kill
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    with logmq.open(data_dir) as log:
        fill(log, "jobs", n, partitions=3)
        everything = {(p, off) for p in range(3) for off in range(*log.offsets(("jobs", p)))}
    assert len(everything) == n

    acked: set[tuple[int, int]] = set()  # reported acked in some round
    maybe: set[tuple[int, int]] = set()  # "acking" reported but not "acked": either way
    last_count: dict[tuple[int, int], int] = {}  # highest delivery count reported
    for rnd, threshold in enumerate(thresholds):
        outdir = tmp_path / f"round{rnd}"
        outdir.mkdir()
        files = [str(outdir / f"w{i}.txt") for i in range(THREADS)]
        stderr_path = str(outdir / "stderr.txt")
        with open(stderr_path, "w") as err:
            proc = subprocess.Popen([python_exe, str(script), data_dir, str(outdir), str(rnd),
                                     str(THREADS)], stdout=subprocess.PIPE, stderr=err,
                                    text=True)
        try:
            assert proc.stdout.readline() == "holding\n", _read(stderr_path)
            wait_for_progress(lambda files=files: count_tag(files, "acked"), threshold,
                              f"{threshold} acks in round {rnd}", proc, stderr_path)
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(30) == -signal.SIGKILL
        finally:
            kill(proc)

        acked_now: list[tuple[int, int]] = []
        acking_now: set[tuple[int, int]] = set()
        delivered: dict[tuple[int, int], list[int]] = defaultdict(list)  # counts, this run
        for path in [*files, str(outdir / "holder.txt")]:
            counts: dict[tuple[int, int], int] = {}
            for tag, p, off, count in read_lines(path):
                key, count = (int(p), int(off)), int(count)
                if tag == "recv":
                    # an acknowledged record is never delivered again, even after a crash
                    assert key not in acked, f"round {rnd}: acked {key} delivered again"
                    # each delivery's count was durable before receive returned
                    assert count > last_count.get(key, 0), (rnd, key, count, last_count.get(key))
                    delivered[key].append(count)
                    maybe.discard(key)  # its ack (if any) was not committed
                    counts[key] = count
                elif tag == "acking":
                    acking_now.add(key)
                elif tag == "acked":
                    assert counts.get(key) == count  # the acquisition this thread received
                    acked_now.append(key)
        for key, cs in delivered.items():
            assert len(set(cs)) == len(cs), (rnd, key, cs)  # one count per delivery
            last_count[key] = max(cs)
        assert len(acked_now) >= threshold
        assert len(set(acked_now)) == len(acked_now)  # none acked twice in this run
        acked.update(acked_now)
        window = acking_now - set(acked_now)
        # the acks in flight at the kill: at most one batch per thread
        assert len(window) <= THREADS * MAX_BATCH
        maybe |= window

    # restart in this process and drain what is left
    got: dict[tuple[int, int], int] = {}
    with logmq.open(data_dir) as log:
        q = log.queue("jobs", group="w", **GROUP_CFG)
        while True:
            recs = q.receive(500, timeout=0.2)
            if not recs:
                break
            for r in recs:
                key = (r.partition, r.offset)
                assert key not in got
                got[key] = r.delivery_count
            q.ack_many(recs)
        assert q.stats().depth == 0
    assert not acked & got.keys(), "an acknowledged record came back after a crash"
    missing = everything - acked - got.keys()
    # only acks that were committed but not yet reported may be missing from both sides
    assert missing <= maybe, sorted(missing - maybe)[:10]
    for key, count in got.items():
        if key in last_count:  # delivered before a kill: the count went on from there
            assert count > last_count[key] >= 1, (key, count, last_count[key])
    # what the holder threads kept unacked came back (unless a later run acked it)
    for rnd in range(len(thresholds)):
        held = [(int(p), int(off)) for _, p, off, _ in
                read_lines(str(tmp_path / f"round{rnd}" / "holder.txt"))]
        assert len(held) == 15
        for key in held:
            assert key in got or (key in acked and rnd < len(thresholds) - 1), (rnd, key)
