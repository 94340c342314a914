"""What every ``logmq`` subcommand shares: where the log is, parsing, output, error reporting.

Opening the log goes through :func:`open_broker` only, never ``logmq.open`` directly. That is
the seam for ``--bootstrap host:port`` (talk to a running ``logmq serve`` instead of owning
the directory): :func:`target_options` adds the option and ``open_broker`` returns a
:class:`~logmq.cli.remote.RemoteLog` with the same methods the commands use. Commands that
read files directly (``dump``, ``verify``) are local by nature and keep ``--data`` only.

Times on the command line are milliseconds since the epoch, ISO-8601 datetimes (a missing
zone means UTC, so a command gives the same answer on every machine), ``now``, or ``-``
followed by a duration (``-1h``: an hour ago). Durations are ISO-8601 (``PT1H``, ``P1DT2H``)
or compact (``1h30m``, ``45s``, ``500ms``, ``2d``).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from logmq.broker.ratelimit import TokenBucket
from logmq.errors import LogMQError
from logmq.types import Record, TopicPartition

if TYPE_CHECKING:
    from logmq.broker.broker import Broker
    from logmq.broker.consumer import Consumer
    from logmq.config import BrokerConfig

__all__ = [
    "DEFAULT_DATA",
    "BROKER_OVERRIDE",
    "LogMQGroup",
    "data_option",
    "command_config",
    "SettingsError",
    "target_options",
    "open_broker",
    "parse_time",
    "parse_duration",
    "parse_kv",
    "record_to_json",
    "record_from_json",
    "show_bytes",
    "print_table",
    "read_records",
    "TokenBucket",
]

DEFAULT_DATA = "logmq-data"

#: When set, :func:`open_broker` returns ``BROKER_OVERRIDE(data)`` instead of opening the
#: directory, and does not close it. One process owns a data directory (flock), so a process
#: that already holds it open (a test with an embedded consumer in a group, an application
#: embedding the CLI) has no other way to run commands on it. Never set by the CLI itself.
BROKER_OVERRIDE: Callable[[str], Broker] | None = None

F = TypeVar("F", bound=Callable[..., Any])


class LogMQGroup(click.Group):
    """A click group that turns logmq's own errors into one line on stderr and exit code 1.

    A :class:`~logmq.errors.LogMQError` reaching the top is a user-facing condition (unknown
    topic, locked directory, corrupt file), not a bug, so it gets no traceback. A closed
    stdout (``logmq consume t | head``) ends the command quietly, like other Unix tools.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LogMQError as e:
            raise click.ClickException(str(e)) from None
        except BrokenPipeError:
            _silence_stdout()
            ctx.exit(1)


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


class SettingsError(click.ClickException):
    """A bad setting (file, ``LOGMQ_*`` variable, option): one line, exit code 2."""

    exit_code = 2


def command_config(**forced: Any) -> BrokerConfig:
    """The settings a command runs with: ``--data``/``--config-file`` > ``LOGMQ_*`` > file.

    The same table and precedence as ``logmq serve`` (logmq.config), so ``$LOGMQ_DATA`` and a
    config file's ``data`` and ``[topic_defaults]`` mean the same to every command. ``forced``
    (``cleaner=False``...) are the command's own choices and win over everything.
    """
    from logmq.config_load import load_broker_config
    from logmq.errors import ConfigError

    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    config_file = meta.get("logmq.config_file") or os.environ.get("LOGMQ_CONFIG") or None
    flags = {"data": meta["logmq.data"]} if meta.get("logmq.data") else {}
    try:
        return load_broker_config(forced, file=config_file, env=os.environ, flags=flags)
    except ConfigError as e:
        raise SettingsError(str(e)) from None


