"""Old import path of :mod:`logmq.wire_client` (the name clashed with ``logmq.cli``)."""

from logmq.wire_client import WireClient, WireError

__all__ = ["WireClient", "WireError"]
