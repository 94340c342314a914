"""What opening a data directory needs from the storage layer, kept out of the broker.

* :func:`check_data_path`: the path must be (or become) a directory: a file there is a
  typed error, not ``FileExistsError`` from deep inside ``makedirs``.
* :func:`adopt_orphan_partitions`: partition directories the metadata does not know. LMDB
  (``meta/data.mdb``) can be lost or replaced while the partition directories survive; before
  this, every topic then vanished silently and the next auto-create deleted the old data.
  Now the topic list is rebuilt from the directories: each orphan topic comes back with as
  many partitions as its highest directory says and *default* configs (the per-topic
  overrides lived in the lost file), with a WARNING naming it. Group offsets and queue state
  lived there too and are gone; the records are not. (Refusing to open would leave the user
  with no way forward but hand-editing; rebuilding loses nothing that still exists.)
  Directories of an interrupted topic deletion (``<dir>.<hex>-delete``) are removed here, so
  a half-deleted topic does not come back.
* :func:`prepare_partition_dirs`: ``create_topic`` never deletes data it did not create: a
  leftover directory holding records makes the call fail with a typed error instead.
* :func:`check_partition_budget`: caps on partitions per topic and per broker, and the
  descriptor headroom, checked before a topic is committed.
* :func:`release_logs`: a failed open releases every descriptor it took.
"""

from __future__ import annotations

import logging
import os
import re
import resource
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from logmq.errors import DataDirError, PartitionLimitError
from logmq.storage.fsutil import fsync_path
from logmq.storage.handles import capacity, open_count
from logmq.storage.log import DELETE_SUFFIX, PartitionLog
from logmq.storage.segment import LOG_SUFFIX

__all__ = ["check_data_path", "adopt_orphan_partitions", "prepare_partition_dirs",
           "check_partition_budget", "release_logs", "max_producer_id", "partition_dirs",
           "DEFAULT_MAX_PARTITIONS", "DEFAULT_MAX_PARTITIONS_PER_TOPIC", "FD_RESERVE"]

log = logging.getLogger("logmq.storage")

#: default cap on partitions in one data directory (every topic together)
DEFAULT_MAX_PARTITIONS = 100_000
#: default cap on partitions of one topic
DEFAULT_MAX_PARTITIONS_PER_TOPIC = 10_000
#: descriptors that must stay free beyond the segment LRU for LMDB, sockets and transient
#: files; creating a topic is refused when fewer are left
FD_RESERVE = 64

_PARTITION_DIR = re.compile(r"([A-Za-z0-9._-]{1,249})-([0-9]{1,9})")


def check_data_path(path: str) -> None:
    """Raise DataDirError unless ``path`` is a directory or can be created as one."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise DataDirError(f"data directory {path!r} exists and is not a directory")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)  # the log is nobody else's
    except (FileExistsError, NotADirectoryError):
        raise DataDirError(f"cannot create data directory {path!r}: a parent is a file"
                           ) from None
    except PermissionError as e:
        raise DataDirError(f"cannot create data directory {path!r}: {e.strerror}",
                           errno=e.errno) from None


def partition_dirs(path: str) -> dict[str, set[int]]:
    """Topic -> partition numbers, from the directory names (removing deletion leftovers)."""
    out: dict[str, set[int]] = {}
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if name.endswith(DELETE_SUFFIX):
            log.info("removing %s, left by an interrupted topic deletion", full)
            shutil.rmtree(full, ignore_errors=True)
            continue
        m = _PARTITION_DIR.fullmatch(name)
        if m is None or not os.path.isdir(full) or m.group(1) in (".", ".."):
            continue
        out.setdefault(m.group(1), set()).add(int(m.group(2)))
    return out


def adopt_orphan_partitions(
    path: str,
    known: Mapping[str, Mapping[str, Any]],
    put: Callable[[str, dict[str, Any]], None],
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The topic metadata to open with, and the names of topics rebuilt from directories.

    ``known`` is what the metadata store holds; ``put`` persists a rebuilt entry (before the
    partitions open, so a crash right after does not lose the rebuild).
    """
    topics = {name: dict(meta) for name, meta in known.items()}
    adopted: list[str] = []
    for topic, parts in sorted(partition_dirs(path).items()):
        count = max(parts) + 1
        meta = topics.get(topic)
        if meta is None:
            meta = {"partitions": count, "config": {}, "id": uuid.uuid4().hex,
                    "created_ms": int(time.time() * 1000), "rebuilt_from_dirs": True}
            log.warning("data directory %s: topic %r has %d partition directories but no "
                        "metadata (meta/data.mdb lost or replaced?): rebuilt with default "
                        "configs; its group offsets and queue state are gone",
                        path, topic, count)
            adopted.append(topic)
        elif count > meta["partitions"]:
            log.warning("data directory %s: topic %r has partition directories up to %d but "
                        "metadata for %d partitions: growing it to %d", path, topic,
                        count - 1, meta["partitions"], count)
            meta = dict(meta, partitions=count)
        else:
            continue
        put(topic, meta)
        topics[topic] = meta
    return topics, adopted


