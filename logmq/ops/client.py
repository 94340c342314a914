"""Reading a running server's JSON API (``logmq status``, ``queues list --http``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from logmq.errors import LogMQError

__all__ = ["AdminApiError", "get_json", "DEFAULT_TIMEOUT"]

#: seconds to wait for an answer: the API reads in-memory state, so it answers fast or not at all
DEFAULT_TIMEOUT = 10.0


class AdminApiError(LogMQError):
    """The HTTP admin API could not be reached or answered with an error."""


def get_json(address: str, path: str, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """GET ``http://ADDRESS/api/v1/PATH`` and decode it (``address`` is HOST:PORT or a URL)."""
    base = address if "://" in address else f"http://{address}"
    url = f"{base.rstrip('/')}/api/v1/{path.lstrip('/')}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read()).get("error", e.reason)
        except (ValueError, AttributeError):
            msg = e.reason
        raise AdminApiError(f"{url}: HTTP {e.code}: {msg}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise AdminApiError(f"cannot reach {url}: {reason}") from None
    except ValueError as e:
        raise AdminApiError(f"{url}: not JSON: {e}") from None
