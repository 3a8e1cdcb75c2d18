"""``--since 30d``: a span back from now, for `agentd report` and `agentd runs`."""

from __future__ import annotations

from agentd.errors import UsageError

WEEK = 7 * 86400


def since_seconds(text: str, flag: str = "--since") -> float:
    """``30d``, ``2w``, ``12h``, ``90m`` in seconds (the config's durations, and weeks); a UsageError
    naming ``flag`` for anything else, or for a span of 0."""
    from agentd.config.schema import parse_duration  # lazy: the schema only where a span is given

    t = str(text).strip()
    try:
        seconds = float(t[:-1]) * WEEK if t[-1:] == "w" and t[:-1].isdigit() else parse_duration(t)
    except ValueError:
        seconds = None
    if not seconds or seconds <= 0:
        raise UsageError(f"{flag} {text!r}: give a span back from now, like 30d, 2w, 12h or 90m "
                         "(s, m, h, d or w)")
    return seconds
