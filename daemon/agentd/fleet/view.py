"""`agentd fleet status`: every host of the fleet at once (docs/fleet.md#fleet-status).  This host live, the
others from their ``hosts/<host>.json`` as the last pull left them in the clone (no fetch: it answers
without the remote), each with when it last synced, flagged stale past ``STALE``; and the fleet budget."""

from __future__ import annotations

import time

from agentd.agent import fleetbudget
from agentd.errors import AgentdError, ConfigError
from agentd.escapes import safe
from agentd.fleet import hostfile, layout, repo, state
from agentd.times import iso, next_utc_day, parse

STALE = 6 * 3600.0  # seconds since a host's last sync past which `fleet status` flags it


def collect(cfg, now: float | None = None) -> dict:
    """``hosts`` (this one first, then by name), ``budget`` and ``warnings``."""
    now = time.time() if now is None else now
    mine = hostfile.build(cfg, None, now)
    last = (state.read(cfg) or {}).get("last_ok")
    mine["synced_at"] = _iso(last)
    hosts = [{**mine, "this": True}]
    others, warnings = fleetbudget.read_hosts(cfg.worklog_dir, skip=cfg.host)
    for host in sorted(set(layout.other_worklogs(cfg)) - set(others)):
        hosts.append({"host": host, "this": False, "synced_at": None, "no_file": True})
    hosts += [{**others[h], "this": False} for h in sorted(others)]
    hosts.sort(key=lambda h: (not h["this"], h["host"]))
    for h in hosts:
        at = parse(h.get("synced_at") or "") if h.get("synced_at") else None
        h["synced_ago_s"] = None if at is None else round(now - at, 1)
        h["stale"] = at is None or now - at > STALE
    budget: dict = {"usd_per_day": None, "problem": None}
    try:
        got = fleetbudget.fleet_spend(cfg, _store(cfg), now)
    except ConfigError as e:
        budget["problem"] = " ".join(str(e).split())[:500]
    else:
        if got is not None:
            warnings = list(dict.fromkeys(warnings + got.warnings))
            budget.update(usd_per_day=got.budget, day=got.day, spent_usd=round(got.total, 6),
                          by_host={k: round(v, 6) for k, v in got.hosts.items()}, reached=got.spent,
                          figures=got.figures(), until=next_utc_day(now) if got.spent else None)
    return {"host": cfg.host, "remote": layout.redacted_url(_url(cfg)), "hosts": hosts, "budget": budget,
            "warnings": warnings, "stale_after_s": STALE}


def _store(cfg):
    if not cfg.store_path.exists():
        return None
    from agentd.store.store import Store  # lazy: sqlite only where a store exists

    return Store(cfg.store_path)


def _url(cfg) -> str:
    try:
        return repo.Repo(cfg).url()
    except (AgentdError, OSError):  # a clone git can't read: the view goes on without its URL
        return ""


def _iso(t) -> str | None:
    return iso(t) if isinstance(t, (int, float)) else None


def lines(info: dict) -> list[str]:
    """The text `agentd fleet status` prints (every string from another host made safe for a terminal)."""
    out = [f"fleet: {safe(info['remote'] or 'no remote', 200)}: {len(info['hosts'])} host(s)"]
    for h in info["hosts"]:
        name = safe(h["host"], 64) + (" (this host)" if h["this"] else "")
        if h.get("no_file"):
            out.append(f"{name}: no hosts/{safe(h['host'], 64)}.json yet (it has not synced since it got a fleet "
                       "status, or not at all)")
            continue
        ago = h["synced_ago_s"]
        synced = "never synced" if ago is None else f"synced {_ago(ago)} ago"
        out.append(f"{name}: {synced}" + (f" (stale: more than {_ago(info['stale_after_s'])})" if h["stale"] else ""))
        w = h.get("wake")
        out.append("  last wake:   " + (f"{safe(w.get('at'), 40)} ({safe(w.get('kind'), 40)})" if w else "none recorded"))
        r = h.get("last_run")
        out.append("  last run:    " + (f"{safe(r['task'], 100)}: {safe(r['status'], 40)} (started {safe(r['at'], 40)}) "
                                        f"({safe(r['id'], 100)})" if r else "none"))
        running = h.get("running") or []
        out.append("  running:     " + (", ".join(f"{safe(x['task'], 100)} ({safe(x['id'], 100)}, since "
                                                  f"{safe(x['at'], 40)})" for x in running) or "nothing"))
        q = h.get("queue_top")
        out.append("  queue top:   " + (f"{safe(q['id'], 100)}: {safe(q['title'], 200)} — {safe(q['why'], 300)}"
                                        if q else "nothing to run"))
        s = h.get("spend") or {}
        out.append(f"  spent today: ${s.get('usd', 0):.2f}, {s.get('input_tokens', 0)} tokens in, "
                   f"{s.get('output_tokens', 0)} out (UTC {safe(s.get('day'), 10)})")
    b = info["budget"]
    if b.get("problem"):
        out.append(f"fleet budget: the fleet config is bad: {safe(b['problem'], 500)}")
    elif b.get("usd_per_day") is None:
        out.append("fleet budget: none set (fleet_budget_usd in fleet.yaml)" + (
            f"; spent {safe(b['figures'], 400)}" if b.get("figures") else ""))
    else:
        out.append(f"fleet budget: {safe(b['figures'], 400)}" + (
            f": spent; agent tasks wait until {b['until']}" if b["reached"] else ""))
    out += [f"warning: {safe(w, 300)}" for w in info["warnings"][:20]]
    return out


def _ago(seconds: float) -> str:
    return state._ago(seconds)
