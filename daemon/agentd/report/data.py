"""``gather``: the numbers behind every plot of ``agentd report``, the dict ``report --json`` prints.

Aggregated in SQL (per UTC day, per status, per provider, per task), so 100,000 runs give a dict of
bounded size: only ``last_runs`` lists runs one by one (the newest ``LAST_RUNS``), a metric's series
keeps its newest ``series.MAX_POINTS`` points, at most ``series.MAX_SERIES`` series, and the queue its
first ``MAX_QUEUE`` tasks.  The caller opens the store (``cli/report.open_store``: read-only where it is up
to date; nothing here writes to it).  The shape (version 1) is docs/report.md's; strings in it are as a
person or a model wrote them (never escaped here: the page escapes them).

What counts where:

- runs, success, tokens, providers, reliability, metrics: this host's runs (``host`` or none) that
  started within [since, until], by the UTC day they started;
- a day's dollars: the budget's ledger (what ``usd_per_day`` is checked against: every call's cost on
  the UTC day it was made), so the plot's budget line and ``status``'s "spend today" agree with it.
"""

from __future__ import annotations

import time
from itertools import islice

from agentd.report import series as series_mod
from agentd.report.svg import finite
from agentd.store.history import median, pass_k
from agentd.times import iso

VERSION = 1
LAST_RUNS = 50
MAX_ENTRY = 2000  # characters of a last run's entry text
MAX_QUEUE = 50
MAX_RELIABILITY = 50
MAX_LISTED = 100  # approvals, blocked tasks, rules
PASS_K = 3
MAX_DAYS = 400  # the range's days at most (the page's cap too): a longer --since is cut to them
ENDED = ("done", "failed", "blocked")
DAY = 86400


