"""Loading a :class:`~logmq.config.BrokerConfig`: built-in defaults, a TOML file, ``LOGMQ_*``
environment variables, keyword arguments and command-line flags, later wins, each value with
the source it came from (``--print-config`` shows it; errors name it).

Kept apart from the tables in :mod:`logmq.config` so that module stays the one place the keys
and defaults are written, and this one the one place they are read from outside.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import Any

from logmq.config import (
    _ENV_LIMIT_PREFIX,
    _ENV_TOPIC_PREFIX,
    _FILE_TOPIC_TABLE,
    API_ELEMENTS_PREFIX,
    BROKER_KEYS,
    LIMIT_KEYS,
    TOPIC_CONFIGS,
    BrokerConfig,
    ConfigKey,
    _api_key,
    api_label,
    flag_for,
    normalize_key,
)
from logmq.config_parsers import _int
from logmq.errors import ConfigError, ConfigKeyError

__all__ = ["load_broker_config"]


# ---------------------------------------------------------------------------- loading
_TYPE_NAMES = {int: "int", float: "number", bool: "true or false", str: "string", dict: "table"}


def _where(source: str) -> str:
    """How an error names a source: the file's path, the variable, the option."""
    kind, _, rest = source.partition(":")
    return rest if kind in ("file", "env", "flag") else "keyword argument"


def _hint(name: str, prefix: str = "") -> str:
    import difflib

    known = [k[len(prefix):] for k in (*BROKER_KEYS, *LIMIT_KEYS) if k.startswith(prefix)]
    if not prefix:
        known += [k.replace(".", "_") for k in TOPIC_CONFIGS]
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {prefix + close[0]!r}?)" if close else ""


def _strict_type(d: ConfigKey, value: Any) -> bool:
    """A TOML value has a type: ``num_partitions = "4"`` is a mistake, not a number."""
    if d.type is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if d.type is float:
        return isinstance(value, int | float)
    if d.type is int:
        return isinstance(value, int)
    return isinstance(value, d.type)


class _WrongType(TypeError):
    pass


def _parse_value(d: ConfigKey, value: Any, *, strict: bool) -> Any:
    if strict and not _strict_type(d, value):
        raise _WrongType(f"{d.name} must be {_TYPE_NAMES.get(d.type, d.type.__name__)}, "
                         f"got {value!r}")
    return d.parse(value)


#: Kafka's name for ``advertise`` (``advertised.listeners = "PLAINTEXT://host:9092"``)
_ALIASES = {"advertised.listeners": "advertise", "advertised_listeners": "advertise",
            "listeners": "listen", "sasl.enabled.mechanisms": "sasl_mechanisms"}
_LIST_KEYS = ("listen", "advertise", "sasl_mechanisms")  # a TOML list means a, b, c


