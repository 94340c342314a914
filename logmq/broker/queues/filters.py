"""Subscription filters: a predicate, or a declarative match on key and headers.

Consumers and queues take ``filter=``. A callable gets the record and returns True to keep
it. A mapping is a declarative match, all conditions must hold:

``{"key": b"k"}`` or ``{"key": [b"a", b"b"]}``
    the key equals one of the values;
``{"key_prefix": b"eu-"}``
    the key starts with it;
``{"headers": {"type": b"order"}}``, ``{"headers": {"type": [b"a", b"b"]}}``
    the (last) header of that name equals one of the values; a value of ``None`` only asks
    that the header is present; ``str`` values are compared as UTF-8.

Declarative filters exist because they can be sent to another process (``RemoteQueue``) and
described, which a lambda cannot. For a queue, a record the filter drops is acknowledged for
that group (it is done: nobody in the group will get it), so members of one share group should
use the same filter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from logmq.errors import ConfigError

__all__ = ["RecordFilter", "make_filter"]

FilterSpec = Callable[[Any], bool] | Mapping[str, Any]


def _as_set(v: Any, what: str) -> frozenset[bytes]:
    items = v if isinstance(v, list | tuple | set | frozenset) else [v]
    out = set()
    for x in items:
        if isinstance(x, str):
            x = x.encode()
        if not isinstance(x, bytes | bytearray):
            raise ConfigError(f"filter {what} values must be bytes or str, got {x!r}")
        out.add(bytes(x))
    return frozenset(out)


class RecordFilter:
    """A compiled declarative filter (see the module docstring)."""

    __slots__ = ("spec", "keys", "key_prefix", "headers")

    def __init__(self, spec: Mapping[str, Any]) -> None:
        unknown = set(spec) - {"key", "key_prefix", "headers"}
        if unknown:
            raise ConfigError(f"unknown filter fields: {', '.join(sorted(unknown))} "
                              "(use key, key_prefix, headers)")
        self.spec = dict(spec)
        self.keys = _as_set(spec["key"], "key") if "key" in spec else None
        kp = spec.get("key_prefix")
        self.key_prefix = kp.encode() if isinstance(kp, str) else kp
        self.headers: list[tuple[str, frozenset[bytes] | None]] = []
        for name, want in (spec.get("headers") or {}).items():
            self.headers.append((str(name), None if want is None else _as_set(want, "header")))

    def __call__(self, record: Any) -> bool:
        key = record.key
        if self.keys is not None and (key is None or bytes(key) not in self.keys):
            return False
        if self.key_prefix is not None and (key is None or not bytes(key).startswith(
                self.key_prefix)):
            return False
        if self.headers:
            hdrs = record.headers or ()
            for name, want in self.headers:
                found = None
                present = False
                for k, v in hdrs:
                    if k == name:
                        found, present = v, True
                if not present:
                    return False
                if want is not None and (found is None or bytes(found) not in want):
                    return False
        return True

    def __repr__(self) -> str:
        return f"RecordFilter({self.spec!r})"


def make_filter(spec: FilterSpec | None) -> Callable[[Any], bool] | None:
    """A callable filter from a predicate or a declarative mapping (None: no filter)."""
    if spec is None or isinstance(spec, RecordFilter):
        return spec
    if isinstance(spec, Mapping):
        return RecordFilter(spec)
    if callable(spec):
        return spec
    raise ConfigError(f"filter must be a callable or a mapping, got {type(spec).__name__}")
