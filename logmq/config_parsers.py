"""Value parsers of the configuration table (:mod:`logmq.config`): one per kind of value.

Each takes what a file, an environment variable, a flag or a keyword argument gave and returns
the typed value or raises ValueError with the reason, which the loader turns into a one-line
error naming the key and where it came from. Strings are accepted for every type, since
environment variables and flags are strings; a TOML file's values are also type-checked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

FSYNC_MODES = ("always", "interval", "never")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")


def _as_int(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("expected an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            raise ValueError("expected an integer") from None
    raise ValueError("expected an integer")


def _int(lo: int | None = None) -> Callable[[Any], int]:
    def parse(v: Any) -> int:
        n = _as_int(v)
        if lo is not None and n < lo:
            raise ValueError(f"must be >= {lo}")
        return n

    return parse


def _opt_int(v: Any) -> int | None:
    if v is None or v == "" or v == "null":
        return None
    n = _as_int(v)
    if n < 1:
        raise ValueError("must be >= 1")
    return n


def _float(lo: float | None = None) -> Callable[[Any], float]:
    def parse(v: Any) -> float:
        if isinstance(v, bool):
            raise ValueError("expected a number")
        x = float(v)
        if lo is not None and x < lo:
            raise ValueError(f"must be >= {lo}")
        return x

    return parse


def _opt_rate(v: Any) -> float | None:
    if v is None or v == "" or v == "null" or v == "none":
        return None
    x = _float()(v)
    if x <= 0:
        raise ValueError("must be > 0 (or unset for no limit)")
    return x


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("expected a string")
    return v


def _opt_str(v: Any) -> str | None:
    return None if v is None or v == "" else _str(v)


def _opt_table(v: Any) -> dict[str, Any] | None:
    if v is None:
        return None
    if not isinstance(v, Mapping):
        raise ValueError("expected a table")
    return dict(v)


def _policy(v: Any) -> str:
    parts = sorted(p.strip() for p in str(v).split(",") if p.strip())
    if not parts or any(p not in ("delete", "compact") for p in parts):
        raise ValueError("must be delete, compact or compact,delete")
    return ",".join(sorted(set(parts)))


def _fsync(v: Any) -> str:
    s = str(v)
    if s not in FSYNC_MODES:
        raise ValueError(f"must be one of {', '.join(FSYNC_MODES)}")
    return s


def _ts_type(v: Any) -> str:
    s = str(v)
    if s != "CreateTime":
        raise ValueError("only CreateTime is supported")
    return s


def _choice(*allowed: str) -> Callable[[Any], str | None]:
    def parse(v: Any) -> str | None:
        if v is None or v == "":
            return None
        s = _str(v).lower()
        if s not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return s

    return parse


def _hostport(*, optional: bool = False, port_optional: bool = False
              ) -> Callable[[Any], str | None]:
    """``HOST:PORT`` (IPv6 hosts in brackets), checked here so a bad one names its key."""

    def parse(v: Any) -> str | None:
        if optional and (v is None or v == ""):
            return None
        s = _str(v).strip()
        if "://" in s:  # advertised.listeners style: PLAINTEXT://host:port
            s = s.split(",")[0].split("://", 1)[1]
        host, sep, port = s.rpartition(":")
        if not sep and port_optional and s and "]" not in s:
            return s
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("expected HOST:PORT" + ("" if not port_optional else " or HOST")
                             + " (port 0-65535)")
        return s

    return parse



_LISTENER_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def _listener_items(v: Any) -> list[str]:
    items = [_str(x) for x in v] if isinstance(v, list | tuple) else _str(v).split(",")
    return [i.strip() for i in items if i.strip()]


def _listener_item(item: str, *, bare_ok: bool) -> None:
    name, sep, rest = item.partition("://")
    if sep and name.upper() not in _LISTENER_PROTOCOLS:
        raise ValueError(f"unknown listener {name!r} (one of {', '.join(_LISTENER_PROTOCOLS)})")
    if not sep and not bare_ok:
        raise ValueError(f"expected PROTOCOL://HOST:PORT, got {item!r}")
    host, hsep, port = (rest if sep else item).rpartition(":")
    if not hsep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected HOST:PORT or PROTOCOL://HOST:PORT (port 0-65535)")


def _listeners(v: Any) -> str:
    """Kafka's ``listeners``: ``[PROTOCOL://]HOST:PORT`` items, comma-separated or a list
    (a bare HOST:PORT is PLAINTEXT); kept as one comma-separated string."""
    items = _listener_items(v)
    if not items:
        raise ValueError("expected HOST:PORT or PROTOCOL://HOST:PORT")
    for item in items:
        _listener_item(item, bare_ok=True)
    return ",".join(items)


def _advertised(v: Any) -> str | None:
    """``HOST[:PORT]``, or Kafka's ``advertised.listeners`` (``SASL_SSL://h:9093,...``);
    a single ``PLAINTEXT://HOST:PORT`` is kept as ``HOST:PORT``, as before listeners."""
    if v is None or v == "":
        return None
    items = _listener_items(v)
    if len(items) == 1 and "://" not in items[0]:
        return _hostport(optional=True, port_optional=True)(items[0])
    if len(items) == 1 and items[0].upper().startswith("PLAINTEXT://"):
        return _hostport()(items[0])
    for item in items:
        _listener_item(item, bare_ok=False)
    return ",".join(items)
