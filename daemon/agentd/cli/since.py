"""``--since 30d``: a span back from now, for `agentd report` and `agentd runs`."""

from __future__ import annotations

import math
import re

from agentd.errors import UsageError

UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_SPAN = 36500 * 86400  # a hundred years: past it a span is a typo (and time.gmtime's range ends)
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)


def since_seconds(text: str, flag: str = "--since") -> float:
    """``30d``, ``1.5w``, ``12h``, ``90m``, ``30s`` in seconds: a number (decimals allowed) and a unit, s, m
    (or min), h, d or w, in either case; a UsageError naming ``flag`` for anything else, for a span of 0,
    or for one over a hundred years."""
    m = _SPAN.match(str(text))
    seconds = float(m.group(1)) * UNITS[m.group(2).lower()] if m else None
    if seconds is not None and not math.isfinite(seconds):
        seconds = math.inf  # (digits past a float's range: over the bound below)
    if not seconds or seconds <= 0:
        raise UsageError(f"{flag} {text!r}: give a span back from now, like 30d, 2w, 12h or 90m "
                         "(s, m, h, d or w)")
    if seconds > MAX_SPAN:
        raise UsageError(f"{flag} {text!r}: a span of at most 100 years (36500d), like 30d, 2w, 12h or 90m")
    return seconds