def _holds_records(d: str) -> bool:
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return False
    for n in names:
        if n.endswith(LOG_SUFFIX) and os.path.getsize(os.path.join(d, n)) > 0:
            return True
    return False


def prepare_partition_dirs(path: str, topic: str, partitions: Iterable[int]) -> None:
    """Make way for new partitions: refuse if a directory with records is in the way.

    Directories without records (a crash between creating a directory and committing the
    topic) are removed; nothing holding a record is ever deleted here.
    """
    parts = list(partitions)
    for p in parts:
        d = os.path.join(path, f"{topic}-{p}")
        if _holds_records(d):
            raise DataDirError(
                f"cannot create partition {topic}-{p}: {d!r} already holds records that the "
                "metadata does not know; reopen the data directory to adopt them, or move "
                "the directory away")
    for p in parts:
        d = os.path.join(path, f"{topic}-{p}")
        if os.path.isdir(d):
            shutil.rmtree(d)
    fsync_path(path)


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def check_partition_budget(
    topic: str,
    adding: int,
    *,
    topic_total: int,
    broker_total: int,
    max_per_topic: int = DEFAULT_MAX_PARTITIONS_PER_TOPIC,
    max_total: int = DEFAULT_MAX_PARTITIONS,
) -> None:
    """Raise PartitionLimitError if ``adding`` partitions would break a cap or the fd limit.

    ``topic_total`` is the topic's partition count after the change, ``broker_total`` the
    data directory's count before it. Partitions cost no descriptor at rest (the segment
    LRU), so the descriptor check asks for the LRU's capacity plus :data:`FD_RESERVE` free.
    """
    if topic_total > max_per_topic:
        raise PartitionLimitError(
            f"topic {topic!r} would have {topic_total} partitions; the cap is {max_per_topic} "
            "(max_partitions_per_topic)")
    if broker_total + adding > max_total:
        raise PartitionLimitError(
            f"{adding} more partitions would make {broker_total + adding} in this data "
            f"directory; the cap is {max_total} (max_partitions)")
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        free = soft - _open_fds()
        needed = FD_RESERVE + max(0, min(capacity(), broker_total + adding) - open_count())
        if free < needed:
            raise PartitionLimitError(
                f"only {free} of {soft} file descriptors are free (RLIMIT_NOFILE); "
                f"{adding} more partitions need about {needed}: raise the limit "
                "(ulimit -n) or lower LOGMQ_MAX_OPEN_SEGMENTS")


def release_logs(logs: Iterable[PartitionLog]) -> None:
    """Release the descriptors of logs opened by an open that then failed (no checkpoint is
    written: the open did not finish, so nothing about the partitions changed)."""
    for lg in logs:
        lg.release()


def max_producer_id(logs: Iterable[PartitionLog]) -> int:
    """Largest producer id the partitions remember (-1 if none): after the metadata store is
    lost, the id counter must restart above it, or a new producer could be taken for a
    retry of an old one and its records dropped as duplicates."""
    return max((max(lg.producer_state.producers, default=-1) for lg in logs), default=-1)
