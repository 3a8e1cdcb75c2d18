"""``agentd status``: where things are, what is running or ran last, when the timer fires."""

from __future__ import annotations

import time
from pathlib import Path

from agentd.agent import window
from agentd.agent.backends import sandbox_problem
from agentd.cli.views import wrapped
from agentd.config.provenance import sandbox_off_by
from agentd.errors import WorklogError
from agentd.escapes import safe
from agentd.fleet import state as fleet_state
from agentd.providers.choice import chosen
from agentd.queue import queue
from agentd.wake import diskuse
from agentd.wake.lock import wake_running
from agentd.worklog import standing
from agentd.workspace.rundir import read_progress

MAX_RULES_LISTED = 100  # of the rules in force, those `status --json` lists (``rules_total`` counts them all)
MAX_RULE_TEXT = 1000  # characters of each one's text there
SHOWN_RULES = 10  # and those the text lists, each on one line


def collect(cfg) -> dict:
    info: dict = {"host": cfg.host, "worklog": str(cfg.worklog_path), "worklog_exists": cfg.worklog_path.exists(),
                  "config_file": str(cfg.config_file), "config_exists": cfg.config_file.exists(),
                  "state_dir": str(cfg.state_dir), "workspace": str(cfg.workspace),
                  "progress": None, "last_run": None, "next_task": None, "counts": {},
                  "unreadable_lines": 0, "lost_entries": 0, "lost_entries_past_restores": 0, "agent_tasks_wait": None, "worklog_problem": None,
                  "timer_next_elapse": None, "timer_installed": False, "waiting": [], "sandbox": None,
                  "disk_full": disk_full(cfg), "rules": [], "rules_total": 0, "spend_today": None,
                  "window": None}
    store = None
    if cfg.store_path.exists():
        # lazy: only where a store exists: a host's first `agentd status` loads none of store/'s modules
        from agentd.store.store import Store

        store = Store(cfg.store_path)
        runs = store.runs(limit=1, host=cfg.host)
        if runs:
            last = runs[0]
            info["last_run"] = {k: last[k] for k in ("run_id", "task_id", "kind", "status", "started_at",
                                                     "duration_s", "exit_code", "input_tokens", "output_tokens",
                                                     "cost_usd", "provider", "summary", "reason", "run_dir")}
            info["progress"] = read_progress(last["run_dir"])
            seen = as_seen(cfg, store, [last])[0]
            if seen["status"] != last["status"]:
                info["last_run"] = {k: seen[k] for k in info["last_run"]}
                if seen["status"] != "interrupted":  # it finished while we looked
                    info["progress"] = read_progress(last["run_dir"])
                elif info["progress"] and info["progress"].get("status") == "running":
                    info["progress"] = {**info["progress"], "status": "failed", "current_phase": "interrupted",
                                        "notes": "the wake running it was killed; the next wake records it"}
    view = None
    if info["worklog_exists"] or cfg.worklog_path.is_symlink():
        try:
            view = queue.load(cfg, store, wake_running=wake_running(cfg))
        except WorklogError as e:  # status still says where things are and what ran
            info["worklog_problem"] = str(e)
    if view is not None:
        info["counts"] = view.tasks.counts()
        nxt = queue.pick(view.tasks)
        if nxt:
            info["next_task"] = {"id": nxt.id, "title": nxt.title, "score": nxt.score, "why": nxt.why}
        info["unreadable_lines"] = view.read.state.error_count
        info["lost_entries"] = view.lost
        info["lost_entries_past_restores"] = view.lost_spent
        waiting = view.agent_backend is None and view.tasks.agents_open()
        info["agent_tasks_wait"] = view.agent_reason if waiting else None
        info["waiting"] = [{"task_id": t.id, "why": t.why} for t in view.tasks.dynamic if t.status == "waiting"]
        rules = standing.in_force(view.read.state)
        info["rules_total"] = len(rules)
        info["rules"] = [{"id": r.id, "line": r.line, "kind": r.kind, "text": r.text[:MAX_RULE_TEXT]}
                         for r in rules[:MAX_RULES_LISTED]]
    if store is not None:  # (after the queue: its load re-based the deadlines a jumped clock left)
        # lazy: only where a store exists: a host's first `agentd status` loads none of store/'s modules
        from agentd.store import clock

        info["clock"] = clock.seen(store.db)

    info["spend_today"] = spend_today(cfg, store)
    info["window"] = window.describe(cfg, store, chosen(cfg), time.time())
    info["fleet"] = fleet_state.describe(cfg)  # the last fleet sync (None: the worklog dir is no fleet clone)
    mode = cfg.values.get("sandbox") or "bwrap"
    info["sandbox"] = {"mode": mode, "problem": sandbox_problem(cfg), "off_by": sandbox_off_by(cfg)}
    unit = _unit_dir(cfg) / "agentd.timer"
    if unit.exists():
        info["timer_installed"] = True
        # lazy: only where the timer is installed (systemctl is asked for its next elapse)
        from agentd.platform import systemd

        info["timer_next_elapse"] = systemd.timer_next_elapse(cfg.env)
    return info


