"""The transaction APIs on the wire, step by step (tests/txn_steps.py), with the answers
Apache Kafka 4.4 gives (tests/oracle/test_txn_oracle.py checks the same walk against it)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_util import ServerProcess  # noqa: E402
from txn_steps import run_steps  # noqa: E402

from logmq.kafka_codes import ErrorCode as E  # noqa: E402

#: what Kafka 4.4.0 answered to the same walk (tests/oracle/test_txn_oracle.py), e.g. 48
#: INVALID_TXN_STATE, 49 INVALID_PRODUCER_ID_MAPPING, 47 INVALID_PRODUCER_EPOCH (the name of
#: PRODUCER_FENCED before AddPartitionsToTxn v2 / EndTxn v2), 90 PRODUCER_FENCED
EXPECTED: dict[str, Any] = {
    'find_txn_coordinator': 0,
    'find_group_coordinator': 0,
    'init_timeout_too_large': 50,
    'init': [0, 0],
    'end_without_txn': 48,
    'add_wrong_pid_v1': 49,
    'add_wrong_epoch_v1': 47,
    'add_wrong_epoch_v3': 90,
    'add_unknown_topic': 3,
    'add': 0,
    'add_again': 0,
    'produce': [0, 0],
    'describe': [0, "Ongoing", 60000, 0, True, [["walk", [0]]]],
    'describe_unknown': [105, ""],
    'list_ongoing': [0, ["NoSuchState"], [[True, "Ongoing"]]],
    'describe_producers': [[True, 0, 0, 0]],
    'fetch_open_iso0': [0, 1, 0, True],
    'latest_open_iso0': 1,
    'by_time_open_iso0': 0,
    'fetch_open_iso1': [0, 1, 0, False],
    'latest_open_iso1': 0,
    'by_time_open_iso1': -1,
    'abort': 0,
    'abort_again': 0,
    'commit_after_abort': 48,
    'fetch_aborted': [0, 2, 2, [[True, 0]]],
    'produce_after_abort': 48,
    'init_again': [0, True, 1],
    'add_fenced_v3': 90,
    'end_fenced_v1': 47,
    'end_fenced_v3': 90,
    'add_new_epoch': 0,
    'produce_old_epoch': 47,
    'produce_new_epoch': [0, 2],
    'add_offsets': 0,
    'txn_offset_commit': 0,
    'offsets_unstable': [0, 88, -1],  # require_stable while a transaction holds the offset
    'commit': 0,
    'offsets_after_commit': [0, 0, 1, "m"],
    'fetch_committed': [0, 4, 4, [[True, 0]]],
    'latest_committed_iso1': 4,
}


def test_transaction_api_walk(tmp_path: Any) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    with ServerProcess(str(tmp_path / "data")) as s:
        admin = AdminClient({"bootstrap.servers": s.bootstrap})
        admin.create_topics([NewTopic("walk", 1, 1)])["walk"].result(20)
        obs = run_steps(s.host, s.port, "walk", "walker")
    assert obs["init"] == (E.NONE, 0)
    assert json.loads(json.dumps(obs)) == EXPECTED
