"""The one Kafka vocabulary: generated enums, and every typed error mapped through them."""

from __future__ import annotations

import importlib.util
import inspect
import os

import pytest

from logmq import errors
from logmq.kafka_codes import ApiKey, ErrorCode, for_code

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(os.path.dirname(os.path.dirname(ROOT)), "shared", "kafka-protocol")
if not os.path.isdir(SRC):
    SRC = "/work/shared/kafka-protocol"


def test_well_known_codes_and_keys():
    assert ErrorCode.INVALID_REQUEST == 42 and ErrorCode.INVALID_RECORD == 87
    assert ErrorCode.NONE == 0 and ErrorCode.UNKNOWN_SERVER_ERROR == -1
    assert ApiKey.PRODUCE == 0 and ApiKey.FETCH == 1 and ApiKey.API_VERSIONS == 18
    assert ApiKey.SASL_AUTHENTICATE == 36 and ApiKey.DELETE_RECORDS == 21
    assert ErrorCode.NOT_COORDINATOR.retriable and not ErrorCode.INVALID_CONFIG.retriable


def test_for_code_maps_unknown_values_to_unknown_server_error():
    assert for_code(87) is ErrorCode.INVALID_RECORD
    assert for_code(31999) is ErrorCode.UNKNOWN_SERVER_ERROR


def test_protocol_error_is_invalid_request_not_invalid_record():
    assert errors.ProtocolError.kafka_code == ErrorCode.INVALID_REQUEST


def test_every_typed_error_carries_a_generated_code():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, errors.LogMQError)]
    assert len(classes) > 20
    for c in classes:
        assert isinstance(c.kafka_code, ErrorCode), c.__name__


def test_generated_module_is_current_and_standalone():
    with open(os.path.join(ROOT, "logmq", "kafka_codes.py")) as f:
        text = f.read()
    assert "/work/shared" not in text and "import json" not in text
    if not os.path.isdir(SRC):
        if os.environ.get("CI"):
            pytest.fail(f"Kafka schemas missing at {SRC}")
        pytest.skip(f"Kafka schemas not at {SRC} (outside CI)")
    spec = importlib.util.spec_from_file_location(
        "gen_kafka_codes", os.path.join(ROOT, "tools", "gen_kafka_codes.py"))
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.render(SRC) == text, "logmq/kafka_codes.py is stale: run tools/gen_kafka_codes.py"
