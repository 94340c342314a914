"""A raw-wire walk through the transaction APIs, run against logmq (tests/test_txn_wire.py)
and against Apache Kafka 4.4 (tests/oracle/test_txn_oracle.py) with the same observations.

Each step records what a client can see: error codes, and producer ids / epochs / offsets
relative to the first ones (ids differ between brokers).
"""

from __future__ import annotations

import time
from typing import Any

from wire_util import RawClient, good_batch

TIMEOUT_MS = 60_000


#: codes clients retry (coordinator loading or not ready, previous transaction completing):
#: a step records the answer after them
RETRIABLE = {14, 15, 51}


def _retry(call: Any) -> Any:
    deadline = time.monotonic() + 30
    while True:
        out = call()
        if isinstance(out, int):
            code = out
        elif "error_code" in out:
            code = out["error_code"]
        else:  # TxnOffsetCommit: per partition
            code = out["topics"][0]["partitions"][0]["error_code"]
        if code not in RETRIABLE or time.monotonic() > deadline:
            return out
        time.sleep(0.05)  # polling a condition with a deadline


def _produce(raw: RawClient, tid: str, topic: str, pid: int, epoch: int, seq: int) -> dict:
    batch = good_batch(1, producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                       transactional=True)
    r = raw.call(0, 8, {"transactional_id": tid, "acks": -1, "timeout_ms": 5000,
                        "topic_data": [{"name": topic, "partition_data": [
                            {"index": 0, "records": batch}]}]})
    return r["responses"][0]["partition_responses"][0]


def _add(raw: RawClient, v: int, tid: str, pid: int, epoch: int, topic: str) -> int:
    return int(_retry(lambda: _add_once(raw, v, tid, pid, epoch, topic)))


def _add_once(raw: RawClient, v: int, tid: str, pid: int, epoch: int, topic: str) -> int:
    r = raw.call(24, v, {"v3_and_below_transactional_id": tid, "v3_and_below_producer_id": pid,
                         "v3_and_below_producer_epoch": epoch, "v3_and_below_topics": [
                             {"name": topic, "partitions": [0]}]})
    return int(r["results_by_topic_v3_and_below"][0]["results_by_partition"][0]
               ["partition_error_code"])


def _end(raw: RawClient, v: int, tid: str, pid: int, epoch: int, commit: bool) -> int:
    return int(_retry(lambda: raw.call(26, v, {
        "transactional_id": tid, "producer_id": pid, "producer_epoch": epoch,
        "committed": commit})["error_code"]))


