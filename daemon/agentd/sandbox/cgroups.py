"""cgroup limits around what a model drives: processes (pids), memory and CPU weight.

bwrap confines what a sandboxed command may touch, not how much it may take.  Each agent
shell command and each CLI agent run gets a cgroup of its own, with the limits of the config
(``limit_pids``, ``limit_memory``, ``limit_cpu_weight``), where the host lets agentd make one.
``host()`` finds, once per process, the first that works:

1. ``cgroup-v2``: agentd's own cgroup (``0::`` in /proc/self/cgroup) is delegated to it (a
   systemd unit with ``Delegate=yes``, or root): a child ``agentd-<name>`` gets ``pids.max``,
   ``memory.max`` (and ``memory.swap.max`` 0), ``cpu.weight``.  The no-internal-processes rule
   means agentd first moves itself into a leaf ``agentd-self``.  As root, a top-level ``agentd``
   cgroup serves when its own can't be delegated.
2. ``cgroup-v1``: the ``pids``, ``memory``, ``cpu`` hierarchies where agentd may write:
   ``<hierarchy>/<own path>/agentd/<name>`` with ``pids.max``, ``memory.limit_in_bytes`` (and
   ``memory.memsw.limit_in_bytes``), ``cpu.shares``.
3. ``systemd-run``: ``systemd-run --user --scope -p TasksMax= -p MemoryMax= -p CPUWeight=``
   around the command, when a user systemd manager answers (it can't say afterwards which limit
   was hit).
4. ``none``: the command runs without limits; ``doctor_line`` says why and how to fix it.

The command joins its cgroup before it execs: a tiny ``/bin/sh`` wrapper (``Group.wrap``) writes
its own pid into each ``cgroup.procs`` and then execs bwrap, so bwrap and everything inside are
in it.  Afterwards the group is read (``pids.events`` max, ``memory.events`` / ``memory.oom_control``
oom_kill), what is left in it is killed (``cgroup.kill``, or SIGKILL to each pid), and it is
removed.  A group's name carries the pid of the agentd that made it
(``<run_id>.<pid>.<n>``); one whose agentd is gone (killed mid-run) is emptied and removed by the
next probe.

The parts: ``cgroup_probe`` finds what the host allows, ``cgroup_group`` makes, joins, reads and
removes one command's group, ``systemd_scope`` is the ``systemd-run`` fallback, ``cgroup_files`` the
file reads and writes; this module keeps the probe's answer and says what a run gets.

API::

    with cgroups.group(cfg, run_id) as cg:
        rc, ... = procs.run(cg.wrap(argv), ...)
    cg.hits                       # ["the pids limit (1024) was reached: fork failed 3 time(s)"]
    manifest["limits"] = cgroups.describe(cfg)   # or cg.describe() after the run
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from agentd.config.limits import Limits, limits, size_text
from agentd.sandbox.cgroup_files import remove
from agentd.sandbox.cgroup_group import OFF, Group, no_controllers, record
from agentd.sandbox.cgroup_probe import Host, clean_stale, probe
from agentd.sandbox.systemd_scope import systemd_run_argv, systemd_run_missing

__all__ = ["ROOT", "FIX", "Host", "Group", "reset_cache", "host", "group", "describe", "doctor_line", "note",
           "remove", "systemd_run_argv", "systemd_run_missing"]

ROOT = Path("/sys/fs/cgroup")  # where cgroup file systems are mounted (tests point it elsewhere)
FIX = ("run agentd as its systemd user service with `Delegate=yes` (units/agentd.service has it; "
       "`agentd install`), or on a cgroup v2 host as root; see docs/operations.md#resource-limits")

_HOSTS: dict[tuple, Host] = {}
_SEQ = itertools.count()


def reset_cache() -> None:
    _HOSTS.clear()


def host(env: dict | None = None) -> Host:
    """What this host allows (probed once per process); stale groups of dead agentds are removed."""
    key = (str(ROOT), (env or {}).get("XDG_RUNTIME_DIR"))
    if key not in _HOSTS:
        _HOSTS[key] = h = probe(Path(ROOT), env or {})
        for d in set(h.dirs.values()):
            clean_stale(Path(d), h.mechanism)
    return _HOSTS[key]


def group(cfg, run_id: str | None) -> Group:
    """The cgroup for one command of run ``run_id`` (a context manager; nothing when no cfg)."""
    name = f"{run_id or 'tools'}.{os.getpid()}.{next(_SEQ)}"
    if cfg is None:
        return Group(Host("none", why_none="no config"), Limits(), name)
    return Group(host(cfg.env), limits(cfg), name, cfg.env)


def describe(cfg) -> dict:
    """The limits a run of this host gets, for its manifest (before it runs)."""
    lim, h = limits(cfg), host(cfg.env)
    wanted = lim.wanted()
    if not wanted:
        return record("none", {}, OFF)
    applied = wanted if h.mechanism == "systemd-run" else {c: n for c, n in wanted.items() if c in h.dirs}
    return record(h.mechanism if applied else "none", applied,
                  None if applied else h.why_none or no_controllers(wanted))


def doctor_line(cfg) -> tuple[str, str, str]:
    """(OK|WARN, what, fix) for ``agentd doctor``: which limits the agent's tools get, and how."""
    d = describe(cfg)
    wanted = limits(cfg).wanted()
    shown = ", ".join(f"{k} {size_text(v) if k == 'memory' else v}" for k, v in
                      (("pids", d["pids"]), ("memory", d["memory"]), ("cpu weight", d["cpu_weight"])) if v)
    if not wanted:
        return "OK", "resource limits: off in the config (limit_pids, limit_memory, limit_cpu_weight)", ""
    if d["mechanism"] == "none":
        return ("WARN", f"resource limits: none possible here, the agent's tools run without pids, memory or CPU "
                f"limits ({d.get('why_none')})", FIX)
    missing = [c for c in wanted if not d["cpu_weight" if c == "cpu" else c]]
    if missing:
        return ("WARN", f"resource limits: {shown} ({d['mechanism']}); not {', '.join(missing)}: no writable "
                "cgroup has that controller", FIX)
    return "OK", f"resource limits: {shown} for each agent tool command and CLI agent run ({d['mechanism']})", ""


def note(hits) -> str:
    """One line for a tool's output or a finding: the limits that were hit."""
    return "; ".join(hits)
