"""Whether agent tasks can run now: a backend configured, not holding back after a refused key
or a rate limit, today's budget not spent, and a CLI's subscription window not past agentd's share
(``window``).  Command tasks and experiments don't care."""

from __future__ import annotations

import json
import os
import time

from agentd.agent import window
from agentd.providers.choice import CLI_EXES, KEY_VARS, chosen
from agentd.times import next_utc_day, parse as parse_time


def agent_backend(cfg) -> tuple[str | None, str]:
    """Which LLM backend agent tasks would use, or None and why not."""
    name, env = chosen(cfg), cfg.env
    if name == "none":
        return None, ("provider is auto and neither ANTHROPIC_API_KEY nor OPENAI_API_KEY is set"
                      if cfg["provider"] == "auto" else "provider is none")
    if name == "anthropic" and not env.get(KEY_VARS[name]):
        return None, "provider is anthropic but ANTHROPIC_API_KEY is not set"
    if name == "openai" and not (env.get(KEY_VARS[name]) or cfg["base_url"] or env.get("OPENAI_BASE_URL")):
        return None, "provider is openai but OPENAI_API_KEY is not set"
    exe = CLI_EXES.get(name)
    if exe and not on_path(exe, env.get("PATH", "")):
        return None, f"provider is {name} but `{exe}` is not on PATH"
    return name, ""


def key_fingerprint(cfg, backend: str) -> str:
    """A short hash of the backend's key, to notice when a person has changed it (never the key)."""
    # lazy: hashlib loads OpenSSL (~5 ms); most runs of queue and status never hash
    import hashlib

    value = cfg.env.get(KEY_VARS.get(backend, ""), "")
    return hashlib.sha256(f"agentd:{backend}:{value}".encode()).hexdigest()[:12]


def held(cfg, store, backend: str, now: float) -> tuple[None, str] | None:
    """(None, why) when the backend refused this same key, or is rate-limited until later."""
    hold = store.holds().get(backend)
    if hold is None:
        return None
    if hold["kind"] == "auth" and hold["fingerprint"] == key_fingerprint(cfg, backend):
        return None, (f"{backend} refused its key at {hold['created_at']} ({hold['reason']}); agent tasks wait "
                      f"until the key changes")
    # lazy: the store's clock only when a hold is read; keeps queue's and status's start-up
    from agentd.store.clock import MAX_WAIT_S

    until = parse_time(hold["until"])  # (re-based where the clock jumped: clock.rebase)
    if hold["kind"] == "deferred" and until is not None and now < until <= now + MAX_WAIT_S:
        return None, f"{backend} is rate-limited until {hold['until']} ({hold['reason']})"
    return None


def spent(cfg, store, backend: str, now: float) -> tuple[None, str] | None:
    """(None, why) when today's runs have used up a daily budget (UTC day)."""
    # lazy: the budget only when a daily limit is asked about; keeps queue's and status's start-up
    from agentd.agent.budget import daily_reason
    reason = daily_reason(cfg, store)
    if reason is None:
        return None
    return None, f"the daily budget is spent: {reason[len('budget: '):]}; agent tasks wait until {next_utc_day(now)}"


def fleet_spent(cfg, store, now: float) -> tuple[None, str] | None:
    """(None, why) when the fleet's hosts together have spent fleet_budget_usd today (docs/fleet.md)."""
    # lazy: the fleet's files only when agent tasks are asked about; keeps queue's and status's start-up
    from agentd.agent import fleetbudget
    return fleetbudget.wait(cfg, store, now)


def on_path(exe: str, path: str) -> bool:
    return any(os.access(os.path.join(d, exe), os.X_OK) for d in path.split(":") if d)


SANDBOX_CHECK_TTL = 600  # seconds a sandbox check is trusted while nothing it depends on changed


def sandbox_problem(cfg, now: float | None = None) -> str | None:
    """Why the sandbox agent tools need can't be used now (with the fix), or None.

    Probing bwrap takes a few hundred ms, so the answer is kept in ``<state>/sandbox-check.json``
    for ten minutes, keyed by what it depends on: the config, the bwrap binary, the boot and the
    kernel's user-namespace switches.  ``sandbox: off`` needs no check.
    """
    if (cfg.values.get("sandbox") or "bwrap") == "off":
        return None
    now = time.time() if now is None else now
    key = _sandbox_key(cfg)
    path = cfg.state_dir / "sandbox-check.json"
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if d["key"] == key and 0 <= now - d["at"] < SANDBOX_CHECK_TTL:
            return d["problem"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    # lazy: the sandbox only for a CLI agent's check; keeps queue's and status's start-up
    from agentd.sandbox.sandbox import unavailable

    problem = unavailable(cfg)
    try:
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "at": now, "problem": problem}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a full or read-only state dir: check again next time
    return problem


def _sandbox_key(cfg) -> str:
    parts = [repr(sorted((k, str(v)) for k, v in cfg.values.items())), str(os.geteuid())]
    dirs = (cfg.env.get("PATH") or os.defpath).split(":")
    exe = next((os.path.join(d, "bwrap") for d in dirs if d and on_path("bwrap", d)), "/usr/bin/bwrap")
    try:
        st = os.stat(exe)
        parts.append(f"{exe}:{st.st_mtime_ns}:{st.st_size}")
    except OSError:
        parts.append(f"{exe}:missing")
    for p in ("/proc/sys/kernel/random/boot_id", "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
              "/proc/sys/kernel/unprivileged_userns_clone", "/proc/sys/user/max_user_namespaces"):
        try:
            with open(p, encoding="ascii") as f:
                parts.append(f.read().strip())
        except OSError:
            parts.append("-")
    return "|".join(parts)


def agents_wait(cfg, store, now: float) -> tuple[str | None, str]:
    """(the backend agent tasks would use, "") or (None, why they wait)."""
    backend, reason = agent_backend(cfg)
    if store is not None and backend is not None:
        backend, reason = (held(cfg, store, backend, now) or spent(cfg, store, backend, now)
                           or fleet_spent(cfg, store, now)
                           or window.wait(cfg, store, backend, now) or (backend, reason))
    if backend is not None and (problem := sandbox_problem(cfg, now)):
        return None, f"{problem} (`agentd doctor` says how to fix it)"
    return backend, reason
