"""The settings side of ``logmq serve``: one option per key of the table, provenance, errors.

Every key of :data:`logmq.config.BROKER_KEYS` becomes an option (``num_partitions`` ->
``--num-partitions``; booleans get ``--x/--no-x``), plus ``--limit NAME=VALUE`` for the
server limits and ``--topic-default KEY=VALUE`` for topic defaults. The options only collect
what was given; :func:`serve_config` hands it to :func:`logmq.config_load.load_broker_config` as
``flags`` (flag > ``LOGMQ_*`` environment > TOML file > default), so the values are parsed
and checked by the table, and every problem is one line naming the key and where it came
from, with exit code 2, as for a bad command-line option.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from logmq.ops.logs import configure_logging

if TYPE_CHECKING:
    from logmq.config import BrokerConfig
    from logmq.server.limits import ServerLimits

__all__ = ["ServeError", "config_options", "serve_config", "ops_settings", "server_limits",
           "print_config", "startup_errors", "split_host_port"]

F = TypeVar("F", bound=Callable[..., Any])
_FLAGS = "logmq.serve.flags"
_METAVARS = {int: "N", float: "X", str: "TEXT"}
#: options that may be given more than once (the values are joined with commas)
_REPEATABLE = ("listen",)
_METAVAR_OF = {"listen": "[PROTO://]HOST:PORT", "http": "HOST:PORT", "queue_listen": "HOST:PORT",
               "advertise": "HOST[:PORT]", "data": "DIR", "queue_authkey_file": "FILE",
               "ssl_certfile": "FILE", "ssl_keyfile": "FILE", "ssl_cafile": "FILE",
               "sasl_mechanisms": "MECH,..."}


class ServeError(click.ClickException):
    """One line on stderr, exit code 2: the command cannot start as configured."""

    exit_code = 2


def split_host_port(text: str, option: str, *, port_optional: bool = False
                    ) -> tuple[str, int | None]:
    if "://" in text:  # advertised.listeners style: PLAINTEXT://host:port
        text = text.split(",")[0].split("://", 1)[1]
    host, sep, port = text.rpartition(":")
    if (not sep or "]" in port) and port_optional:
        return text.strip("[]"), None
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ServeError(f"{option}: expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _flags(ctx: click.Context) -> dict[str, Any]:
    out: dict[str, Any] = ctx.meta.setdefault(_FLAGS, {})
    return out


def _keep(key: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None or value == ():
            return
        if key in ("limits", "topic_defaults"):  # NAME=VALUE, repeatable
            table = _flags(ctx).setdefault(key, {})
            for item in value:
                name, sep, v = item.partition("=")
                if not sep or not name.strip():
                    raise ServeError(f"{param.opts[0]}: expected NAME=VALUE, got {item!r}")
                table[name.strip()] = v.strip() if key == "limits" else v
        else:
            _flags(ctx)[key] = value

    return callback


def config_options(f: F) -> F:
    """One option per setting of the table (generated), ``--limit``, ``--topic-default``."""
    from logmq.config import BROKER_KEYS

    opts = []
    for key, d in BROKER_KEYS.items():
        if key == "limits":
            continue
        flag = "--" + key.replace("_", "-")
        default = "unset" if d.default is None else d.default
        helptext = f"{d.doc} (env {d.env})  [default: {default}]"
        if d.type is bool:
            opts.append(click.option(f"{flag}/--no-{flag[2:]}", key, default=None,
                                     expose_value=False, callback=_keep(key), help=helptext))
        else:
            opts.append(click.option(flag, key, default=None, expose_value=False,
                                     metavar=_METAVAR_OF.get(key, _METAVARS.get(d.type, "X")),
                                     callback=_keep(key), help=helptext,
                                     multiple=key in _REPEATABLE))
    opts.append(click.option(
        "--limit", "limits", multiple=True, metavar="NAME=VALUE", expose_value=False,
        callback=_keep("limits"),
        help="a server limit, e.g. max_connections=100 (repeatable; env LOGMQ_LIMITS_<NAME>; "
             "see docs/configuration.md)"))
    opts.append(click.option(
        "--topic-default", "topic_defaults", multiple=True, metavar="KEY=VALUE",
        expose_value=False, callback=_keep("topic_defaults"),
        help="a default for every topic, e.g. retention.ms=3600000 (repeatable; env "
             "LOGMQ_TOPIC_<KEY>)"))
    for opt in reversed(opts):
        f = opt(f)
    return f


def serve_config(config_file: str | None) -> BrokerConfig:
    """Flags (from the click context) > environment > ``config_file`` > defaults."""
    from logmq.config_load import load_broker_config
    from logmq.errors import ConfigError

    ctx = click.get_current_context()
    try:
        return load_broker_config(file=config_file, env=os.environ, flags=_flags(ctx))
    except ConfigError as e:
        raise ServeError(str(e)) from None


def server_limits(cfg: BrokerConfig) -> ServerLimits:
    """The :class:`ServerLimits` of ``cfg`` (unset limits keep the server's defaults)."""
    import dataclasses

    from logmq.errors import ConfigError
    from logmq.server.limits import ServerLimits

    given = dict(cfg.limits or {})
    api = given.pop("api_elements", None)
    try:
        limits = ServerLimits().replace(max_request_size=cfg.max_request_size, **given)
        if api:
            limits = dataclasses.replace(limits, api_elements={**limits.api_elements, **api})
    except ConfigError as e:
        raise ServeError(f"limits: {e}") from None
    return limits


def _show_source(source: str) -> str:
    kind, _, rest = source.partition(":")
    return f"{kind} {rest}" if rest else kind


def print_config(cfg: BrokerConfig) -> None:
    """Every effective value and where it came from (unset limits: the server's default)."""
    limits = server_limits(cfg)
    rows = []
    for key, value, source in cfg.items():
        if key.startswith("limits.") and value is None and "api_elements" not in key:
            value = getattr(limits, key[len("limits."):])
        shown = "(unset)" if value is None else str(value).lower() if isinstance(value, bool) \
            else str(value)
        rows.append((key, shown, _show_source(source)))
    width = max(len(r[0]) for r in rows)
    vwidth = min(max(len(r[1]) for r in rows), 40)
    for key, shown, source in rows:
        click.echo(f"{key.ljust(width)}  {shown.ljust(vwidth)}  {source}")


def ops_settings(cfg: BrokerConfig, verbose: bool) -> dict[str, Any]:
    """Set up logging; the ``run_server`` keyword arguments of ``http`` and ``advertise``."""
    configure_logging(cfg.log_level or ("debug" if verbose else "info"),
                      cfg.log_format or "text")
    out: dict[str, Any] = {}
    if cfg.http:
        out["http_listen"] = split_host_port(cfg.http, "http")
    if cfg.advertise:
        host, port = split_host_port(cfg.advertise, "advertise", port_optional=True)
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