def data_option(f: F) -> F:
    """``--data DIR``: the flag, else ``$LOGMQ_DATA``, else the config file's ``data``."""

    @functools.wraps(f)
    def resolved(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        ctx.meta["logmq.data"] = kwargs.get("data")
        kwargs["data"] = command_config().data
        return f(*args, **kwargs)

    return click.option(  # type: ignore[return-value]
        "--data", default=None, metavar="DIR", type=click.Path(file_okay=False),
        help=f"data directory (env LOGMQ_DATA, or data in the config file)  "
             f"[default: {DEFAULT_DATA}]",
    )(resolved)


def _remember_bootstrap(ctx: click.Context, _param: click.Parameter,
                        value: str | None) -> None:
    if value:
        ctx.meta["logmq.bootstrap"] = value


def _remember_kafka_config(ctx: click.Context, _param: click.Parameter,
                           value: str | None) -> None:
    if value:
        ctx.meta["logmq.kafka_config"] = value


def _remember_config_file(ctx: click.Context, _param: click.Parameter,
                          value: str | None) -> None:
    if value:
        ctx.meta["logmq.config_file"] = value


def config_file_option(f: F) -> F:
    """``--config-file FILE`` (env ``LOGMQ_CONFIG``): the TOML file ``logmq serve`` reads."""
    return click.option(
        "--config-file", envvar="LOGMQ_CONFIG", metavar="FILE", expose_value=False,
        type=click.Path(exists=True, dir_okay=False), callback=_remember_config_file,
        help="TOML file as for `serve --config`: its data, [topic_defaults] and other "
             "settings apply to this command too (env LOGMQ_CONFIG)")(f)


def target_options(f: F) -> F:
    """Where the log is: ``--data DIR`` (owned by this command) or ``--bootstrap HOST:PORT``.

    ``--bootstrap`` (or ``$LOGMQ_BOOTSTRAP``) talks to a running ``logmq serve`` through
    :class:`~logmq.cli.remote.RemoteLog`; it is kept in the click context so commands keep
    their signatures and only :func:`open_broker` decides.
    """
    f = click.option("--kafka-config", envvar="LOGMQ_KAFKA_CONFIG", metavar="FILE",
                     expose_value=False, callback=_remember_kafka_config,
                     type=click.Path(exists=True, dir_okay=False),
                     help="client settings for --bootstrap: a properties file (librdkafka "
                          "names: security.protocol, sasl.mechanism, sasl.username, ...)")(f)
    f = click.option("--bootstrap", "-b", envvar="LOGMQ_BOOTSTRAP", metavar="HOST:PORT",
                     expose_value=False, callback=_remember_bootstrap,
                     help="work on a cluster instead of a data directory: Apache Kafka or "
                          "`logmq serve` (HOST:PORT[,...] or a kafka:// URL with settings)")(f)
    return data_option(config_file_option(f))


@contextmanager
def open_broker(data: str, *, create: bool = False) -> Iterator[Broker]:
    """The data directory opened for one command: no cleaner thread, no topic auto-creation.

    Without ``create`` a missing directory is an error instead of an empty log silently made
    where a path was mistyped. Retention and compaction are left to ``logmq compact`` and to
    long-running owners (``logmq serve``, applications): a command that only looks must not
    delete segments as a side effect.
    """
    if BROKER_OVERRIDE is not None:
        yield BROKER_OVERRIDE(data)
        return
    ctx = click.get_current_context(silent=True)
    bootstrap = ctx.meta.get("logmq.bootstrap") if ctx is not None else None
    if bootstrap or str(data).startswith("kafka://"):  # any cluster: logmq/cli/target.py
        from logmq.cli.target import open_cluster

        with open_cluster(bootstrap or data, ctx.meta.get("logmq.kafka_config")
                          if ctx is not None else None) as cluster:
            yield cluster
        return
    if not create and not os.path.isdir(os.path.join(data, "meta")):
        raise click.ClickException(
            f"no logmq data directory at {data!r} (pass --data, or create a topic first)")
    from logmq.broker.broker import Broker

    cfg = command_config(cleaner=False, auto_create_topics=False)
    broker = Broker(data, config=cfg)
    try:
        yield broker
    finally:
        broker.close()


# ---------------------------------------------------------------------- parsing
_DURATION_ISO = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|w|d|h|m|s)", re.IGNORECASE)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
            "w": 7 * 86_400_000}


