"""``logmq serve``: run the Kafka-protocol server on a data directory."""

from __future__ import annotations

import logging
import tomllib
from typing import Any

import click


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {listen!r}", param_hint="--listen")
    return host.strip("[]"), int(port)


@click.command()
@click.option("--data", default=None, help="data directory  [default: logmq-data]")
@click.option("--listen", default=None, help="HOST:PORT  [default: 127.0.0.1:9092]")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="TOML file: data, listen, max_request_size, auto_create_topics, "
                   "num_partitions, and a [topic_defaults] table of topic configs")
@click.option("--ready-file", hidden=True, help="write HOST:PORT here once listening")
@click.option("-v", "--verbose", is_flag=True)
def serve(data: str | None, listen: str | None, config_file: str | None,
          ready_file: str | None, verbose: bool) -> None:
    """Serve a data directory to Kafka clients (confluent-kafka, kafka-python, aiokafka, kcat)."""
    from logmq.server import run_server

    cfg: dict[str, Any] = {}
    if config_file:
        with open(config_file, "rb") as f:
            cfg = tomllib.load(f)
    data = data or cfg.pop("data", "logmq-data")
    cfg.pop("data", None)
    listen = listen or cfg.pop("listen", "127.0.0.1:9092")
    cfg.pop("listen", None)
    host, port = _split_listen(listen)
    defaults = {k.replace(".", "_"): v for k, v in cfg.pop("topic_defaults", {}).items()}
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_server(data, host, port, ready_file=ready_file, **cfg, **defaults)
