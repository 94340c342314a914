"""Whether the pure-Python references are forced (``LOGMQ_PURE=1``), for every compiled twin.

The codec, the share-group loops and the send fast path each pick their compiled code at
import unless this says no; one rule, so setting the variable switches all of them together.
"""

from __future__ import annotations

import os

__all__ = ["pure_forced"]


def pure_forced() -> bool:
    """True when ``LOGMQ_PURE`` is set to anything but empty or ``0``."""
    return os.environ.get("LOGMQ_PURE", "") not in ("", "0")
