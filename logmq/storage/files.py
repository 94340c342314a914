"""Every file name and suffix a partition directory can hold, in one place.

Recovery, compaction, retention and ``logmq verify`` all recognise files by these names, so a
new kind of file is added here or it is a stray to all of them.
"""

from __future__ import annotations

__all__ = ["LOG_SUFFIX", "INDEX_SUFFIX", "TIMEINDEX_SUFFIX", "SEGMENT_SUFFIXES",
           "CLEANED_SUFFIX", "SWAP_SUFFIX", "DELETED_SUFFIX", "TMP_SUFFIX", "SWAP_FILE",
           "CHECKPOINT", "CLEANER_CHECKPOINT", "SEAL_CHECKPOINT", "LEFTOVER_SUFFIXES"]

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIMEINDEX_SUFFIX = ".timeindex"
#: the three files of one segment, named ``<20-digit base offset><suffix>``
SEGMENT_SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIMEINDEX_SUFFIX)
#: compaction output not yet swapped in (appended to a segment file's name)
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
#: a segment file retention or truncation is removing
DELETED_SUFFIX = ".deleted"
#: an atomic write in progress (fsutil.write_file_atomically)
TMP_SUFFIX = ".tmp"
#: the commit record of a compaction swap (old and new base offsets)
SWAP_FILE = "swap-replaces"
#: recovery point and log start offset of the partition
CHECKPOINT = "checkpoint"
#: the cleaner's first dirty offset
CLEANER_CHECKPOINT = "cleaner-checkpoint"
#: the cleaner's re-seal progress (encryption at rest): ``<key id> <offset>``
SEAL_CHECKPOINT = "seal-checkpoint"
#: what an interrupted operation can leave behind (``logmq verify`` reports them)
LEFTOVER_SUFFIXES = (CLEANED_SUFFIX, SWAP_SUFFIX, DELETED_SUFFIX, SWAP_FILE)
