"""This host's own file in the fleet clone, ``hosts/<host>.json``: what the other hosts (and `agentd fleet
status` on them) know of it: its last wake and run, what is running, its queue's top, today's spend (UTC
day, dollars and tokens), and when it synced.  Written at each sync (whole, then renamed into place) and
committed with this host's worklog, by this host only: a commit of this host that changes another host's
file is refused like one that changes another host's worklog (``foreign``).

The file is rewritten only when something in it changed other than its times, or its ``synced_at`` is
older than ``HEARTBEAT``: a sync with nothing new makes no commit (no merge commits back and forth), and
the others still see within ``HEARTBEAT`` that the host is alive.  The reading side (limits, the budget's
sum) is ``agent/fleetbudget.py``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from agentd.agent import fleetbudget
from agentd.agent.budget import utc_day
from agentd.config.worklogdir import FLEET_WORKLOG
from agentd.errors import AgentdError
from agentd.fleet import state
from agentd.times import iso, parse

HEARTBEAT = 1800.0  # seconds: a file older than this is rewritten even when nothing in it changed
CUT = fleetbudget.CUT


def rel(host: str) -> str:
    """This host's file, relative to the clone."""
    return f"{fleetbudget.HOSTS_DIR}/{host}.json"


def _cut(value, n: int) -> tuple[str, bool]:
    return fleetbudget._cut(value, n)


def _strings(d: dict) -> dict:
    out, cut = {}, False
    for k, v in d.items():
        out[k], c = _cut(v, CUT.get(k, 100))
        cut |= c
    return {**out, "cut": True} if cut else out


def spend_today(cfg, store, now: float) -> dict:
    """Today's spend (UTC day): the dollars of the state dir's ledger (what the budgets count), the tokens
    of this host's runs started today (as `agentd status`'s ``spend_today``)."""
    day = utc_day(now)
    out = {"day": day, "usd": 0.0, "input_tokens": 0, "output_tokens": 0}
    if store is not None:
        out["usd"] = round(float(store.ledger_day(day)[1]), 6)
        tin, tout = store.db.execute(
            "SELECT COALESCE(sum(input_tokens), 0), COALESCE(sum(output_tokens), 0) FROM runs WHERE started_at >= ?"
            " AND started_at < ? AND (host = ? OR host IS NULL)", (day, f"{day}T99", cfg.host)).fetchone()
        out["input_tokens"], out["output_tokens"] = int(tin), int(tout)
    return out


def build(cfg, wake: dict | None = None, now: float | None = None) -> dict:
    """This host's record, live (`fleet status` shows this host so).  ``wake``: the wake this sync is part
    of (``{"at", "kind"}``), None to keep the last one the file holds."""
    from agentd.queue import queue  # lazy: the queue (and the worklog's read) only when a record is made

    now = time.time() if now is None else now
    store = None
    if cfg.store_path.exists():
        from agentd.store.store import Store  # lazy: sqlite only where a store exists

        store = Store(cfg.store_path)
    rec: dict = {"host": cfg.host, "synced_at": iso(now), "wake": wake or (old(cfg) or {}).get("wake"),
                 "last_run": None, "running": [], "queue_top": None, "spend": spend_today(cfg, store, now)}
    if store is not None:
        runs = store.runs(limit=1, host=cfg.host)
        if runs:
            r = runs[0]
            rec["last_run"] = _strings({"id": r["run_id"], "task": r["task_id"], "status": r["status"],
                                        "at": r["started_at"]})
        rec["running"] = [_strings({"id": r["run_id"], "task": r["task_id"], "at": r["started_at"]})
                          for r in store.runs(limit=5, host=cfg.host, status="running")]
    if cfg.worklog_path.is_file():
        try:
            view = queue.load(cfg, store)
            top = queue.pick(view.tasks)
        except (AgentdError, OSError):
            top = None  # (`agentd status` says why; the record goes without it)
        if top is not None:
            rec["queue_top"] = _strings({"id": top.id, "title": top.title, "why": top.why})
    return rec


def path(cfg) -> Path:
    return Path(cfg.worklog_dir) / rel(cfg.host)


def old(cfg) -> dict | None:
    """The file as this host last wrote it (None: none, or unreadable)."""
    rec, _ = fleetbudget.read_host_file(path(cfg), cfg.host)
    return rec


def _same(a: dict | None, b: dict) -> bool:
    """Whether two records differ only in their times (``synced_at``, the wake's ``at``)."""
    if a is None:
        return False
    strip = lambda r: {**r, "synced_at": "", "wake": {**(r.get("wake") or {}), "at": ""}}  # noqa: E731
    return json.dumps(strip(a), sort_keys=True) == json.dumps(strip(fleetbudget.normal(b["host"], b)[0] or {}),
                                                               sort_keys=True)


def record(cfg, wake: dict | None = None, now: float | None = None) -> bool:
    """Write this host's file if anything but its times changed, or it is older than ``HEARTBEAT``: True if
    written.  Raises OSError (a full disk: the caller warns)."""
    now = time.time() if now is None else now
    new = build(cfg, wake, now)
    before = old(cfg)
    if before is not None and _same(before, new):
        at = parse(before.get("synced_at") or "")
        if at is not None and 0 <= now - at < HEARTBEAT:
            return False
    write(path(cfg), new)
    return True


def write(p: Path, rec: dict) -> None:
    """Replace the file, atomically (``state.write_file``; raises OSError)."""
    p.parent.mkdir(exist_ok=True)
    state.write_file(p, rec)


def commit(repo, message: str) -> bool:
    """Commit this host's worklog, its file and ``fleet_worklog.txt`` (a person's edit of it on this host: a
    merge would not go over it uncommitted) as they are now, nothing else (other staged changes stay staged):
    the only paths this host commits.  True if there was something new."""
    return repo.commit_paths([repo.own, rel(repo.cfg.host), FLEET_WORKLOG], message)