def spend_today(cfg, store, now: float | None = None) -> dict:
    """Today's spend (UTC day) against ``budget.usd_per_day``: the dollars from the budget's ledger (what
    the limit is checked against), the tokens in and out of this host's runs started today."""
    t = time.time() if now is None else now
    day = time.strftime("%Y-%m-%d", time.gmtime(t))
    out = {"day": day, "usd": 0.0, "usd_per_day": float(cfg["budget"]["usd_per_day"]), "input_tokens": 0,
           "output_tokens": 0}
    if store is not None:
        out["usd"] = store.ledger_day(day)[1]
        tin, tout = store.db.execute(
            "SELECT COALESCE(sum(input_tokens), 0), COALESCE(sum(output_tokens), 0) FROM runs WHERE started_at >= ?"
            " AND started_at < ? AND (host = ? OR host IS NULL)", (day, f"{day}T99", cfg.host)).fetchone()
        out["input_tokens"], out["output_tokens"] = int(tin), int(tout)
    return out


def disk_full(cfg) -> list[dict]:
    """The (nearly) full disks of the state dir and workspace: what fills each one, and the fix."""
    return [{"holds": x.names, "mount": x.mount, "free": x.free, "lines": x.lines(),
             "agents_wait": "workspace" in x.names} for x in diskuse.low(cfg)]


def as_seen(cfg, store, runs: list[dict]) -> list[dict]:
    """The runs as `runs`, `status` and `show` all report them: a run recorded ``running`` while no wake
    holds the lock was cut off (its wake was killed) and is ``interrupted`` (the next wake records it so);
    one that finished while we looked is read again."""
    if not any(r["status"] == "running" for r in runs):
        return runs

    if wake_running(cfg):
        return runs
    out = []
    for r in runs:
        if r["status"] == "running":
            again = store.run(r["run_id"]) or r
            r = again if again["status"] != "running" else {**again, "status": "interrupted"}
        out.append(r)
    return out


