"""The few file-system steps durability rests on, in one place.

A rename or a new file is durable only once its directory is fsynced; a replaced file is
crash-safe only if written elsewhere, fsynced, then renamed over the old one. Every storage
module uses these helpers so the rules are written (and reviewed) once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

__all__ = ["fsync_path", "write_file_atomically", "unlink_quiet", "fdatasync"]

#: Called with the seconds each segment fdatasync took; logmq.ops installs its histogram here.
fsync_observer: Callable[[float], None] | None = None


def fdatasync(fd: int) -> None:
    """``os.fdatasync``, timed for the fsync-duration metric when an observer is installed."""
    obs = fsync_observer
    if obs is None:
        os.fdatasync(fd)
        return
    t0 = time.perf_counter()
    os.fdatasync(fd)
    obs(time.perf_counter() - t0)


def fsync_path(path: str) -> None:
    """fsync a file or a directory by name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomically(path: str, data: bytes) -> None:
    """Replace ``path`` so that a crash leaves either the old or the new content, never a mix."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(os.path.dirname(path) or ".")


def unlink_quiet(path: str) -> None:
    """Remove ``path`` if it exists (recovery steps must be repeatable)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
