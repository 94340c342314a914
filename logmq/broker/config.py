"""Old home of the topic-config table; it lives in :mod:`logmq.config` now (re-exported)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from logmq.config import (
    TOPIC_CONFIGS,
    TopicConfig,
    TopicConfigDef,
    normalize_key,
    resolve,
    topic_config_from,
    validate_topic_config,
)

__all__ = ["TopicConfigDef", "TOPIC_CONFIGS", "normalize_key", "validate_topic_config",
           "resolve", "log_config_from"]


def log_config_from(eff: Mapping[str, Any]) -> TopicConfig:
    return topic_config_from(eff)
