"""``logmq serve``: run the Kafka-protocol server on a data directory."""

from __future__ import annotations

import os
import secrets
from typing import Any

import click

from logmq.ops.serve_options import (
    ServeError,
    config_options,
    ops_settings,
    print_config,
    serve_config,
    server_limits,
    split_host_port,
    startup_errors,
)


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
        raise ServeError(f"queue_authkey_file {path}: expected a hex key") from None
    if len(key) < 16:
        raise ServeError(f"queue_authkey_file {path}: a key needs at least 16 bytes "
                         "(32 hex digits)")
    return key


@click.command()
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              envvar="LOGMQ_CONFIG", metavar="FILE",
              help="TOML file of settings (every option below by its key, e.g. "
                   "num_partitions = 3, a [limits] and a [topic_defaults] table); flags beat "
                   "LOGMQ_* variables, which beat the file (env LOGMQ_CONFIG)")
@click.option("--print-config", "show_config", is_flag=True,
              help="print every effective setting and where it came from, then exit")
@config_options
@click.option("--ready-file", hidden=True, help="write HOST:PORT here once listening")
@click.option("-v", "--verbose", is_flag=True, help="log at debug level (as --log-level debug)")
def serve(config_file: str | None, show_config: bool, ready_file: str | None,
          verbose: bool) -> None:
    """Serve a data directory to Kafka clients (confluent-kafka, kafka-python, aiokafka, kcat).

    Every setting is listed in docs/configuration.md; --print-config shows the effective ones.
    With --queue-listen, worker processes share its work queues too:

    \b
        key = bytes.fromhex(open("logmq-data/queue.authkey").read())
        q = logmq.RemoteQueue(("127.0.0.1", 9093), "jobs", group="workers", authkey=key)
    """
    from logmq.server import run_server
    from logmq.storage.memory import is_memory_path

    cfg = serve_config(config_file)
    if show_config:
        print_config(cfg)
        return
    data = cfg.data
    host, port = split_host_port(cfg.listen.split(",")[0], "listen")
    assert port is not None
    extra: dict[str, Any] = {}
    if cfg.queue_listen:
        extra["queue_listen"] = split_host_port(cfg.queue_listen, "queue_listen")
        keyfile = cfg.queue_authkey_file
        if keyfile is None:
            if is_memory_path(data):
                raise ServeError("queue_authkey_file: required with data = :memory: (the "
                                 "workers must be able to read the key)")
            keyfile = os.path.join(data, "queue.authkey")
        extra["queue_authkey"] = _authkey(keyfile)
    limits = server_limits(cfg)
    ops = ops_settings(cfg, verbose)
    with startup_errors():
        run_server(data, host, port, ready_file=ready_file, config=cfg, limits=limits,
                   **extra, **ops)
