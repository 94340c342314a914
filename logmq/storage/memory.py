"""``logmq.open(":memory:")``: a data directory that lives in memory and dies with the process.

Why a private directory on a memory file system rather than in-memory segment objects: every
path of the storage layer (mmap'd indexes, ``sendfile`` of segment bytes to Kafka clients,
recovery, compaction's swap, LMDB) works on files. A second, dict-backed implementation of
all of them would be a second engine whose semantics drift from the first; a directory on
tmpfs runs the very same code, so ``:memory:`` has the same semantics by construction, and
what it saves is what tests pay for: waiting for a disk. So:

- the directory is made with :func:`tempfile.mkdtemp` (mode 0700, a random name nobody else
  is told) under ``/dev/shm`` when that is a writable memory file system, else under the
  temporary directory (on a disk then, but still never fsynced);
- :func:`logmq.storage.fsutil.fsync_fd` skips every path under it (a storage-level switch a
  topic's ``fsync=always`` cannot override) and LMDB is opened with ``sync=False``;
- it is removed on close, at process exit (:func:`weakref.finalize`), and a directory left
  by a process that was killed is removed by the next ``:memory:`` open on the machine (its
  owner's pid is in the name and its lock is free).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import weakref

from logmq.storage import fsutil

__all__ = ["MEMORY", "is_memory_path", "memory_root", "MemoryDir"]

#: the path that means "in memory", as in SQLite
MEMORY = ":memory:"
_PREFIX = "logmq-mem-"
_NAME = re.compile(re.escape(_PREFIX) + r"(\d+)-")
_SHM = "/dev/shm"


def is_memory_path(path: str | os.PathLike[str]) -> bool:
    return isinstance(path, str) and path == MEMORY


def memory_root() -> str:
    """``/dev/shm`` when it is a writable directory, else the temporary directory."""
    if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK | os.X_OK):
        return _SHM
    return tempfile.gettempdir()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(root: str) -> None:
    """Remove directories of dead processes (killed before they could remove their own)."""
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        m = _NAME.match(name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        full = os.path.join(root, name)
        try:  # a live owner holds the lock; a free lock with a dead pid is a leftover
            fd = os.open(os.path.join(full, ".lock"), os.O_RDWR)
        except FileNotFoundError:
            fd = -1
        except OSError:
            continue
        try:
            if fd >= 0:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue
        finally:
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(full, ignore_errors=True)


def _remove(path: str) -> None:
    fsutil.set_volatile(path, False)
    shutil.rmtree(path, ignore_errors=True)


class MemoryDir:
    """One ``:memory:`` data directory: made now, removed by :meth:`remove` or at exit."""

    def __init__(self, root: str | None = None) -> None:
        root = memory_root() if root is None else root
        _sweep(root)
        self.path = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=root)
        fsutil.set_volatile(self.path, True)
        self._finalizer = weakref.finalize(self, _remove, self.path)

    def remove(self) -> None:
        self._finalizer()

    @property
    def removed(self) -> bool:
        return not self._finalizer.alive
