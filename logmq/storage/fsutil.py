"""The few file-system steps durability rests on, in one place.

A rename or a new file is durable only once its directory is fsynced; a replaced file is
crash-safe only if written elsewhere, fsynced, then renamed over the old one. Every storage
module uses these helpers so the rules are written (and reviewed) once.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["fsync_path", "write_file_atomically", "unlink_quiet"]


def fsync_path(path: str) -> None:
    """fsync a file or a directory by name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomically(path: str, data: bytes, *, fsync: bool = True,
                          before_replace: Callable[[], None] | None = None) -> None:
    """Replace ``path`` so that a crash leaves either the old or the new content, never a mix.

    ``fsync=False`` is for files that can be rebuilt (indexes): the rename is still atomic,
    so a reader never sees a mix, but nothing waits for the disk. ``before_replace`` runs
    between the written temporary file and the rename (fault-injection tests).
    """
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    if before_replace is not None:
        before_replace()
    os.replace(tmp, path)
    if fsync:
        fsync_path(os.path.dirname(path) or ".")


def unlink_quiet(path: str) -> None:
    """Remove ``path`` if it exists (recovery steps must be repeatable)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