def _fetch(raw: RawClient, topic: str, isolation: int) -> dict:
    r = raw.call(1, 11, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0,
                         "max_bytes": 1 << 20, "isolation_level": isolation, "session_id": 0,
                         "session_epoch": -1, "topics": [{"topic": topic, "partitions": [
                             {"partition": 0, "current_leader_epoch": -1, "fetch_offset": 0,
                              "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
                         "forgotten_topics_data": [], "rack_id": ""})
    return dict(r["responses"][0]["partitions"][0])


def _latest(raw: RawClient, topic: str, isolation: int, timestamp: int = -1) -> int:
    r = raw.call(2, 4, {"replica_id": -1, "isolation_level": isolation, "topics": [
        {"name": topic, "partitions": [{"partition_index": 0, "current_leader_epoch": -1,
                                        "timestamp": timestamp}]}]})
    return int(r["topics"][0]["partitions"][0]["offset"])


def _init(raw: RawClient, tid: str, timeout_ms: int = TIMEOUT_MS) -> dict:
    return dict(_retry(lambda: raw.call(22, 1, {"transactional_id": tid,
                                                "transaction_timeout_ms": timeout_ms})))


def _find(raw: RawClient, key: str, key_type: int) -> int:
    """FindCoordinator until it answers (Kafka creates its internal topic on the first ask)."""
    deadline = time.monotonic() + 30
    while True:
        code = int(raw.call(10, 2, {"key": key, "key_type": key_type})["error_code"])
        if code == 0 or time.monotonic() > deadline:
            return code
        time.sleep(0.1)  # polling a condition with a deadline


def run_steps(host: str, port: int, topic: str, tid: str) -> dict[str, Any]:
    """The walk; ``topic`` (one partition) must exist and be empty."""
    raw = RawClient(host, port, timeout=30)
    obs: dict[str, Any] = {}
    try:
        obs["find_txn_coordinator"] = _find(raw, tid, 1)
        obs["find_group_coordinator"] = _find(raw, tid + "-group", 0)
        obs["init_timeout_too_large"] = _init(raw, tid, 900_001)["error_code"]
        first = _init(raw, tid)
        obs["init"] = (first["error_code"], first["producer_epoch"])
        pid, epoch = first["producer_id"], first["producer_epoch"]
        obs["end_without_txn"] = _end(raw, 1, tid, pid, epoch, True)
        obs["add_wrong_pid_v1"] = _add(raw, 1, tid, pid + 1000, epoch, topic)
        obs["add_wrong_epoch_v1"] = _add(raw, 1, tid, pid, epoch + 5, topic)
        obs["add_wrong_epoch_v3"] = _add(raw, 3, tid, pid, epoch + 5, topic)
        obs["add_unknown_topic"] = _add(raw, 3, tid, pid, epoch, topic + "-missing")
        obs["add"] = _add(raw, 3, tid, pid, epoch, topic)
        obs["add_again"] = _add(raw, 3, tid, pid, epoch, topic)
        pr = _produce(raw, tid, topic, pid, epoch, 0)
        obs["produce"] = (pr["error_code"], pr["base_offset"])
        d = raw.call(65, 0, {"transactional_ids": [tid, tid + "-unknown"]})
        known, unknown = d["transaction_states"]
        obs["describe"] = (known["error_code"], known["transaction_state"],
                           known["transaction_timeout_ms"], known["producer_epoch"],
                           known["producer_id"] == pid,
                           [(t["topic"], t["partitions"]) for t in known["topics"]])
        obs["describe_unknown"] = (unknown["error_code"], unknown["transaction_state"])
        ls = raw.call(66, 0, {"state_filters": ["Ongoing", "NoSuchState"],
                              "producer_id_filters": [pid]})
        obs["list_ongoing"] = (ls["error_code"], ls["unknown_state_filters"],
                               [(s["transactional_id"] == tid, s["transaction_state"])
                                for s in ls["transaction_states"]])
        dp = raw.call(61, 0, {"topics": [{"name": topic, "partition_indexes": [0]}]})
        prods = dp["topics"][0]["partitions"][0]["active_producers"]
        obs["describe_producers"] = [(p["producer_id"] == pid, p["producer_epoch"],
                                      p["last_sequence"], p["current_txn_start_offset"])
                                     for p in prods]
        for iso in (0, 1):
            f = _fetch(raw, topic, iso)
            obs[f"fetch_open_iso{iso}"] = (f["error_code"], f["high_watermark"],
                                           f["last_stable_offset"], len(f["records"] or b"") > 0)
            obs[f"latest_open_iso{iso}"] = _latest(raw, topic, iso)
            obs[f"by_time_open_iso{iso}"] = _latest(raw, topic, iso, 0)
        obs["abort"] = _end(raw, 1, tid, pid, epoch, False)
        obs["abort_again"] = _end(raw, 1, tid, pid, epoch, False)
        obs["commit_after_abort"] = _end(raw, 1, tid, pid, epoch, True)
        f = _fetch(raw, topic, 1)
        obs["fetch_aborted"] = (f["error_code"], f["high_watermark"], f["last_stable_offset"],
                                [(a["producer_id"] == pid, a["first_offset"])
                                 for a in f["aborted_transactions"] or []])
        obs["produce_after_abort"] = _produce(raw, tid, topic, pid, epoch, 1)["error_code"]
        again = _init(raw, tid)
        obs["init_again"] = (again["error_code"], again["producer_id"] == pid,
                             again["producer_epoch"] - epoch)
        obs["add_fenced_v3"] = _add(raw, 3, tid, pid, epoch, topic)
        obs["end_fenced_v1"] = _end(raw, 1, tid, pid, epoch, True)
        obs["end_fenced_v3"] = _end(raw, 3, tid, pid, epoch, True)
        e2 = again["producer_epoch"]
        obs["add_new_epoch"] = _add(raw, 3, tid, pid, e2, topic)
        obs["produce_old_epoch"] = _produce(raw, tid, topic, pid, epoch, 2)["error_code"]
        pr = _produce(raw, tid, topic, pid, e2, 0)
        obs["produce_new_epoch"] = (pr["error_code"], pr["base_offset"])
        ao = _retry(lambda: raw.call(25, 3, {"transactional_id": tid, "producer_id": pid,
                                             "producer_epoch": e2, "group_id": tid + "-group"}))
        obs["add_offsets"] = ao["error_code"]
        tc = _retry(lambda: raw.call(28, 3, {"transactional_id": tid, "group_id": tid + "-group",
                              "producer_id": pid, "producer_epoch": e2,
                              "generation_id_or_member_epoch": -1, "member_id": "",
                              "group_instance_id": None, "topics": [
                                  {"name": topic, "partitions": [
                                      {"partition_index": 0, "committed_offset": 1,
                                       "committed_leader_epoch": -1,
                                       "committed_metadata": "m"}]}]}))
        obs["txn_offset_commit"] = tc["topics"][0]["partitions"][0]["error_code"]
        us = raw.call(9, 7, {"group_id": tid + "-group", "topics": [
            {"name": topic, "partition_indexes": [0]}], "require_stable": True})
        up = us["topics"][0]["partitions"][0]
        obs["offsets_unstable"] = (us["error_code"], up["error_code"], up["committed_offset"])
        obs["commit"] = _end(raw, 3, tid, pid, e2, True)
        of = {}
        deadline = time.monotonic() + 10  # Kafka applies the offsets a moment after EndTxn
        while time.monotonic() < deadline:
            of = raw.call(9, 5, {"group_id": tid + "-group", "topics": [
                {"name": topic, "partition_indexes": [0]}], "require_stable": False})
            if of["topics"] and of["topics"][0]["partitions"][0]["committed_offset"] >= 0:
                break
            time.sleep(0.05)  # polling a condition with a deadline
        part = of["topics"][0]["partitions"][0] if of.get("topics") else {}
        obs["offsets_after_commit"] = (of.get("error_code"), part.get("error_code"),
                                       part.get("committed_offset"), part.get("metadata"))
        deadline = time.monotonic() + 10  # Kafka writes the markers after answering EndTxn
        while time.monotonic() < deadline:
            f = _fetch(raw, topic, 1)
            if f["last_stable_offset"] == f["high_watermark"]:
                break
            time.sleep(0.05)
        obs["fetch_committed"] = (f["error_code"], f["high_watermark"], f["last_stable_offset"],
                                  [(a["producer_id"] == pid, a["first_offset"])
                                   for a in f["aborted_transactions"] or []])
        obs["latest_committed_iso1"] = _latest(raw, topic, 1)
    finally:
        raw.close()
    return obs