def utc_day(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def day_list(since: float, until: float) -> list[str]:
    """Every UTC day from ``since``'s to ``until``'s, oldest first."""
    start = since - since % DAY
    return [utc_day(t) for t in range(int(start), int(until) + 1, DAY)]


def empty(cfg, since: float, now: float) -> dict:
    return {"report": VERSION, "host": cfg.host, "generated_at": iso(now), "since": iso(since), "until": iso(now),
            "since_asked": None, "worklog_problem": None, "days": [], "attention": {"approvals": [], "blocked": [], "rules": []},
            "runs_per_day": [], "success": {"done": 0, "ended": 0, "rate": None}, "spend_per_day": [],
            "budget_usd_per_day": _budget(cfg), "by_provider": [], "metrics": [], "reliability": [], "queue": [],
            "last_runs": [], "totals": {"runs": 0, "usd": 0.0, "input_tokens": 0, "output_tokens": 0}}


def _budget(cfg) -> float | None:
    try:
        return float(cfg["budget"]["usd_per_day"])
    except (KeyError, TypeError, ValueError):
        return None


def gather(cfg, store, since_s: float, now: float, view=None) -> dict:
    """The report's numbers over the ``since_s`` seconds before ``now``.  ``store``: a Store (read-only
    is enough) or None; ``view``: the queue (``queue.load``) or None where there is no worklog."""
    since, asked = now - since_s, None
    first = now - now % DAY - (MAX_DAYS - 1) * DAY  # the oldest day's start the report covers
    if since < first:
        since, asked = first, now - since_s
    out = empty(cfg, since, now)
    out["since_asked"] = None if asked is None else iso(max(asked, -62135596800))  # (year 1 at the oldest)
    if view is not None:
        _from_queue(out, view)
    out["days"] = days = day_list(since, now)
    out["runs_per_day"] = [{"day": d, "done": 0, "failed": 0, "blocked": 0, "other": 0} for d in days]
    out["spend_per_day"] = [{"day": d, "usd": 0.0, "input_tokens": 0, "output_tokens": 0} for d in days]
    if store is None:
        return finite(out)
    db, host = store.db, cfg.host
    lo, hi = iso(since), iso(now)
    _per_day(out, db, host, lo, hi, days)
    _providers(out, db, host, lo, hi)
    out["attention"]["approvals"] = approvals(db, host)
    out["reliability"] = reliability(db, host, lo, hi, _recurring(view))
    out["last_runs"] = last_runs(db, host, lo, hi)
    out["metrics"] = series_mod.gather(store, host, lo, hi, _tasks_of(view))
    return finite(out)



def _where(host) -> tuple[str, list]:
    return "started_at >= ? AND started_at <= ? AND (host = ? OR host IS NULL)", [host]


def _per_day(out: dict, db, host, lo: str, hi: str, days: list[str]) -> None:
    """Runs per day by status, the success rate, tokens per day (runs) and dollars per day (ledger)."""
    runs = {d: {"day": d, "done": 0, "failed": 0, "blocked": 0, "other": 0} for d in days}
    spend = {d: {"day": d, "usd": 0.0, "input_tokens": 0, "output_tokens": 0} for d in days}
    for day, status, n, tin, tout in db.execute(
            "SELECT substr(started_at, 1, 10) AS d, status, count(*), COALESCE(sum(input_tokens), 0),"
            " COALESCE(sum(output_tokens), 0) FROM runs WHERE started_at >= ? AND started_at <= ?"
            " AND (host = ? OR host IS NULL) GROUP BY d, status", (lo, hi, host)):
        if day not in runs:
            continue
        runs[day][status if status in ENDED else "other"] += n
        spend[day]["input_tokens"] += int(tin)
        spend[day]["output_tokens"] += int(tout)
    for day, usd in db.execute("SELECT day, COALESCE(sum(cost_usd), 0) FROM ledger WHERE day >= ? AND day <= ?"
                               " GROUP BY day", (days[0], days[-1])):
        if day in spend:
            spend[day]["usd"] = float(usd)
    out["runs_per_day"] = list(runs.values())
    out["spend_per_day"] = list(spend.values())
    done = sum(r["done"] for r in runs.values())
    ended = sum(r["done"] + r["failed"] + r["blocked"] for r in runs.values())
    out["success"] = {"done": done, "ended": ended, "rate": done / ended if ended else None}
    out["totals"] = {"runs": sum(r["done"] + r["failed"] + r["blocked"] + r["other"] for r in runs.values()),
                     "usd": sum(s["usd"] for s in spend.values()),
                     "input_tokens": sum(s["input_tokens"] for s in spend.values()),
                     "output_tokens": sum(s["output_tokens"] for s in spend.values())}


def _providers(out: dict, db, host, lo: str, hi: str) -> None:
    out["by_provider"] = [
        {"provider": p, "usd": float(usd), "input_tokens": int(tin), "output_tokens": int(tout)}
        for p, usd, tin, tout in db.execute(
            "SELECT COALESCE(provider, 'unknown') AS p, sum(cost_usd), sum(input_tokens), sum(output_tokens)"
            " FROM runs WHERE started_at >= ? AND started_at <= ? AND (host = ? OR host IS NULL)"
            " AND (provider IS NOT NULL OR cost_usd > 0 OR input_tokens > 0 OR output_tokens > 0)"
            " GROUP BY p ORDER BY sum(cost_usd) DESC, p", (lo, hi, host))]


_ASKS = {"network": "network access for its shell", "write": "write access to", "command": "to run, outside its sandbox:"}


def approvals(db, host) -> list[dict]:
    """The requests a waiting run of this host still waits on, oldest first."""
    rows = db.execute(
        "SELECT a.id, a.task_id, a.kind, a.what, a.asked_at, a.expires_at FROM approvals a JOIN runs r"
        " ON r.run_id = a.run_id WHERE a.answer IS NULL AND r.status = 'waiting' AND (r.host = ? OR r.host IS NULL)"
        " ORDER BY a.rowid LIMIT ?", (host, MAX_LISTED))
    return [{"id": aid, "task": task, "what": f"{_ASKS.get(kind, kind)} {what}".strip(), "asked_at": asked,
             "expires_at": expires or None} for aid, task, kind, what, asked, expires in rows]


def reliability(db, host, lo: str, hi: str, recurring: dict) -> list[dict]:
    """Per task with runs in the range (recurring ones first, then by runs): pass^k over its done and
    failed runs (``store.history``'s counting), and the median duration of those."""
    rows = db.execute(
        "SELECT task_id, max(title), count(*), sum(status = 'done'), sum(status IN ('done', 'failed'))"
        " FROM runs WHERE started_at >= ? AND started_at <= ? AND (host = ? OR host IS NULL)"
        " GROUP BY task_id", (lo, hi, host)).fetchall()
    rows.sort(key=lambda r: (r[0] not in recurring, -r[2], r[0]))
    rows = rows[:MAX_RELIABILITY]
    durations: dict = {r[0]: [] for r in rows}
    for task, d in db.execute(  # (one read for all of them: a query per task would scan the range each time)
            "SELECT task_id, duration_s FROM runs WHERE status IN ('done', 'failed') AND duration_s >= 0"
            " AND started_at >= ? AND started_at <= ? AND (host = ? OR host IS NULL)", (lo, hi, host)):
        if task in durations:
            durations[task].append(d)
    return [{"task": task, "title": title or "", "every": recurring.get(task), "runs": n, "done": done,
             "pass_k": {"k": PASS_K, "value": pass_k(attempts, done, PASS_K)},
             "median_s": float(median(durations[task])) if durations[task] else None}
            for task, title, n, done, attempts in rows]


def last_runs(db, host, lo: str, hi: str) -> list[dict]:
    out = []
    for run, task, title, status, started, dur, cost in db.execute(
            "SELECT run_id, task_id, title, status, started_at, duration_s, cost_usd FROM runs"
            " WHERE started_at >= ? AND started_at <= ? AND (host = ? OR host IS NULL)"
            " ORDER BY rowid DESC LIMIT ?", (lo, hi, host, LAST_RUNS)).fetchall():
        entry = db.execute("SELECT text FROM entries WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run,)).fetchone()
        text = entry[0] if entry else ""
        if len(text) > MAX_ENTRY:
            text = text[:MAX_ENTRY] + f"… ({len(text) - MAX_ENTRY} more characters: agentd show {run})"
        out.append({"run": run, "task": task, "title": title or "", "status": status, "started_at": started,
                    "duration_s": dur, "cost_usd": cost if cost else None, "entry": text})
    return out


def _from_queue(out: dict, view) -> None:
    """What needs a person (blocked tasks, rules in force) and the queue as the next wake sees it."""
    # lazy: only with a worklog
    from agentd.worklog import standing

    out["attention"]["blocked"] = [{"task": t.id, "title": t.title, "reason": t.why}
                                   for t in view.tasks.dynamic if t.status == "blocked"][:MAX_LISTED]
    out["attention"]["rules"] = [{"id": r.id, "text": r.text, "critical": r.kind == "directive"}
                                 for r in standing.in_force(view.read.state)[:MAX_LISTED]]
    listed = (t for t in view.tasks if t.status not in ("done", "cancelled") or t.next_due)
    out["queue"] = [{"id": t.id, "title": t.title, "kind": t.kind, "score": t.score, "why": t.why,
                     "waits": not t.eligible} for t in islice(listed, MAX_QUEUE)]


def _recurring(view) -> dict:
    """task id -> its ``every`` for the recurring tasks the worklog defines (those with an entry)."""
    if view is None:
        return {}
    return {t.id: t.attrs["every"] for t in view.tasks.dynamic if t.attrs.get("every")}


def _tasks_of(view):
    """A task by id, or None (for a series' gates: its ``expect``)."""
    return (lambda tid: None) if view is None else view.tasks.get
