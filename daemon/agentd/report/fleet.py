"""`agentd report --fleet`: every host of the fleet, as `agentd fleet status --json` gives it (``fleet/view.py``:
this host live, the others from their ``hosts/<host>.json`` in the clone; the fleet budget), bounded for the
report's JSON, and the rows and the budget line the page's section "The fleet" draws (docs/report.md)."""

from __future__ import annotations

from agentd.fleet import state, view

MAX_HOSTS, MAX_WARNINGS, MAX_WARNING = 200, 20, 300


def gather(cfg, now: float | None = None) -> dict:
    """``view.collect``'s dict, at most ``MAX_HOSTS`` hosts (``hosts_total`` says how many there were) and
    ``MAX_WARNINGS`` warnings of at most ``MAX_WARNING`` characters each."""
    info = view.collect(cfg, now)
    hosts, warnings = info["hosts"], info["warnings"]
    return {**info, "hosts": hosts[:MAX_HOSTS], "hosts_total": len(hosts),
            "warnings": [str(w)[:MAX_WARNING] for w in warnings[:MAX_WARNINGS]]}


def rows(info: dict) -> list[dict]:
    """One row per host, in words (the page escapes them): host, synced, last wake, last run, running,
    queue top, and today's dollars as a number."""
    out = []
    for h in info.get("hosts") or []:
        if not isinstance(h, dict):
            continue
        name = f"{h.get('host')}" + (" (this host)" if h.get("this") else "")
        if h.get("no_file"):
            out.append({"host": name, "synced": f"no hosts/{h.get('host')}.json yet", "stale": True})
            continue
        ago = h.get("synced_ago_s")
        synced = "never" if not isinstance(ago, (int, float)) else f"{state._ago(ago)} ago"
        if h.get("stale"):
            synced += f" (stale: more than {state._ago(info.get('stale_after_s') or view.STALE)})"
        w, r, q, s = (h.get(k) if isinstance(h.get(k), dict) else None for k in ("wake", "last_run", "queue_top", "spend"))
        running = [x for x in (h.get("running") or []) if isinstance(x, dict)]
        out.append({
            "host": name, "synced": synced, "stale": bool(h.get("stale")),
            "wake": f"{w.get('at')} ({w.get('kind')})" if w else "none recorded",
            "last_run": f"{r.get('task')}: {r.get('status')} (started {r.get('at')}) ({r.get('id')})" if r else "none",
            "status": r.get("status") if r else None,
            "running": ", ".join(f"{x.get('task')} ({x.get('id')}, since {x.get('at')})" for x in running) or "nothing",
            "queue_top": f"{q.get('id')}: {q.get('title')} — {q.get('why')}" if q else "nothing to run",
            "usd": s.get("usd") if s and isinstance(s.get("usd"), (int, float)) else None,
            "day": s.get("day") if s else None})
    return out


def budget_line(info: dict) -> str:
    """The fleet budget in `agentd fleet status`'s words."""
    said = [line for line in view.lines({**info, "hosts": [], "warnings": []}) if line.startswith("fleet budget:")]
    return said[-1] if said else "fleet budget: unknown"
