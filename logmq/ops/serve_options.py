"""The operating side of ``logmq serve``: --http, --advertise, logging, startup errors.

Kept out of the CLI module so ``serve`` only gains a decorator and two calls. Until the typed
configuration table exists, the TOML file is checked here against the keys ``serve`` knows
(its own, the broker's and every topic config); each problem is one line naming the key and
the file, with exit code 2, as for a bad command-line option.
"""

from __future__ import annotations

import errno
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from logmq.ops.logs import LOG_FORMATS, LOG_LEVELS, configure_logging

__all__ = ["OPS_KEYS", "ServeError", "ops_options", "load_config_file", "ops_settings", "startup_errors",
           "split_host_port"]

F = TypeVar("F", bound=Callable[..., Any])

#: keys of the [serve] TOML file besides topic configs, with the types they must have
SERVE_KEYS: dict[str, tuple[type, ...]] = {
    "data": (str,), "listen": (str,), "http": (str,), "advertise": (str,),
    "advertised_listeners": (str,), "max_request_size": (int,), "auto_create_topics": (bool,),
    "num_partitions": (int,), "cleaner": (bool,), "map_size": (int,), "repair": (bool,),
    "log_level": (str,), "log_format": (str,), "topic_defaults": (dict,),
}
_OPS_KEYS = ("http", "advertise", "advertised_listeners", "log_level", "log_format")
#: the BrokerConfig settings ``serve`` hands to :func:`ops_settings`
OPS_KEYS = ("http", "advertise", "log_level", "log_format")


class ServeError(click.ClickException):
    """One line on stderr, exit code 2: the command cannot start as configured."""

    exit_code = 2


def split_host_port(text: str, option: str, *, port_optional: bool = False
                    ) -> tuple[str, int | None]:
    host, sep, port = text.rpartition(":")
    if not sep and port_optional:
        return text.strip("[]"), None
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ServeError(f"{option}: expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is not None:
        ctx.meta[f"logmq.ops.{param.name}"] = value


def ops_options(f: F) -> F:
    """--http, --advertise, --log-level, --log-format (kept in the click context)."""
    opts = [
        click.option("--http", metavar="HOST:PORT", expose_value=False, callback=_remember,
                     help="serve /metrics, /healthz, /readyz, /api/v1 and a dashboard here "
                          "(off by default; e.g. 127.0.0.1:9644)"),
        click.option("--advertise", metavar="HOST[:PORT]", expose_value=False,
                     callback=_remember,
                     help="the address Metadata tells clients to connect to  [default: the "
                          "listen address]"),
        click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False),
                     expose_value=False, callback=_remember,
                     help="  [default: info; -v means debug]"),
        click.option("--log-format", type=click.Choice(LOG_FORMATS), expose_value=False,
                     callback=_remember, help="json: one object per line  [default: text]"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def load_config_file(path: str) -> dict[str, Any]:
    """The TOML file, checked: syntax, known keys, value types (one-line ServeError)."""
    from logmq.broker.config import TOPIC_CONFIGS, validate_topic_config
    from logmq.errors import ConfigError

    try:
        with open(path, "rb") as f:
            cfg = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ServeError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise ServeError(f"{path}: {e.strerror or e}") from None
    topic_keys = {}
    for key, value in cfg.items():
        types = SERVE_KEYS.get(key)
        if types is None:
            if key.replace("_", ".") in TOPIC_CONFIGS:
                topic_keys[key] = value  # a broker-wide topic default
                continue
            raise ServeError(f"{path}: unknown key {key!r}")
        # bool is an int in Python: num_partitions = true is still wrong
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            want = " or ".join(t.__name__ for t in types).replace("dict", "table")
            raise ServeError(f"{path}: {key} must be {want}, got {value!r}")
    try:
        validate_topic_config(topic_keys)
        validate_topic_config(cfg.get("topic_defaults"))
    except ConfigError as e:
        raise ServeError(f"{path}: {e}") from None
    return cfg


def ops_settings(cfg: dict[str, Any], verbose: bool) -> dict[str, Any]:
    """Pop the ops keys from ``cfg``, merge the flags over them, set up logging.

    Returns ``run_server`` keyword arguments (``http_listen``, ``advertised_host``,
    ``advertised_port``).
    """
    ctx = click.get_current_context()
    file_vals = {k: cfg.pop(k) for k in _OPS_KEYS if k in cfg}

    def get(name: str) -> Any:
        return ctx.meta.get(f"logmq.ops.{name}", file_vals.get(name))

    level = get("log_level") or ("debug" if verbose else "info")
    configure_logging(level, get("log_format") or "text")
    out: dict[str, Any] = {}
    http = get("http")
    if http:
        out["http_listen"] = split_host_port(http, "--http")
    adv = get("advertise") or file_vals.get("advertised_listeners")
    if adv:
        adv = adv.split(",")[0].split("://")[-1]  # advertised.listeners style: PLAINTEXT://h:p
        host, port = split_host_port(adv, "--advertise", port_optional=True)
        out["advertised_host"] = host
        if port is not None:
            out["advertised_port"] = port
    return out


@contextmanager
def startup_errors() -> Iterator[None]:
    """A taken port or a bad config value: one line and exit code 2, not a traceback."""
    from logmq.errors import ConfigError

    try:
        yield
    except OSError as e:
        if e.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise ServeError(f"cannot listen: {e}") from None
        raise
    except ConfigError as e:
        raise ServeError(str(e)) from None
