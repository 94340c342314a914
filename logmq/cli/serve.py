"""``logmq serve``: run the Kafka-protocol server on a data directory."""

from __future__ import annotations

import os
import secrets
from typing import Any

import click

from logmq.ops.serve_options import (
    OPS_KEYS,
    ServeError,
    ops_options,
    ops_settings,
    startup_errors,
)


def _split_listen(listen: str, option: str = "--listen") -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {listen!r}", param_hint=option)
    return host.strip("[]"), int(port)


def _authkey(path: str) -> bytes:
    """The queue server's key: read from ``path``, or made there (0600) for local workers."""
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    with open(path) as f:
        text = f.read().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise click.BadParameter(f"{path}: expected a hex key",
                                 param_hint="--queue-authkey-file") from None
    if len(key) < 16:
        raise click.BadParameter(f"{path}: a key needs at least 16 bytes (32 hex digits)",
                                 param_hint="--queue-authkey-file")
    return key


@click.command()
@click.option("--data", default=None, envvar="LOGMQ_DATA",
              help="data directory (env LOGMQ_DATA)  [default: logmq-data]")
@click.option("--listen", default=None, help="HOST:PORT  [default: 127.0.0.1:9092]")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              envvar="LOGMQ_CONFIG",
              help="(env LOGMQ_CONFIG) TOML file: data, listen, max_request_size, auto_create_topics, "
                   "num_partitions, and a [topic_defaults] table of topic configs")
@click.option("--queue-listen", default=None, metavar="HOST:PORT",
              help="also serve share groups to RemoteQueue workers in other processes")
@click.option("--queue-authkey-file", default=None, type=click.Path(dir_okay=False),
              help="hex key RemoteQueue clients must present  [default: DATA/queue.authkey, "
                   "created (mode 0600) if missing]")
@click.option("--limit", "limits", multiple=True, metavar="NAME=VALUE",
              help="a server limit, e.g. max_connections=100 (see README, Limits)")
@click.option("--ready-file", hidden=True, help="write HOST:PORT here once listening")
@click.option("-v", "--verbose", is_flag=True)
@ops_options
def serve(data: str | None, listen: str | None, config_file: str | None,
          queue_listen: str | None, queue_authkey_file: str | None,
          limits: tuple[str, ...], ready_file: str | None, verbose: bool) -> None:
    """Serve a data directory to Kafka clients (confluent-kafka, kafka-python, aiokafka, kcat).

    With --queue-listen, worker processes share its work queues too:

    \b
        key = bytes.fromhex(open("logmq-data/queue.authkey").read())
        q = logmq.RemoteQueue(("127.0.0.1", 9093), "jobs", group="workers", authkey=key)
    """
    from logmq.config import load_broker_config
    from logmq.errors import ConfigError
    from logmq.server import run_server

    given = {k: v for k, v in (("data", data), ("listen", listen)) if v is not None}
    try:
        cfg = load_broker_config(given, file=config_file, env=os.environ)
    except ConfigError as e:
        raise ServeError(str(e)) from None
    data = cfg.data
    host, port = _split_listen(cfg.listen)
    extra: dict[str, Any] = {}
    if queue_listen:
        extra["queue_listen"] = _split_listen(queue_listen, "--queue-listen")
        extra["queue_authkey"] = _authkey(queue_authkey_file or os.path.join(data, "queue.authkey"))
    server_limits = dict(cfg.limits or {})
    if limits:
        from logmq.server.limits import parse_limit

        try:
            server_limits.update(dict(map(parse_limit, limits)))
        except ConfigError as e:
            raise click.BadParameter(str(e), param_hint="--limit") from None
    if server_limits:
        extra["limits"] = server_limits
    # --http, --advertise, --log-level/--log-format: flags over the file's/environment's values
    ops = ops_settings({k: getattr(cfg, k) for k in OPS_KEYS if getattr(cfg, k) is not None},
                       verbose)
    with startup_errors():
        run_server(data, host, port, ready_file=ready_file, config=cfg, **extra, **ops)
