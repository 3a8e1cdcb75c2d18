"""``agentd doctor``'s checks of the agent's confinement: the OS sandbox and its canary, and which network
each kind of task gets."""

from __future__ import annotations

from typing import Any

from agentd.cli.doctor_check import FAIL, OK, WARN, Check
from agentd.config.provenance import sandbox_off_by
from agentd.sandbox import bwrap, egress, sandbox
from agentd.sandbox.canary import canary as run_canary


def check_sandbox(cfg: Any, canary: bool = True) -> list[Check]:
    """The OS sandbox of the agent's tools: which, whether it works, how to fix it, and its canary."""
    agents = cfg.values.get("provider") != "none"
    bad = FAIL if agents else WARN  # with provider: none no agent task runs anyway
    if (cfg.values.get("sandbox") or "bwrap") == "off":
        by = sandbox_off_by(cfg)
        checks = [Check(WARN, f"sandbox: off ({by}): the agent's shell runs unconfined, as you",
                        f"install bubblewrap and remove {'`sandbox: off`' if by.startswith('`') else by} "
                        "(see docs/security.md)")]
    else:
        st = bwrap.status(cfg.env)
        if not st.ok:
            return [Check(bad, f"sandbox: {st.reason}; agent tasks wait until it works", st.fix or "")]
        conflicts = sandbox.policy_for(cfg).conflicts
        if conflicts:
            return [Check(bad, f"sandbox: can't protect agentd: {conflicts[0]}; agent tasks wait",
                          "set `workspace` to a directory of its own (or leave it unset)")]
        policy = sandbox.policy_for(cfg)
        shown = sum(1 for h in policy.hidden if h.exists())
        checks = [Check(OK, f"sandbox: bwrap {st.version or ''} ({st.bwrap}) works: root read-only, workspace "
                            f"{policy.workspace} and a private /tmp writable, {shown} paths hidden, own PID "
                            f"namespace".replace("  ", " "))]
    if not canary:
        return checks

    r = run_canary(cfg)
    if r["error"]:
        return checks + [Check(bad, f"sandbox canary did not run: {r['error']}", "see docs/security.md")]
    # the config's own `network: true` grants the network: reaching it is what was asked for, not a leak
    granted = {p["name"] for p in r["probes"] if p["reached"] and p["name"].startswith("network")
               and r["mode"] != "off" and cfg.values.get("network") is True}
    rows = "\n".join(f"       {'granted' if p['name'] in granted else 'REACHED' if p['reached'] else 'refused'}  "
                     f"{p['name']}: {p['detail']}" + (" (the config's `network: true`)" if p["name"] in granted else "")
                     for p in r["probes"])
    reached = [p["name"] for p in r["probes"] if p["reached"] and p["name"] not in granted]
    if not reached:
        return checks + [Check(WARN if granted else OK,
                               f"sandbox canary: {len(r['probes'])} probes, nothing reached"
                               + (f" but the network the config grants ({FULL})" if granted else "") + f":\n{rows}",
                               "list the hosts tasks need instead (`network: [pypi.org]`)" if granted else "")]
    status = WARN if r["mode"] == "off" else FAIL
    return checks + [Check(status, f"sandbox canary: {len(reached)} of {len(r['probes'])} probes reached "
                                   f"what the agent must not:\n{rows}",
                           "install bubblewrap and remove `sandbox: off`" if r["mode"] == "off"
                           else "report this as a bug: the sandbox policy leaks (docs/security.md)")]


FULL = "full network, no egress filter"


def check_network(cfg: Any) -> Check:
    """Which network each kind of task gets under this config (docs/security.md#network): WARN where it is
    the full network with no egress filter for every agent task (``network: true``, ``sandbox: off``)."""
    allow = egress.allowlist(cfg, {})
    off = (cfg.values.get("sandbox") or "bwrap") == "off"
    hosts = f"{', '.join(allow)} (and their subdomains), through agentd's proxy" if allow else ""
    api = FULL if off or allow is None else f"only {hosts}" if allow else "none"
    cli = FULL if off or allow is None else "their provider, through agentd's proxy (which adds the key), " + (
        f"and {', '.join(allow)} (and their subdomains)" if allow else "nothing else")
    rows = "\n".join(f"       {k}: {v}" for k, v in (
        ("API agents' shell", api), ("CLI agents", cli),
        ("command tasks", "the host's network (they run as you, outside the sandbox)"),
        *([] if off else [("a task's own", "{network: [hosts]} allows those hosts through agentd's proxy, "
                                           f"{{network: true}} is the {FULL}, {{network: false}} none; a person's "
                                           "approval may add hosts")])))
    if off:
        return Check(WARN, f"network: {FULL}, for every task (`sandbox: off`):\n{rows}",
                     "install bubblewrap and remove `sandbox: off` (see docs/security.md)")
    if allow is None:
        return Check(WARN, f"network: {FULL}, for every agent task by default (`network: true` in the config):\n"
                           f"{rows}", "set `network:` to the hosts your tasks need ([pypi.org, github.com]), or "
                                      "remove it and give {network: true} to the tasks that need it")
    return Check(OK, f"network of each kind of task by default (config `network: "
                     f"{'[' + ', '.join(allow) + ']' if allow else 'false'}`):\n{rows}")
