"""The few file-system steps durability rests on, in one place.

A rename or a new file is durable only once its directory is fsynced; a replaced file is
crash-safe only if written elsewhere, fsynced, then renamed over the old one. Every storage
module uses these helpers so the rules are written (and reviewed) once.

Errors are translated here too, because what they mean for the log differs: a failed write
(``ENOSPC``, ``EDQUOT``, ``EFBIG``) is undone by the caller and the log stays usable, so it
becomes :class:`~logmq.errors.DiskFullError`; a failed fsync leaves the page cache in an
unknown state (Linux may already have dropped the dirty pages it could not write), so it
becomes :class:`~logmq.errors.LogDirFailedError` and the caller takes the partition offline.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable

from logmq.errors import DiskFullError, LogDirFailedError, StorageError

__all__ = ["fsync_path", "write_file_atomically", "unlink_quiet", "fsync_fd", "write_error",
           "NO_SPACE_ERRNOS", "fdatasync", "set_volatile"]

#: errnos that mean "no room for this write": retrying after space is freed can succeed
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

#: Called with the seconds each segment fdatasync took; logmq.ops installs its histogram here.
fsync_observer: Callable[[float], None] | None = None

#: Roots (ending in a separator) of in-memory data directories (``logmq.open(":memory:")``,
#: see :mod:`logmq.storage.memory`): nothing under them survives the process, so no fsync.
_volatile_roots: tuple[str, ...] = ()


def set_volatile(root: str, on: bool) -> None:
    """Stop (``on``) or resume fsyncing files and directories under the directory ``root``."""
    global _volatile_roots
    r = os.path.join(os.path.abspath(root), "")
    roots = set(_volatile_roots) - {r}
    _volatile_roots = tuple(roots | {r}) if on else tuple(roots)


def write_error(e: OSError, path: str, what: str) -> StorageError:
    """The typed error for a failed write of ``path`` (already rolled back by the caller)."""
    if isinstance(e, StorageError):
        return e
    cls = DiskFullError if e.errno in NO_SPACE_ERRNOS else StorageError
    return cls(f"{what} failed: {os.strerror(e.errno or 0)}", path=path, errno=e.errno)


def fsync_fd(fd: int, path: str, *, data_only: bool = False) -> None:
    """fsync (or fdatasync) ``fd``; a failure is a LogDirFailedError naming ``path``.

    Data syncs are timed for the fsync-duration metric when an observer is installed."""
    if _volatile_roots and os.path.join(path, "").startswith(_volatile_roots):
        return
    obs = fsync_observer if data_only else None
    t0 = time.perf_counter() if obs is not None else 0.0
    try:
        if data_only:
            os.fdatasync(fd)
        else:
            os.fsync(fd)
    except OSError as e:
        raise LogDirFailedError(
            f"fsync failed ({os.strerror(e.errno or 0)}): what the disk holds is unknown, so "
            "the partition is offline until the data directory is reopened",
            path=path, errno=e.errno) from None
    if obs is not None:
        obs(time.perf_counter() - t0)


def fdatasync(fd: int) -> None:
    """``os.fdatasync`` through :func:`fsync_fd` (timed, failure typed)."""
    fsync_fd(fd, f"<fd {fd}>", data_only=True)


def fsync_path(path: str) -> None:
    """fsync a file or a directory by name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fsync_fd(fd, path)
    finally:
        os.close(fd)


def write_file_atomically(path: str, data: bytes, *, fsync: bool = True,
                          before_replace: Callable[[], None] | None = None) -> None:
    """Replace ``path`` so that a crash leaves either the old or the new content, never a mix.

    ``fsync=False`` is for files that can be rebuilt (indexes): the rename is still atomic,
    so a reader never sees a mix, but nothing waits for the disk. ``before_replace`` runs
    between the written temporary file and the rename (fault-injection tests). On any failure
    the temporary file is removed (it may be what filled the disk) and the old content stays.
    """
    tmp = path + ".tmp"
    try:
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                if fsync:
                    f.flush()
                    fsync_fd(f.fileno(), tmp)
        except StorageError:
            raise
        except OSError as e:
            raise write_error(e, tmp, "writing") from None
    except BaseException:
        unlink_quiet(tmp)
        raise
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