class _Loader:
    """Collects values by precedence (each later ``put`` wins) with their sources."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.topics: dict[str, Any] = {}
        self.limits: dict[str, Any] = {}
        self.sources: dict[str, str] = {}

    def fail(self, key: str, source: str, message: str) -> ConfigKeyError:
        return ConfigKeyError(key, f"{_where(source)}: {message}", source)

    def _typed(self, d: ConfigKey, key: str, value: Any, source: str, strict: bool) -> Any:
        try:
            return _parse_value(d, value, strict=strict)
        except _WrongType as e:
            raise self.fail(key, source, str(e)) from None
        except (TypeError, ValueError) as e:
            raise self.fail(key, source, f"invalid value {value!r} for {key}: {e}") from None

    def topic(self, key: str, value: Any, source: str, strict: bool = False) -> None:
        try:
            k = normalize_key(key)
        except ConfigError:
            raise self.fail(key, source, f"unknown topic config {key!r}"
                            f"{_hint(key.replace('.', '_'))}") from None
        # not type-strict: Kafka's topic configs are strings ("retention.ms" = "1000")
        self.topics[k] = self._typed(TOPIC_CONFIGS[k], k, value, source, strict=False)
        self.sources[f"{_FILE_TOPIC_TABLE}.{k}"] = source

    def limit(self, name: str, value: Any, source: str, strict: bool = False) -> None:
        name = name.replace("-", "_")
        if name.startswith("api_elements."):
            api = name.split(".", 1)[1]
            key = f"limits.api_elements.{api}"
            try:
                n = _api_key(api)
            except ValueError as e:
                raise self.fail(key, source, str(e)) from None
            row = ConfigKey(key, key, int, None, _int(1), "")
            self.limits.setdefault("api_elements", {})[n] = self._typed(row, key, value, source,
                                                                        strict)
            self.sources[f"{API_ELEMENTS_PREFIX}{api_label(n)}"] = source
            return
        name = name.replace(".", "_")
        if name == "api_elements":
            if not isinstance(value, Mapping):
                raise self.fail("limits.api_elements", source,
                                "limits.api_elements must be a table of API = count")
            for api, n in value.items():
                self.limit(f"api_elements.{api}", n, source, strict)
            return
        d = LIMIT_KEYS.get(f"limits.{name}")
        if d is None:
            raise self.fail(f"limits.{name}", source,
                            f"unknown key 'limits.{name}'{_hint(name, 'limits.')}")
        self.limits[name] = self._typed(d, d.name, value, source, strict)
        self.sources[d.name] = source

    def put(self, key: str, value: Any, source: str, strict: bool = False) -> None:
        """One setting: a broker key, a ``limits``/``topic_defaults`` table, a topic key."""
        key = _ALIASES.get(key, key)
        if key in _LIST_KEYS and isinstance(value, list | tuple) and all(
                isinstance(x, str) for x in value):
            value = ",".join(value)  # listeners = [...] in the file; --listen repeated
        if key == _FILE_TOPIC_TABLE:
            if not isinstance(value, Mapping):
                raise self.fail(key, source, f"{key} must be a table")
            for tk, tv in value.items():
                self.topic(tk, tv, source, strict)
        elif key == "limits":
            if not isinstance(value, Mapping):
                raise self.fail(key, source, "limits must be a table")
            for lk, lv in value.items():
                self.limit(str(lk), lv, source, strict)
        elif key.startswith("limits."):
            self.limit(key[7:], value, source, strict)
        elif key.startswith(_FILE_TOPIC_TABLE + "."):
            self.topic(key.split(".", 1)[1], value, source, strict)
        elif key in BROKER_KEYS:
            self.values[key] = self._typed(BROKER_KEYS[key], key, value, source, strict)
            self.sources[key] = source
        elif key.replace("_", ".") in TOPIC_CONFIGS or key in TOPIC_CONFIGS:
            self.topic(key, value, source, strict)  # a broker-wide topic default
        else:
            raise self.fail(key, source, f"unknown key {key!r}{_hint(key)}")

    def file(self, path: str | os.PathLike[str]) -> None:
        src = f"file:{os.fspath(path)}"
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{os.fspath(path)}: not valid TOML: {e}") from None
        except OSError as e:
            raise ConfigError(f"{os.fspath(path)}: cannot read: {e.strerror or e}") from None
        for key, value in doc.items():
            self.put(key, value, src, strict=True)

    def env(self, env: Mapping[str, str]) -> None:
        for var, value in sorted(env.items()):
            src = f"env:{var}"
            if var.startswith(_ENV_TOPIC_PREFIX):
                self.topic(var[len(_ENV_TOPIC_PREFIX):].lower(), value, src)
            elif var.startswith(_ENV_LIMIT_PREFIX):
                name = var[len(_ENV_LIMIT_PREFIX):].lower()
                if name.startswith("api_elements_"):
                    name = "api_elements." + name[len("api_elements_"):]
                self.limit(name, value, src)
            elif var.startswith("LOGMQ_"):
                key = var[len("LOGMQ_"):].lower()
                if key in BROKER_KEYS and key != "limits":
                    self.put(key, value, src)

    def check(self) -> None:
        """Relations between keys, each error naming the keys and where they came from."""
        lo = self.values.get("group_min_session_timeout_ms",
                             BROKER_KEYS["group_min_session_timeout_ms"].default)
        hi = self.values.get("group_max_session_timeout_ms",
                             BROKER_KEYS["group_max_session_timeout_ms"].default)
        if lo > hi:
            src = self.sources.get("group_max_session_timeout_ms") or self.sources.get(
                "group_min_session_timeout_ms", "default")
            raise self.fail("group_max_session_timeout_ms", src,
                            f"group_max_session_timeout_ms ({hi}) is below "
                            f"group_min_session_timeout_ms ({lo})")
        size = self.values.get("max_request_size", BROKER_KEYS["max_request_size"].default)
        queued = self.limits.get("queued_max_request_bytes")
        if queued is not None and queued < size:
            raise self.fail("limits.queued_max_request_bytes",
                            self.sources["limits.queued_max_request_bytes"],
                            f"limits.queued_max_request_bytes ({queued}) is below "
                            f"max_request_size ({size}): such a request could never be read")


def load_broker_config(
    kwargs: Mapping[str, Any] | None = None,
    *,
    file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> BrokerConfig:
    """Defaults < TOML ``file`` < ``LOGMQ_*`` variables of ``env`` < ``kwargs`` < ``flags``.

    That is the usual order of servers (a command-line flag beats the environment, which
    beats the file). ``kwargs`` (the Python API) and ``flags`` (command-line options; their
    source names the option) may mix broker keys, ``limits.<name>`` and topic keys
    (``segment_bytes=...``: a default for every topic). In the file, topic defaults go in a
    ``[topic_defaults]`` table and limits in ``[limits]``, and values must have the key's
    type; in the environment, ``LOGMQ_TOPIC_RETENTION_MS=...``, ``LOGMQ_LIMITS_<NAME>``.
    Unknown ``LOGMQ_*`` variables that are not settings (``LOGMQ_PURE``, ``LOGMQ_BOOTSTRAP``)
    are left alone. ``env=None`` reads nothing from the environment. Raises
    :class:`~logmq.errors.ConfigKeyError`, one line naming the key and the source.
    """
    ld = _Loader()
    if file is not None:
        ld.file(file)
    if env is not None:
        ld.env(env)
    for key, value in (kwargs or {}).items():
        ld.put(key, value, "kwarg")
    for key, value in (flags or {}).items():
        if key in ("limits", _FILE_TOPIC_TABLE) and isinstance(value, Mapping):
            for k, v in value.items():  # --limit and --topic-default name their option
                ld.put(f"{key}.{k}", v, f"flag:{flag_for(f'{key}.{k}')}")
        else:
            ld.put(key, value, f"flag:{flag_for(key)}")
    ld.check()
    values = dict(ld.values)
    if ld.limits:
        values["limits"] = ld.limits
    return BrokerConfig(**values, topic_defaults=ld.topics, sources=ld.sources)
