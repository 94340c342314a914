"""Fault injection for crash tests: kill the process at a named step of a cleaning swap.

Set ``LOGMQ_CRASH_POINT`` to one of :data:`CRASH_POINTS` (``name@N`` for the N-th time) and
the process SIGKILLs itself when it gets there; unset, :func:`crash_point` costs one
environment lookup on a cold path.
"""

from __future__ import annotations

import os
import signal

__all__ = ["CRASH_POINT_ENV", "CRASH_POINTS", "crash_point"]

CRASH_POINT_ENV = "LOGMQ_CRASH_POINT"
#: Every step of a cleaning swap at which a test can have the process killed, in order.
CRASH_POINTS = (
    "cleaning-partial",  # some output batches written to .log.cleaned, not all
    "cleaned-written",  # all .cleaned files written and fsynced, no commit yet
    "commit-tmp-written",  # swap-replaces.tmp fsynced, not renamed yet
    "committed",  # swap-replaces renamed into place and the directory fsynced
    "installed-log",  # the first .log.cleaned renamed over its final name
    "installed-files",  # every .cleaned file renamed over its final name
    "deleted-old",  # the replaced segments' files unlinked, swap-replaces still present
    "swap-finished",  # swap-replaces unlinked; the in-memory swap not done yet
    "checkpoint-written",  # cleaner checkpoint advanced after the whole pass
)

_crash_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL this process if ``LOGMQ_CRASH_POINT`` names this step (fault-injection tests).

    ``name@N`` kills at the N-th time the step is reached (e.g. inside the second group of a
    pass). Reads the environment on each call on purpose: the cleaner path is cold, and a
    test may set the variable after import.
    """
    want = os.environ.get(CRASH_POINT_ENV)
    if not want:
        return
    point, _, nth = want.partition("@")
    if point != name:
        return
    hits = _crash_hits[name] = _crash_hits.get(name, 0) + 1
    if hits >= (int(nth) if nth else 1):
        os.kill(os.getpid(), signal.SIGKILL)
