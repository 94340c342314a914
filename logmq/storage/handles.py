"""A process-wide LRU of open segment descriptors, so partitions do not each hold one.

A broker with 100,000 partitions would otherwise need 100,000 descriptors just to open (and
fail with EMFILE at every start once such a topic exists). Segments open their ``.log`` on
first use and the least recently used descriptors are closed once more than
:func:`capacity` are open. Default cap: 1024, or a quarter of the soft ``RLIMIT_NOFILE``
if that is smaller; ``LOGMQ_MAX_OPEN_SEGMENTS`` or :func:`set_capacity` changes it.

A descriptor lives in a :class:`FileHandle`, closed when the last reference to it goes (not
when the cache evicts it): a fetch holding a slice, or a reader in the middle of a scan,
keeps its descriptor valid however busy the cache is. Index files are not cached; they are
opened only to load or to append entries.
"""

from __future__ import annotations

import os
import resource
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["FileHandle", "HandleCache", "CACHE", "capacity", "set_capacity", "open_count",
           "DEFAULT_CAPACITY"]

DEFAULT_CAPACITY = 1024


class FileHandle:
    """One open descriptor; closed when garbage (CPython: when the last reference drops)."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass


class HandleCache:
    """Owners (segments) keyed by ``id``; each owner keeps its handle in ``owner._handle``.

    The cache holds owners weakly, so a segment dropped without close (a failed open) still
    releases its descriptor.
    """

    def __init__(self, cap: int) -> None:
        self.cap = max(1, cap)
        self._lru: OrderedDict[int, weakref.ref[object]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, owner: object, opener: Callable[[], int]) -> FileHandle:
        with self._lock:
            h: FileHandle | None = owner._handle  # type: ignore[attr-defined]
            key = id(owner)
            if h is not None:
                if key in self._lru:
                    self._lru.move_to_end(key)
                return h
            h = FileHandle(opener())
            owner._handle = h  # type: ignore[attr-defined]
            self._lru[key] = weakref.ref(owner)
            self._lru.move_to_end(key)
            while len(self._lru) > self.cap:
                _, ref = self._lru.popitem(last=False)
                victim = ref()
                if victim is not None:
                    victim._handle = None  # type: ignore[attr-defined]
            return h

    def forget(self, owner: object) -> None:
        """Drop the owner's handle (closed once unused); the owner may reopen later."""
        with self._lock:
            self._lru.pop(id(owner), None)
            owner._handle = None  # type: ignore[attr-defined]

    def pin(self, owner: object) -> None:
        """Stop evicting the owner's handle (its path is about to be unlinked or replaced)."""
        with self._lock:
            self._lru.pop(id(owner), None)

    def __len__(self) -> int:
        return len(self._lru)


def _default_capacity() -> int:
    env = os.environ.get("LOGMQ_MAX_OPEN_SEGMENTS")
    if env:
        return max(1, int(env))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return DEFAULT_CAPACITY
    return max(16, min(DEFAULT_CAPACITY, soft // 4))


CACHE = HandleCache(_default_capacity())


def capacity() -> int:
    return CACHE.cap


def set_capacity(n: int) -> None:
    """Change the cap (excess handles are evicted on the next open)."""
    CACHE.cap = max(1, int(n))


def open_count() -> int:
    """Segment descriptors the cache holds now (pinned ones not counted)."""
    return len(CACHE)
