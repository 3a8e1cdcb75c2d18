"""The subscription window, spent as a person would (config ``window``; docs/agent.md).

The claude and codex CLIs on a subscription login say after each run how much of each usage window
is used and when it resets (``runners.cli_windows``; kept in the store, ``store.windows``).  agentd
may use a window up to its *share*: ``min(max_percent, 100 - reserve_percent)`` (75 % by default),
leaving the rest to the person.  A CLI agent task does not start while a window that has not reset
yet stands at its share or above, or would go past it with what one run takes: the median rise of
the window over this provider's last runs (``PER_RUN_RUNS``).  It waits until that window resets.

With no figure (an API key, which pays by token and has no window; no run yet; every window reset
since) nothing waits here and the budgets apply, as ``describe`` says.
"""

from __future__ import annotations

from agentd.recordtype import Record
from agentd.times import iso

CLIS = ("claude-cli", "codex-cli")
PER_RUN_RUNS = 10  # the last rises a run's expected use is the median of
SAME_WINDOW_S = 600  # two readings whose resets differ by less than this are of the same window


class Window(Record):
    """Where one window stands: its last reading, and what one run takes of it."""
    name: str
    used: float  # percent
    resets_at: float  # epoch seconds
    seen_at: float  # when it was read
    minutes: int | None = None
    per_run: float | None = None  # median rise per run, percent
    per_run_n: int = 0

    def label(self) -> str:
        m = self.minutes
        if not m or self.name not in ("primary", "secondary"):
            return self.name
        return f"{self.name} ({m // 10080}w)" if m % 10080 == 0 else f"{self.name} ({m // 60}h)" if m % 60 == 0 \
            else f"{self.name} ({m}m)"


def share(cfg) -> float:
    w = cfg["window"]
    return min(float(w["max_percent"]), 100.0 - float(w["reserve_percent"]))


def _rises(readings: list[tuple], cap: float) -> list[float]:
    """How much the window rose from each reading to the next within one window (not across a reset),
    leaving out rises past half the share: no run takes that much, the person's own use (or a forged
    figure) does, and counting it would hold every later window to one run."""
    rises = []
    for (u0, r0, *_), (u1, r1, *_) in zip(readings, readings[1:]):
        if abs(r1 - r0) < SAME_WINDOW_S and 0 <= u1 - u0 <= cap / 2:
            rises.append(u1 - u0)
    return rises[-PER_RUN_RUNS:]


def windows(store, provider: str, now: float, cap: float = 100.0) -> tuple[list[Window], list[Window]]:
    """(the windows that have not reset yet, those whose last reading has reset since), each latest
    (``cap``: the share, which bounds the rises counted)."""
    from agentd.store import windows as stored  # lazy: only for a CLI backend with a store (queue's start-up)
    from agentd.store.history import median  # lazy: as above

    live, reset = [], []
    for name, readings in sorted(stored.history(store, provider).items()):
        used, resets_at, at, _run, minutes = readings[-1]
        rises = _rises(readings, cap)
        w = Window(name=name, used=used, resets_at=resets_at, seen_at=at, minutes=minutes,
                   per_run=median(rises) if rises else None, per_run_n=len(rises))
        (live if resets_at > now else reset).append(w)
    return live, reset


def _over(w: Window, cap: float) -> bool:
    """Whether the window is at the share or past it, or would pass it with one more run; never with
    a share of 100 % (the CLI itself says when the limit is reached, and that is waited out)."""
    return cap < 100 and (w.used >= cap or w.used + (w.per_run or 0.0) > cap)


def _why(w: Window, cap: float, cfg) -> str:
    run = (f" and a run takes about {w.per_run:.3g}% (median of {w.per_run_n})" if w.per_run is not None else "")
    c = cfg["window"]
    verb = "past" if w.used >= cap else "would pass"
    return (f"{w.label()} window {w.used:.3g}% used{run}, {verb} the {cap:g}% agentd may use "
            f"(window: max_percent {c['max_percent']:g}, reserve_percent {c['reserve_percent']:g})")


def wait(cfg, store, backend: str, now: float) -> tuple[None, str] | None:
    """(None, why) while a CLI backend's window is at or past agentd's share; None otherwise."""
    if backend not in CLIS or store is None:
        return None
    cap = share(cfg)
    over = [w for w in windows(store, backend, now, cap)[0] if _over(w, cap)]
    if not over:
        return None
    until = max(w.resets_at for w in over)
    return None, (f"{backend}'s subscription {'; '.join(_why(w, cap, cfg) for w in over)}; CLI agent tasks wait "
                  f"until it resets at {iso(until)}, leaving the rest to you")


def describe(cfg, store, backend: str | None, now: float) -> dict | None:
    """What ``status`` says of the window: None for a backend that has none (an API: budgets only)."""
    if backend not in CLIS:
        return None
    cap = share(cfg)
    live, reset = windows(store, backend, now, cap) if store is not None else ([], [])
    got = {"provider": backend, "share_percent": cap, "max_percent": float(cfg["window"]["max_percent"]),
           "reserve_percent": float(cfg["window"]["reserve_percent"]),
           "windows": [{"window": w.name, "label": w.label(), "used_percent": w.used, "resets_at": iso(w.resets_at),
                        "seen_at": iso(w.seen_at), "per_run_percent": w.per_run, "waits": _over(w, cap)}
                       for w in live],
           "waits_until": iso(max(w.resets_at for w in live if _over(w, cap))) if any(_over(w, cap) for w in live)
           else None, "note": None}
    if not live:
        got["note"] = ((f"no figure since its windows reset at {iso(max(w.resets_at for w in reset))}"
                        if reset else f"no figure yet: {backend} reports its windows on a subscription login, "
                        "after a run") + "; the budgets apply")
    return got


def lines(d: dict) -> list[str]:
    """``describe``'s dict as status prints it (the first line after ``window:``, the rest indented)."""
    head = f"agentd may use {d['share_percent']:g}% of each of {d['provider']}'s subscription windows"
    if d["note"]:
        return [f"{head}; {d['note']}"]
    out = [head]
    for w in d["windows"]:
        run = f", about {w['per_run_percent']:.3g}% a run" if w["per_run_percent"] is not None else ""
        out.append(f"{w['label']}: {w['used_percent']:.3g}% used{run}, resets {w['resets_at']}"
                   + (" (CLI agent tasks wait for it)" if w["waits"] else ""))
    return out
