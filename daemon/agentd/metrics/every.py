"""A recurring task's interval, ``{every: 6h}``: ``<n><unit>`` with unit m, h, d or w, at least 5
minutes and at most 365 days.  ``seconds("6h")`` is 21600; a bad one raises ValueError saying why."""

from __future__ import annotations

from agentd.lazyre import lazy

UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
LEAST = 5 * 60
MOST = 365 * 86400
_EVERY = lazy(r"\s*(\d{1,9})\s*([A-Za-z]+)\s*")
_SAID = {"min": "m", "mins": "m", "minute": "m", "minutes": "m", "hr": "h", "hrs": "h", "hour": "h",
         "hours": "h", "day": "d", "days": "d", "week": "w", "weeks": "w", "s": None, "sec": None, "ms": None,
         "y": None, "year": None, "mo": None, "month": None, "months": None}


def seconds(text) -> int:
    """``text`` (``30m``, ``6h``, ``1d``, ``7d``, ``2w``) in seconds; ValueError names what is wrong."""
    shape = "a number and a unit: 30m, 6h, 1d, 7d or 2w (m, h, d, w)"
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(f"every: {text!r} is not an interval: write {shape}")
    m = _EVERY.fullmatch(text)
    if not m:
        raise ValueError(f"every: {text[:40]!r} is not an interval: write {shape}")
    n, unit = int(m.group(1)), m.group(2)
    if unit not in UNITS:
        meant = "" if unit == "M" else unit.lower() if unit.lower() in UNITS else _SAID.get(unit.lower(), "")
        hint = f" (did you mean {n}{meant}?)" if meant else (
            " (seconds are too short, months and years too vague: use m, h, d or w)" if meant is None else
            " (minutes are m; months are too vague)" if unit == "M" else "")
        raise ValueError(f"every: {text!r}: {unit[:20]!r} is not a unit{hint}: write {shape}")
    value = n * UNITS[unit]
    if value < LEAST:
        raise ValueError(f"every: {text!r} is less than 5 minutes, the shortest interval")
    if value > MOST:
        raise ValueError(f"every: {text!r} is more than 365 days, the longest interval")
    return value
