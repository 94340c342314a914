"""Each client's fixed scenario against Apache Kafka 4.4 and against logmq: the same
observations, except the documented differences in expected.py."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from .conftest import record_result
from .expected import IGNORED_FIELDS, compared, reason, strict
from .scenarios import CLIENTS, run_both

pytestmark = pytest.mark.oracle

#: operations whose *Kafka* observation is an error by design of the script
ERROR_OPS = {"create_topic_again", "unknown_topic_metadata", "unknown_topic_offsets",
             "delete_topic", "commit_unknown_topic"}
_cache: dict[str, dict[str, dict[str, Any]]] = {}


def _observe(client: str, bootstraps: dict[str, str]) -> dict[str, dict[str, Any]]:
    if client not in _cache:
        c = CLIENTS[client]
        why = c.missing()
        if why:
            if os.environ.get("CI"):
                pytest.fail(why)
            pytest.skip(why + " (outside CI only)")
        _cache[client] = run_both(c, bootstraps)
    return _cache[client]


def _params() -> list[Any]:
    out = []
    for name, c in CLIENTS.items():
        for op in c.ops:
            why = reason(name, op)
            marks = [pytest.mark.xfail(strict=strict(why), reason=why)] if why else []
            out.append(pytest.param(name, op, marks=marks, id=f"{name}-{op}"))
    return out


@pytest.mark.parametrize(("client", "op"), _params())
def test_same_observation(client: str, op: str, bootstraps: dict[str, str]) -> None:
    obs = _observe(client, bootstraps)
    k, m = obs["kafka"]["ops"].get(op, "<missing>"), obs["logmq"]["ops"].get(op, "<missing>")
    same = compared(op, k) == compared(op, m)
    kafka_ok = not (isinstance(k, dict) and k.get("error")) or op in ERROR_OPS
    why = reason(client, op)
    record_result(client, op, {"kafka": k, "logmq": m, "same": same, "kafka_ok": kafka_ok,
                               "expected_difference": why,
                               "ignored_fields": IGNORED_FIELDS.get(op) or None})
    assert k != "<missing>", f"the {client} scenario did not report {op}:\n" \
                             + obs["kafka"]["stderr"]
    # the oracle must succeed where the script expects success, or the comparison is empty
    assert kafka_ok, f"Apache Kafka itself failed {op}: {k}\n{obs['kafka']['stderr']}"
    assert same, (f"{client} {op} differs\n kafka: {json.dumps(k, sort_keys=True)}\n"
                  f" logmq: {json.dumps(m, sort_keys=True)}\n{obs['logmq']['stderr'][-3000:]}")


@pytest.mark.parametrize("client", list(CLIENTS))
def test_oracle_answered_every_operation(client: str, bootstraps: dict[str, str]) -> None:
    """Apache Kafka did what the script expects for every operation (not an xfail): an
    expected difference must never hide an oracle that did not work."""
    obs = _observe(client, bootstraps)["kafka"]["ops"]
    bad = {}
    for op in CLIENTS[client].ops:
        k = obs.get(op, "<missing>")
        why = reason(client, op)
        if why and not strict(why):
            continue  # documented client-vs-Kafka flakiness
        if k == "<missing>" or (isinstance(k, dict) and k.get("error") and op not in ERROR_OPS):
            bad[op] = k
    assert not bad, f"Apache Kafka failed these {client} operations: {bad}"