def parse_duration(text: str) -> int:
    """Milliseconds in ``PT1H``/``P1DT2H30M``/``1h30m``/``500ms``; ValueError otherwise."""
    s = text.strip()
    m = _DURATION_ISO.match(s)
    if m and s.upper() not in ("P", "PT") and not s.upper().endswith("T"):
        total = 0.0
        for unit, key in (("w", "w"), ("d", "d"), ("h", "h"), ("m", "m"), ("s", "s")):
            if m.group(key):
                total += float(m.group(key)) * _UNIT_MS[unit]
        return int(total)
    parts = _DURATION_PART.findall(s)
    if parts and "".join(n + u for n, u in parts).lower() == s.lower():
        return int(sum(float(n) * _UNIT_MS[u.lower()] for n, u in parts))
    raise ValueError(f"not a duration: {text!r} (examples: PT1H, P1D, 1h30m, 45s, 500ms)")


def parse_time(text: str, now_ms: int | None = None) -> int:
    """Epoch milliseconds from ms digits, an ISO datetime (UTC if no zone), now or -DURATION."""
    s = text.strip()
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if re.fullmatch(r"\d+", s):
        return int(s)
    if s.lower() == "now":
        return now
    if s.startswith("-") and len(s) > 1:
        return now - parse_duration(s[1:])
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (use epoch ms, an ISO datetime such as "
            "2026-11-24T10:00:00Z, 'now' or '-1h')") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


