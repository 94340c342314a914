"""Old import path of :class:`~logmq.storage.meta.MetaStore` (kept for callers)."""

from logmq.storage.meta import MetaStore

__all__ = ["MetaStore"]
