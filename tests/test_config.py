"""Typed configuration: one table per scope, resolution with provenance, errors naming the key."""

from __future__ import annotations

import dataclasses

import pytest

import logmq
from logmq.config import (
    BROKER_KEYS,
    TOPIC_CONFIGS,
    BrokerConfig,
    TopicConfig,
    topic_config_from,
)
from logmq.config_load import load_broker_config
from logmq.errors import ConfigError, ConfigKeyError


def test_topic_config_defaults_come_from_the_table_only():
    cfg = TopicConfig()
    for d in TOPIC_CONFIGS.values():
        assert getattr(cfg, d.attr) == d.default
    assert cfg.delete and not cfg.compact
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.retention_ms = 5  # type: ignore[misc]


def test_typed_view_of_a_topic(tmp_path):
    with logmq.open(tmp_path, cleaner=False) as log:
        log.create_topic("c", config={"cleanup.policy": "compact,delete", "retention_ms": 5000})
        s = log.topic_settings("c")
        assert s.compact and s.delete and s.retention_ms == 5000
        assert topic_config_from(log.topic_config("c")) == s


def test_precedence_default_file_env_kwarg_with_provenance(tmp_path):
    f = tmp_path / "logmq.toml"
    f.write_text('num_partitions = 2\ncleaner_check_interval_ms = 10\n'
                 '[topic_defaults]\n"retention.ms" = 1000\nsegment_bytes = 4096\n')
    env = {"LOGMQ_NUM_PARTITIONS": "3", "LOGMQ_TOPIC_RETENTION_MS": "2000",
           "LOGMQ_PURE": "1", "LOGMQ_BOOTSTRAP": "x:1"}  # not settings: left alone
    cfg = load_broker_config({"retention_ms": 3000}, file=f, env=env)
    assert cfg.num_partitions == 3 and cfg.sources["num_partitions"] == "env:LOGMQ_NUM_PARTITIONS"
    assert cfg.cleaner_check_interval_ms == 10
    assert cfg.sources["cleaner_check_interval_ms"] == f"file:{f}"
    assert cfg.topic_defaults == {"retention.ms": 3000, "segment.bytes": 4096}
    assert cfg.sources["topic_defaults.retention.ms"] == "kwarg"
    assert cfg.sources["topic_defaults.segment.bytes"] == f"file:{f}"
    rows = {k: (v, src) for k, v, src in cfg.items()}
    assert rows["map_size"] == (BROKER_KEYS["map_size"].default, "default")
    assert rows["topic_defaults.retention.ms"] == (3000, "kwarg")


@pytest.mark.parametrize("kwargs,env,key,source", [
    ({"num_partitions": 0}, {}, "num_partitions", "kwarg"),
    ({}, {"LOGMQ_CLEANER": "perhaps"}, "cleaner", "env:LOGMQ_CLEANER"),
    ({"retention_ms": "soon"}, {}, "retention.ms", "kwarg"),
    ({}, {"LOGMQ_TOPIC_NO_SUCH_KEY": "1"}, "no_such_key", "env:LOGMQ_TOPIC_NO_SUCH_KEY"),
    ({"no_such_setting": 1}, {}, "no_such_setting", "kwarg"),
])
def test_errors_are_one_line_and_name_the_key(kwargs, env, key, source):
    with pytest.raises(ConfigKeyError) as e:
        load_broker_config(kwargs, env=env)
    assert e.value.key == key and e.value.source == source
    assert "\n" not in str(e.value) and key in str(e.value)
    assert isinstance(e.value, ConfigError)


def test_bad_file_table_is_named(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('topic_defaults = 3\n')
    with pytest.raises(ConfigKeyError, match="topic_defaults"):
        load_broker_config(file=f)


def test_broker_settings_reach_the_cleaner_and_coordinator(tmp_path):
    cfg = load_broker_config({"cleaner_check_interval_ms": 123, "cleaner_max_bytes_per_sec": None,
                              "group_initial_rebalance_delay_ms": 7})
    with logmq.open(tmp_path, config=cfg) as log:
        assert log.cleaner is not None and log.cleaner.check_interval_ms == 123
        assert log.cleaner.max_bytes_per_sec is None
        assert log.groups.initial_rebalance_delay == pytest.approx(0.007)


def test_open_reads_logmq_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGMQ_NUM_PARTITIONS", "4")
    with logmq.open(tmp_path, cleaner=False) as log:
        assert log.create_topic("t").partitions[-1].partition == 3
        assert log.config.sources["num_partitions"] == "env:LOGMQ_NUM_PARTITIONS"


def test_config_and_settings_are_exclusive(tmp_path):
    with pytest.raises(TypeError):
        logmq.open(tmp_path, config=BrokerConfig(), cleaner=False)
