"""The compaction swap protocol: commit, install and recover a replacement of segments.

Rewritten segments are written as ``.cleaned`` files; :func:`commit_swap` durably records
which old bases they replace (the commit point); :func:`install_swap` renames them into place
and deletes the replaced files, and is safe to repeat, so recovery at open simply runs it
again (:func:`finish_interrupted_swap`). A crash before the commit leaves only ``.cleaned``
files, which recovery discards.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from logmq.storage.faults import crash_point
from logmq.storage.files import (
    CLEANED_SUFFIX,
    DELETED_SUFFIX,
    SEGMENT_SUFFIXES,
    SWAP_FILE,
    TMP_SUFFIX,
)
from logmq.storage.fsutil import fsync_path as _fsync_dir
from logmq.storage.fsutil import unlink_quiet as _unlink
from logmq.storage.fsutil import write_file_atomically
from logmq.storage.segment import segment_name

__all__ = ["cleaned_path", "commit_swap", "read_swap_file", "install_swap",
           "finish_interrupted_swap"]


def cleaned_path(directory: str, base: int, suffix: str) -> str:
    return os.path.join(directory, segment_name(base) + suffix + CLEANED_SUFFIX)



# ---------------------------------------------------------------------- the swap protocol
def commit_swap(directory: str, old_bases: Sequence[int], new_bases: Sequence[int]) -> None:
    """The commit point: durably record that ``new_bases`` (.cleaned) replace ``old_bases``."""
    _fsync_dir(directory)  # the .cleaned names themselves must be durable before the commit
    path = os.path.join(directory, SWAP_FILE)
    data = ("old: " + " ".join(map(str, old_bases)) + "\nnew: "
            + " ".join(map(str, new_bases)) + "\n").encode()
    write_file_atomically(path, data, before_replace=lambda: crash_point("commit-tmp-written"))
    crash_point("committed")


def read_swap_file(directory: str) -> tuple[list[int], list[int]] | None:
    """(old bases, new bases) of a committed swap, or None when there is none."""
    try:
        with open(os.path.join(directory, SWAP_FILE)) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    old: list[int] = []
    new: list[int] = []
    for line in text.splitlines():
        tag, _, rest = line.partition(":")
        values = [int(x) for x in rest.split()]
        if tag.strip() == "old":
            old = values
        elif tag.strip() == "new":
            new = values
    return old, new


def install_swap(
    directory: str, old_bases: Sequence[int], new_bases: Sequence[int], *, inject: bool = True
) -> None:
    """Finish a committed swap; safe to run again after a crash at any step of it.

    Each ``.cleaned`` file still present is complete (the commit came after their fsync), so
    renaming it over its final name is always right; a missing one was renamed already.
    ``inject`` is False during recovery, where fault injection would only loop.
    """
    cp = crash_point if inject else (lambda name: None)
    first = True
    for b in new_bases:
        for suffix in SEGMENT_SUFFIXES:
            src = cleaned_path(directory, b, suffix)
            if os.path.exists(src):
                os.replace(src, os.path.join(directory, segment_name(b) + suffix))
                if first:
                    first = False
                    cp("installed-log")
    cp("installed-files")
    keep = set(new_bases)
    for b in old_bases:
        if b not in keep:
            for suffix in SEGMENT_SUFFIXES:
                _unlink(os.path.join(directory, segment_name(b) + suffix))
    _fsync_dir(directory)
    cp("deleted-old")
    _unlink(os.path.join(directory, SWAP_FILE))
    _fsync_dir(directory)
    cp("swap-finished")


def finish_interrupted_swap(directory: str, names: Sequence[str]) -> bool:
    """Recovery at open: finish a committed swap, or discard an uncommitted one's files.

    Returns True when anything was changed on disk. Also removes ``.tmp`` leftovers of atomic
    file writes (their targets were never replaced, so they carry nothing).
    """
    changed = False
    swap = read_swap_file(directory)
    if swap is not None:
        install_swap(directory, swap[0], swap[1], inject=False)
        changed = True
    for n in names:
        if n.endswith((CLEANED_SUFFIX, TMP_SUFFIX, DELETED_SUFFIX)):
            p = os.path.join(directory, n)
            if os.path.exists(p):
                os.unlink(p)
                changed = True
    if changed:
        _fsync_dir(directory)
    return changed
