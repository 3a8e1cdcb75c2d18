"""What the coding-agent CLIs say of their subscription's usage windows, read into ``Reading``s.

A subscriber's claude and codex spend a window (five hours, a week) that resets on its own, and
each CLI says how much of it is used in its own output (the shapes are from the real programs:
tests/captures/claude-2.1.332/window_80.stdout, tests/captures/codex-0.171.0/window_80.session):

- claude (``--output-format stream-json``) prints a ``rate_limit_event`` line whose
  ``rate_limit_info.unifiedWindows`` maps each window (``five_hour``, ``seven_day``, ...) to its
  ``utilization`` (0-1) and ``resetsAt`` (epoch seconds).  It does so only on a subscription login:
  with an API key there is no window, and no line.
- codex writes ``token_count`` events to its session file (``CODEX_HOME/sessions/**/rollout-*.jsonl``)
  whose ``rate_limits`` give a ``primary`` and a ``secondary`` window, each ``used_percent``
  (0-100), ``window_minutes`` and ``resets_at`` (epoch seconds); ``codex exec --json`` prints none.

The last report of each window counts.  Every figure is bounded (a percentage in 0-100, a reset
within ``MAX_AHEAD`` of now, a name of a few plain characters), since the session file lies in a
directory the sandboxed CLI, and so its model, can write (``cli_output.session_lines`` reads only
regular files, bounded): a forged figure can make agentd wait (at most until that bounded reset) or
spend no more than it would with no figure at all.
"""

from __future__ import annotations

import math
import re
import time

from agentd.recordtype import Record
from agentd.runners.cli_output import json_line, session_lines

MAX_AHEAD = 8 * 86400  # a reset further ahead than this is not believed (the longest window is a week)
MAX_BEHIND = 3600  # nor one further back (a run reads its windows as it ends: their resets are ahead)
_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
CLAUDE_MINUTES = {"five_hour": 300, "seven_day": 10080, "seven_day_opus": 10080, "seven_day_sonnet": 10080}


class Reading(Record):
    """One window's use as the CLI reported it."""
    window: str  # the CLI's name for it: five_hour, seven_day, primary, secondary, ...
    used_percent: float  # 0-100
    resets_at: float  # epoch seconds
    minutes: int | None = None  # the window's length, where known


def _reading(name, used, reset, minutes, now: float) -> Reading | None:
    if not isinstance(name, str) or not _NAME.match(name) or isinstance(used, bool) or isinstance(reset, bool):
        return None
    try:
        used, reset = float(used), float(reset)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(used) and math.isfinite(reset)) or not 0 <= used <= 100 \
            or not now - MAX_BEHIND < reset <= now + MAX_AHEAD:
        return None
    mins = minutes if isinstance(minutes, int) and not isinstance(minutes, bool) and 0 < minutes <= 60 * 24 * 31 \
        else None
    return Reading(window=name, used_percent=used, resets_at=reset, minutes=mins)


def claude(out: str, now: float | None = None) -> list[Reading]:
    """The windows of the last ``rate_limit_event`` in claude's stream-json output."""
    now = time.time() if now is None else now
    last = None
    for line in (out or "").splitlines():
        if '"rate_limit_event"' not in line:
            continue
        ev = json_line(line)
        if isinstance(ev, dict) and ev.get("type") == "rate_limit_event" and isinstance(ev.get("rate_limit_info"), dict):
            last = ev["rate_limit_info"]
    if last is None:
        return []
    windows = last.get("unifiedWindows")
    if not isinstance(windows, dict):  # a reset far ahead: only the window that binds
        windows = {last.get("rateLimitType"): last}
    got = []
    for name, w in windows.items():
        u = w.get("utilization") if isinstance(w, dict) else None
        if isinstance(u, (int, float)) and not isinstance(u, bool):
            r = _reading(name, float(u) * 100, w.get("resetsAt"), CLAUDE_MINUTES.get(name), now)
            if r is not None:
                got.append(r)
    return got


def codex(codex_home, now: float | None = None) -> list[Reading]:
    """The windows of the last ``rate_limits`` in codex's session file(s) under ``codex_home``."""
    now = time.time() if now is None else now
    last = None
    for line in session_lines(codex_home, '"rate_limits"'):
        ev = json_line(line)
        payload = ev.get("payload") if isinstance(ev, dict) else None
        limits = payload.get("rate_limits") if isinstance(payload, dict) else None
        if isinstance(limits, dict):
            last = limits
    if last is None:
        return []
    got = []
    for name in ("primary", "secondary"):
        w = last.get(name)
        if isinstance(w, dict):
            r = _reading(name, w.get("used_percent"), w.get("resets_at"), w.get("window_minutes"), now)
            if r is not None:
                got.append(r)
    return got