class TimeParam(click.ParamType):
    """A click type for :func:`parse_time`, so bad times are usage errors (exit 2)."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_time(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


class DurationParam(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


TIME = TimeParam()
DURATION = DurationParam()


def parse_kv(items: tuple[str, ...] | list[str], what: str) -> dict[str, str]:
    """``("k=v", ...)`` to a dict; a malformed item is a usage error naming the option."""
    out: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=what)
        out[k.strip()] = v
    return out


# ---------------------------------------------------------------------- record output
def _text_or_b64(data: bytes) -> tuple[str, bool]:
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), True


def record_to_json(r: Record) -> str:
    """One JSON line per record: what ``consume --format json`` and ``replay`` print.

    Bytes that are valid UTF-8 are shown as text; others as base64 with ``key_encoding`` /
    ``value_encoding`` (or a header's ``value_encoding``) set to ``"base64"``, so the line
    round-trips exactly through :func:`record_from_json` (``produce --format json``).
    """
    out: dict[str, Any] = {"topic": r.topic, "partition": r.partition, "offset": r.offset,
                           "timestamp": r.timestamp}
    for name, data in (("key", r.key), ("value", r.value)):
        if data is None:
            out[name] = None
        else:
            out[name], b64 = _text_or_b64(bytes(data))
            if b64:
                out[name + "_encoding"] = "base64"
    headers = []
    for hk, hv in r.headers or ():
        h: dict[str, Any] = {"key": hk}
        if hv is None:
            h["value"] = None
        else:
            h["value"], b64 = _text_or_b64(bytes(hv))
            if b64:
                h["value_encoding"] = "base64"
        headers.append(h)
    out["headers"] = headers
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def _decode_field(obj: Mapping[str, Any], name: str) -> bytes | None:
    v = obj.get(name)
    if v is None:
        return None
    if not isinstance(v, str):
        v = json.dumps(v)  # a number or object as value: keep its JSON text
    if obj.get(name + "_encoding") == "base64":
        return base64.b64decode(v)
    return v.encode("utf-8")


def record_from_json(line: str) -> tuple[bytes | None, bytes | None,
                                         list[tuple[str, bytes | None]], int | None]:
    """(key, value, headers, timestamp) from a line :func:`record_to_json` wrote."""
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    headers: list[tuple[str, bytes | None]] = []
    raw = obj.get("headers") or []
    if isinstance(raw, dict):
        raw = [{"key": k, "value": v} for k, v in raw.items()]
    for h in raw:
        if isinstance(h, list | tuple):
            h = {"key": h[0], "value": h[1]}
        headers.append((str(h["key"]), _decode_field(h, "value")))
    ts = obj.get("timestamp")
    return (_decode_field(obj, "key"), _decode_field(obj, "value"), headers,
            None if ts is None else int(ts))


def show_bytes(data: bytes | None, limit: int = 200) -> str:
    """Human display of a key/value in dumps: JSON-quoted text, or base64: for binary."""
    if data is None:
        return "null"
    text, b64 = _text_or_b64(bytes(data))
    shown = ("base64:" + text) if b64 else json.dumps(text, ensure_ascii=False)
    return shown if len(shown) <= limit else shown[:limit] + f"...({len(data)} bytes)"


def print_table(headers: list[str], rows: Sequence[Sequence[Any]]) -> None:
    """Left-aligned columns, two spaces apart: readable and still ``awk``-friendly."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


# ---------------------------------------------------------------------- reading ranges
#: how long a cluster read waits for a group assignment, or for progress below its stops
_CLUSTER_PATIENCE_S = 30.0


def read_records(
    consumer: Consumer,
    *,
    stop_offsets: Mapping[TopicPartition, int] | None = None,
    stop_time: int | None = None,
    follow: bool = False,
    limit: int | None = None,
    poll_timeout: float = 1.0,
    wait: bool = False,
) -> Iterator[list[Record]]:
    """Chunks of records from ``consumer`` until the end of the log (or a stop condition).

    ``stop_offsets`` are exclusive per partition; ``stop_time`` stops a partition at its
    first record with a timestamp >= it. Without ``follow`` the log's end is where a poll
    returns nothing and moves no position: a position can sit below the end offset for good
    (compaction removed the last offsets), so comparing with end offsets alone could spin.

    ``wait`` (a cluster, where records arrive a fetch round trip after the poll) polls with
    ``poll_timeout`` even without ``follow``, waits up to 30 s for a group assignment, and,
    while a partition's position is still below its stop offset, keeps polling through empty
    polls (a cluster client's first fetch of a new topic can take longer than one poll while
    it learns the leader) until 30 s pass without progress.
    """
    done: set[TopicPartition] = set()
    left = limit
    join_deadline = time.monotonic() + _CLUSTER_PATIENCE_S
    stall_deadline = time.monotonic() + _CLUSTER_PATIENCE_S
    while True:
        if left is not None and left <= 0:
            return
        before = {tp: consumer.position(tp) for tp in consumer.assignment()}
        if stop_offsets is not None:
            for tp, pos in before.items():
                if tp not in done and pos >= stop_offsets.get(tp, pos + 1):
                    done.add(tp)
                    consumer.pause(tp)
            if before and done >= set(before):
                return
        recs = consumer.poll(timeout=poll_timeout if follow or wait else 0.0, max_records=left)
        out: list[Record] = []
        for r in recs:
            tp = r.tp
            if tp in done:
                continue
            if (stop_offsets is not None and r.offset >= stop_offsets.get(tp, r.offset + 1)) or (
                    stop_time is not None and r.timestamp >= stop_time):
                done.add(tp)
                consumer.pause(tp)
                continue
            out.append(r)
        if out:
            if left is not None:
                out = out[:left]
                left -= len(out)
            yield out
        assigned = consumer.assignment()
        if assigned and done >= assigned:
            return
        if not recs and not follow:
            if wait and not assigned and time.monotonic() < join_deadline:
                continue  # a cluster's group assignment arrives after a few polls
            after = {tp: consumer.position(tp) for tp in assigned}
            if after != before:
                stall_deadline = time.monotonic() + _CLUSTER_PATIENCE_S
            elif wait and stop_offsets is not None and time.monotonic() < stall_deadline and any(
                    tp not in done and pos < stop_offsets.get(tp, pos) for tp, pos in after.items()):
                continue  # records are known to exist below the stops: not the end yet
            else:
                return
        elif recs:
            stall_deadline = time.monotonic() + _CLUSTER_PATIENCE_S


def utc_iso(ms: int) -> str:
    """``2026-11-24T10:00:00.000Z`` for a ms timestamp (-1 and other negatives as-is)."""
    if ms < 0:
        return str(ms)
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    except (OverflowError, OSError, ValueError):
        return str(ms)
