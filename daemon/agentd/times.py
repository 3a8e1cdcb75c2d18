"""The one time format agentd writes and reads: UTC ISO 8601 to the second (``2026-11-22T12:45:09Z``).

Entries' ``at=`` and ``until=``, the store's rows, manifests, progress.json and
deferrals all use it.  ``parse`` reads it back (and any ISO time with an offset).
"""

from __future__ import annotations

import time
from datetime import datetime

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def iso(ts: float | None = None) -> str:
    """``ts`` (epoch seconds; now if None) as UTC ISO."""
    return time.strftime(FORMAT, time.gmtime(ts))


def now_iso() -> str:
    return iso()


def iso_in(seconds: float, now: float | None = None) -> str:
    return iso((time.time() if now is None else now) + seconds)


def next_utc_day(t: float | None = None) -> str:
    """The next UTC midnight: when the daily limits start again."""
    t = time.time() if t is None else t
    return iso(t - t % 86400 + 86400)


def parse(text: str | None) -> float | None:
    """Epoch seconds of an ISO time, or None if it is empty or not one."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
