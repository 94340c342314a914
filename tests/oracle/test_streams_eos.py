"""Kafka Streams 4.4 exactly-once-v2 word count on Apache Kafka 4.4 and on logmq: same counts.

Why this test: a Streams application under ``exactly_once_v2`` exercises most of what
transactions mean on a broker at once (internal changelog and repartition topics created with
configs, a transactional producer per thread committing offsets with its output, OffsetFetch
with ``require_stable``, read_committed fetches, DeleteRecords on the repartition topic, a
classic consumer group). interop/java's StreamsEos.java feeds it 25 committed lines after an
ABORTED transaction of "ghost" words, reads the output read_committed until the counts settle
and closes that instance; feeds 25 more lines to a "zombie" instance (another JVM, empty state
dir, 60 s commit interval) that is killed (SIGKILL) once its open transaction shows in the
repartition topic; then restarts in the zombie's state dir (same transactional ids: the
zombie is fenced, its transaction aborted, the counts restored from the changelog's committed
records). The final counts must be exact: none lost, none counted twice (150 s deadline). Counts are compared with the ones computed here from the same lines,
on each broker, and between the brokers. ~15-25 s per broker on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .conftest import record_result

pytestmark = pytest.mark.oracle

JAVA = Path(__file__).resolve().parents[2] / "interop" / "java"
RUN_TIMEOUT_S = 240  # the program's own deadline is 150 s, plus JVM start and shutdown
VOCAB = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "honey"]
_cache: dict[str, dict[str, Any]] = {}


def lines(n: int = 50) -> list[str]:
    """The input StreamsEos.java produces (its ``line(i)``), rebuilt independently here."""
    return [" ".join(VOCAB[(i * 5 + j * 3) % len(VOCAB)] for j in range(1 + i % 4))
            for i in range(n)]


def expected_counts(n: int = 50) -> dict[str, int]:
    return dict(Counter(w for line in lines(n) for w in line.split()))


def _run(bootstrap: str) -> dict[str, Any]:
    if not (JAVA / "target" / "classes" / "StreamsEos.class").exists():
        pytest.fail("interop/java is not built (StreamsEos.class missing): "
                    "mvn -q -B -f interop/java/pom.xml package -DskipTests")
    proc = subprocess.run(
        ["java", "-Xmx384m", "-XX:TieredStopAtLevel=1", "-cp",
         f"target/classes{os.pathsep}target/lib/*", "StreamsEos", "--bootstrap", bootstrap,
         "--prefix", "seos"], capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        cwd=JAVA, stdin=subprocess.DEVNULL)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            out: dict[str, Any] = json.loads(line)
            return out
    raise AssertionError(f"StreamsEos against {bootstrap} printed no result "
                         f"(exit {proc.returncode}):\n{proc.stderr[-4000:]}")


def _observe(bootstraps: dict[str, str], which: str) -> dict[str, Any]:
    # one broker at a time: two Streams JVMs beside a Kafka JVM are too much for 2 cores
    if which not in _cache:
        _cache[which] = _run(bootstraps[which])
    return _cache[which]


def _check(obs: dict[str, Any], broker: str) -> None:
    assert obs["error"] is None, f"{broker}: Streams failed: {obs['error']}"
    assert obs["state"] == "RUNNING", f"{broker}: Streams state {obs['state']}"
    assert obs["counts"] == expected_counts(), f"{broker}: counts {obs['counts']}"
    # nothing of the aborted input transaction, no count past its final value, none going back
    assert not obs["ghost_seen"] and not obs["over_count"] and not obs["decreased"], obs
    # the first instance stopped at half the input; the second, with an empty state dir, went
    # on from the counts it restored from the changelog (else the final counts fall short)
    assert obs["phase1_counts"] == expected_counts(25), f"{broker}: {obs['phase1_counts']}"
    assert obs["internal_topics"] == {
        "seos-app-counts-changelog": {"partitions": 2, "cleanup.policy": "compact"},
        "seos-app-words-repartition": {"partitions": 2, "cleanup.policy": "delete"},
    }, f"{broker}: {obs['internal_topics']}"
    assert obs["repartition_purged"], f"{broker}: DeleteRecords never moved the repartition start"
    # the killed instance's open transaction was there (read_uncommitted); had its records
    # been read after the kill, the words of the second half would count twice
    assert obs["zombie_pending_seen"], f"{broker}: the zombie never wrote into a transaction"


def test_streams_eos_word_count_on_kafka(bootstraps: dict[str, str]) -> None:
    """The reference run: if this fails the program, not logmq, is wrong."""
    _check(_observe(bootstraps, "kafka"), "Apache Kafka")


def test_streams_eos_word_count_on_logmq_same_as_kafka(bootstraps: dict[str, str]) -> None:
    k = _observe(bootstraps, "kafka")
    m = _observe(bootstraps, "logmq")
    keys = ("counts", "phase1_counts", "state", "error", "ghost_seen", "over_count",
            "decreased", "internal_topics", "repartition_purged", "zombie_pending_seen")
    kv, mv = ({x: o.get(x) for x in keys} for o in (k, m))
    record_result("java", "streams_eos_word_count", {
        "kafka": kv, "logmq": mv, "same": kv == mv, "kafka_ok": k.get("error") is None,
        "expected_difference": None,
        "elapsed_ms": {"kafka": k.get("elapsed_ms"), "logmq": m.get("elapsed_ms")}})
    _check(m, "logmq")
    assert mv == kv, (f"differs\n kafka: {json.dumps(kv, sort_keys=True)}\n"
                      f" logmq: {json.dumps(mv, sort_keys=True)}")