def _unit_dir(cfg):
    base = cfg.env.get("XDG_CONFIG_HOME") or str(Path(cfg.env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "systemd" / "user"


def _waits_for(run: dict) -> str:
    """What a parked run waits for: "waiting for approval ap-…: write access to `/srv`", "waiting for the
    usage limit to reset at …" (its summary says it whole; never cut: it may hold an approval's `what`)."""
    summary = " ".join((run.get("summary") or "").split())
    if summary.startswith("Waiting "):
        return "w" + summary[1:]
    return f"waiting: {run.get('reason') or summary or 'for a person or a reset'}"


def text(info: dict) -> list[str]:
    out = [f"host:      {safe(info['host'])}",
           f"worklog:   {safe(info['worklog'])}" + ("" if info["worklog_exists"] else "  (missing: `agentd init` makes one)"),
           f"config:    {safe(info['config_file'])}" + ("" if info["config_exists"] else "  (none; defaults in use)"),
           f"state:     {safe(info['state_dir'])}"]
    if info.get("worklog_problem"):
        out.append(f"problem:   {safe(info['worklog_problem'])}")
    if info["counts"]:
        out.append("tasks:     " + ", ".join(f"{n} {s}" for s, n in sorted(info["counts"].items())))
    if info.get("unreadable_lines"):
        out.append(f"warning:   {info['unreadable_lines']} line(s) of the worklog could not be read; "
                   "`agentd queue` lists them")
    if info.get("lost_entries"):
        spent = info.get("lost_entries_past_restores") or 0
        out.append(f"warning:   {info['lost_entries']} agentd entr{'y' if info['lost_entries'] == 1 else 'ies'} "
                   "missing from the worklog; "
                   + (f"{spent} saved over after 3 restores stay in agentd's copy only" if spent == info["lost_entries"]
                      else "a wake appends agentd's copy again once the file is still"
                      + (f" ({spent} saved over after 3 restores stay in agentd's copy only)" if spent else "")))
    if info.get("agent_tasks_wait"):
        out += wrapped(info["agent_tasks_wait"], "agents:    wait: ", " " * 11)
    for d in info.get("disk_full") or []:
        out.append(f"disk:      {safe(d['lines'][0])} (holds the {' and the '.join(d['holds'])})")
        out += [f"           {safe(x)}" for x in d["lines"][1:]]
        if d["agents_wait"]:
            out.append("           agent tasks wait until it has room; command tasks still run")
    out += fleet_state.status_lines(info.get("fleet"))
    sp = info.get("spend_today")
    if sp:
        out.append(f"spend:     today ${sp['usd']:.2f} of ${sp['usd_per_day']:.2f} (usd_per_day), UTC day; "
                   f"{sp['input_tokens']:,} tokens in, {sp['output_tokens']:,} out")
    if info.get("window"):
        got = window.lines(info["window"])
        out += [f"window:    {got[0]}", *(f"           {x}" for x in got[1:])]
    rules = info.get("rules") or []
    for r in rules[:SHOWN_RULES]:  # the person's words: made visible, cut to a line
        what = "critical directive" if r["kind"] == "directive" else "rule"
        out.append(f"rule:      {safe(r['id'])} (line {r['line']}, {what}): {safe(r['text'], 80)}")
    if info.get("rules_total", 0) > min(len(rules), SHOWN_RULES):
        out.append(f"           … and {info['rules_total'] - min(len(rules), SHOWN_RULES)} more rules in force "
                   "(`agentd status --json` lists them)")
    for w in info.get("waiting") or []:  # (never cut: it may hold an approval's `what`)
        out.append(f"waiting:   {safe(w['task_id'])}: {safe(w['why'], spaces=True)}")
    sb = info.get("sandbox")
    if sb and sb["mode"] == "off":
        out.append(f"sandbox:   OFF ({safe(sb.get('off_by') or 'sandbox: off')}): agents' tools run without it")
    elif sb and sb["problem"]:
        out += wrapped(f"{sb['problem']}; agent tasks wait (`agentd doctor`)", "sandbox:   not usable: ", " " * 11)
    if info.get("next_task"):
        n = info["next_task"]
        out.append(f"next:      {safe(n['id'])} ({n['score']:.2f}) {safe(n['title'], 70)}")
    r = info["last_run"]
    if r:
        out.append(f"last run:  {r['run_id']} {safe(r['task_id'])} {r['status']} at {r['started_at']}"
                   + (f", {r['duration_s']:.1f} s" if r["duration_s"] is not None else ""))
        if r.get("summary"):
            out.append(f"           {safe(r['summary'], 100)}")
    p = info["progress"]
    if p and r and r["status"] == "waiting":  # parked (progress.json says blocked): what it waits for
        out.append(f"progress:  {safe(_waits_for(r), spaces=True)} · since {safe(p.get('phase_started'))}")
    elif p:
        out.append(safe(f"progress:  {p.get('status')} · phase {p.get('current_phase')} since {p.get('phase_started')}"
                        f" · updated {p.get('last_update')}"))
    if info.get("clock"):
        # lazy: only where a store exists and saw the clock jump (store/ stays off a first status's start-up)
        from agentd.store.clock import status_lines

        out += status_lines(info["clock"])
    if info["timer_installed"]:
        out.append(f"timer:     next wake {info['timer_next_elapse'] or 'unknown (systemctl did not say)'}")
    else:
        out.append("timer:     not installed (`agentd install`)")
    return out
