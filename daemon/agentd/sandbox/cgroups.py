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

API::

    with cgroups.group(cfg, run_id) as cg:
        rc, ... = procs.run(cg.wrap(argv), ...)
    cg.hits                       # ["the pids limit (1024) was reached: fork failed 3 time(s)"]
    manifest["limits"] = cgroups.describe(cfg)   # or cg.describe() after the run
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

from agentd.config.limits import Limits, limits, size_text
from agentd.recordtype import Factory, Record

ROOT = Path("/sys/fs/cgroup")  # where cgroup file systems are mounted (tests point it elsewhere)
LEAF = "agentd-self"  # v2: the leaf agentd moves itself into, so its cgroup may have children
V1 = ("pids", "memory", "cpu")
FIX = ("run agentd as its systemd user service with `Delegate=yes` (units/agentd.service has it; "
       "`agentd install`), or on a cgroup v2 host as root; see docs/operations.md#resource-limits")
_WRAPPER = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@"'


# -- what the host allows ----------------------------------------------------------------
class Host(Record):
    mechanism: str  # cgroup-v2 | cgroup-v1 | systemd-run | none
    dirs: dict = Factory(dict)  # controller -> the dir the run groups go in (v2: the same dir for each)
    why_none: str | None = None
    notes: list = Factory(list)  # what was tried and did not work


_HOSTS: dict[tuple, Host] = {}
_SEQ = itertools.count()


def reset_cache() -> None:
    _HOSTS.clear()


def host(env: dict | None = None) -> Host:
    """What this host allows (probed once per process); stale groups of dead agentds are removed."""
    key = (str(ROOT), (env or {}).get("XDG_RUNTIME_DIR"))
    if key not in _HOSTS:
        _HOSTS[key] = h = _probe(Path(ROOT), env or {})
        for d in set(h.dirs.values()):
            _clean_stale(Path(d), h.mechanism)
    return _HOSTS[key]


def _own_paths() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    out = {}
    try:
        text = Path("/proc/self/cgroup").read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for c in parts[1].split(",") if parts[1] else [""]:
                out[c] = parts[2]
    return out


def _read(p: Path) -> str:
    try:
        return p.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _write(p: Path, text: str) -> None:
    with open(p, "w", encoding="ascii") as f:
        f.write(text)


def _probe(root: Path, env: dict) -> Host:
    own = _own_paths()
    notes: list[str] = []
    for probe in (_probe_v2, _probe_v1):
        h = probe(root, own, notes)
        if h is not None:
            return h
    why = systemd_run_missing(env)
    if why is None:
        return Host("systemd-run", notes=notes)
    notes.append(why)
    return Host("none", why_none="; ".join(notes) or f"no cgroup file system at {root}", notes=notes)


def _probe_v2(root: Path, own: dict, notes: list) -> Host | None:
    mount = root if (root / "cgroup.controllers").exists() else root / "unified"
    if not (mount / "cgroup.controllers").exists() or "" not in own:
        return None
    if not set(_read(mount / "cgroup.controllers").split()) & set(V1):
        notes.append(f"cgroup v2 ({mount}) has no pids, memory or cpu controller here")
        return None
    rel = own[""].lstrip("/")
    mine = mount / rel if rel else mount
    base = mine.parent if mine.name == LEAF else mine
    candidates = [base] + ([mount / "agentd"] if os.geteuid() == 0 and base != mount / "agentd" else [])
    for b in candidates:
        offered, why = _delegate_v2(b, mount, own_base=b == base)
        if why is None:
            return Host("cgroup-v2", dirs={c: str(b) for c in offered})
        notes.append(f"cgroup v2 {b}: {why}")
    return None


def _delegate_v2(base: Path, mount: Path, own_base: bool) -> tuple[set, str | None]:
    """Make ``base`` able to hold run groups: (the controllers they get, None) or (_, why not)."""
    try:
        if not own_base:  # root's own top-level cgroup: its parent, the root cgroup, hands it the controllers
            base.mkdir(exist_ok=True)
            for c in (set(_read(mount / "cgroup.controllers").split()) & set(V1)) - set(
                    _read(mount / "cgroup.subtree_control").split()):
                _write(mount / "cgroup.subtree_control", f"+{c}")
        offered = set(_read(base / "cgroup.controllers").split()) & set(V1)
        if not offered:
            return set(), "its pids, memory and cpu controllers are not offered to it"
        if not (os.access(base / "cgroup.subtree_control", os.W_OK) and os.access(base, os.W_OK)):
            return set(), "not delegated to agentd (its cgroup.subtree_control is not writable)"
        if offered <= set(_read(base / "cgroup.subtree_control").split()):
            return offered, None
        procs = _read(base / "cgroup.procs").split()
        if procs and base != mount:  # the no-internal-processes rule (the root cgroup is exempt)
            if not own_base or set(procs) != {str(os.getpid())}:
                return set(), (f"other processes share it ({len(procs)}), so it can't enable controllers for "
                               "children (cgroup v2's no-internal-processes rule)")
            leaf = base / LEAF
            leaf.mkdir(exist_ok=True)
            _write(leaf / "cgroup.procs", str(os.getpid()))
        for c in offered:
            _write(base / "cgroup.subtree_control", f"+{c}")
    except OSError as e:
        return set(), f"can't enable its controllers ({e.strerror or e})"
    return offered, None


def _probe_v1(root: Path, own: dict, notes: list) -> Host | None:
    dirs, tried = {}, []
    for c in V1:
        hier = root / c
        if not (hier / "cgroup.procs").exists() or c not in own:
            continue
        rel = own[c].lstrip("/")
        base = (hier / rel if rel else hier) / "agentd"
        tried.append(c)
        try:
            base.mkdir(exist_ok=True)
            if os.access(base / "cgroup.procs", os.W_OK):
                dirs[c] = str(base)
        except OSError as e:
            notes.append(f"cgroup v1 {c} ({hier}): {e.strerror or e}")
    if dirs:
        return Host("cgroup-v1", dirs=dirs, notes=notes)
    if not tried:
        notes.append(f"no cgroup v1 pids, memory or cpu hierarchy under {root}")
    return None


def systemd_run_missing(env: dict) -> str | None:
    """None when ``systemd-run --user`` can make a scope here, else why not (no process is started
    unless the user manager's socket is there)."""
    import shutil
    import subprocess

    exe = shutil.which("systemd-run", path=env.get("PATH") or os.defpath)
    if exe is None:
        return "systemd-run is not installed"
    runtime = env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    if not Path(runtime, "systemd", "private").exists():
        return f"no user systemd manager answers (no {runtime}/systemd/private)"
    try:
        p = subprocess.run(["systemctl", "--user", "is-system-running"], capture_output=True, text=True, timeout=5,
                           stdin=subprocess.DEVNULL, env={**env, "XDG_RUNTIME_DIR": runtime})
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"systemctl --user did not answer ({e})"
    state = p.stdout.strip()
    if state not in ("running", "degraded", "starting"):
        return f"the user systemd manager is {state or 'not reachable'}"
    return None


def systemd_run_argv(argv: list[str], lim: Limits, name: str, runtime: str) -> list[str]:
    """``argv`` in a transient user scope with the limits; the runtime dir it needs reaches
    systemd-run only, not the command."""
    props = []
    if lim.pids:
        props += ["-p", f"TasksMax={lim.pids}"]
    if lim.memory:
        props += ["-p", f"MemoryMax={lim.memory}", "-p", "MemorySwapMax=0"]
    if lim.cpu_weight:
        props += ["-p", f"CPUWeight={lim.cpu_weight}"]
    return ["env", f"XDG_RUNTIME_DIR={runtime}", "systemd-run", "--user", "--scope", "--quiet", "--collect",
            f"--unit=agentd-{name}", *props, "--", "env", "-u", "XDG_RUNTIME_DIR", *argv]


# -- one command's group -----------------------------------------------------------------
class Group:
    """One command's cgroup: made on enter, read, emptied and removed on exit."""

    def __init__(self, h: Host, lim: Limits, name: str, env: dict | None = None):
        self.host, self.limits, self.name, self.env = h, lim, name, env or {}
        self.paths: dict[str, Path] = {}  # controller -> this group's dir
        self.applied: dict[str, int] = {}
        self.why_none: str | None = h.why_none
        self.hits: list[str] = []
        self.failed: dict[str, str] = {}  # controller -> why its limit could not be set for this command

    def __enter__(self) -> "Group":
        wanted = self.limits.wanted()
        if not wanted:
            self.why_none = "limit_pids, limit_memory and limit_cpu_weight are off in the config"
            return self
        if self.host.mechanism == "systemd-run":
            self.applied = dict(wanted)
            return self
        for c, n in wanted.items():  # each limit on its own: one the kernel refuses leaves the others
            if c not in self.host.dirs:
                continue
            try:
                self._make(c, n)
            except OSError as e:
                self.failed[c] = e.strerror or str(e)
                self.applied.pop(c, None)
                d = self.paths.pop(c, None)
                if d is not None and d not in self.paths.values():
                    remove(d, self.host.mechanism)
        if self.failed and not self.applied:
            self.why_none = "the run's cgroup could not be made (" + "; ".join(
                f"{c}: {why}" for c, why in self.failed.items()) + ")"
        if self.host.mechanism.startswith("cgroup") and not self.applied and self.why_none is None:
            self.why_none = f"no writable cgroup has the controllers of the limits asked ({', '.join(wanted)})"
        return self

    def _make(self, c: str, n: int) -> None:
        v2 = self.host.mechanism == "cgroup-v2"
        d = Path(self.host.dirs[c]) / (f"agentd-{self.name}" if v2 else self.name)
        if d not in self.paths.values():
            d.mkdir(exist_ok=True)
        self.paths[c] = d
        if c == "pids":
            _write(d / "pids.max", str(n))
        elif c == "memory" and v2:
            _write(d / "memory.max", str(n))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")
        elif c == "memory":
            _write(d / "memory.limit_in_bytes", str(n))
            if (d / "memory.memsw.limit_in_bytes").exists():
                _write(d / "memory.memsw.limit_in_bytes", str(n))
        elif c == "cpu" and v2:
            _write(d / "cpu.weight", str(n))
        else:
            _write(d / "cpu.shares", str(max(2, n * 1024 // 100)))  # systemd's mapping: weight 100 = 1024 shares
        self.applied[c] = n

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` started inside this group (unchanged when there is none)."""
        if self.host.mechanism == "systemd-run" and self.applied:
            runtime = self.env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
            return systemd_run_argv(argv, self.limits, self.name, runtime)
        procs = list(dict.fromkeys(str(d / "cgroup.procs") for d in self.paths.values()))
        if not procs:
            return list(argv)
        return ["/bin/sh", "-c", _WRAPPER, "agentd-cgroup", *procs, "--", *argv]

    def __exit__(self, *exc) -> None:
        self.hits = self._read_hits()
        self._remove()

    def _read_hits(self) -> list[str]:
        out = []
        if "pids" in self.paths:
            n = _field(self.paths["pids"] / "pids.events", "max")
            if n:
                out.append(f"the pids limit ({self.applied['pids']}) was reached: fork failed {n} time(s)")
        if "memory" in self.paths:
            d = self.paths["memory"]
            f = d / ("memory.events" if self.host.mechanism == "cgroup-v2" else "memory.oom_control")
            n = _field(f, "oom_kill")
            if n:
                out.append(f"the memory limit ({size_text(self.applied['memory'])}) was reached: the kernel "
                           f"killed {n} process(es) (OOM)")
        return out

    def _remove(self) -> None:
        for d in dict.fromkeys(self.paths.values()):
            remove(d, self.host.mechanism)

    def describe(self) -> dict:
        """The limits as the run's manifest records them: those applied, and those that could not be."""
        out = _describe(self.host.mechanism if self.applied else "none", self.applied,
                        None if self.applied else self.why_none, self.hits)
        if self.failed:
            out["not_applied"] = dict(self.failed)
        return out

    def notes(self) -> list[str]:
        """What a tool's output says: the limits hit, and the limits asked that could not be set."""
        out = list(self.hits)
        if self.failed:
            out.append("limits not applied to this command: " + "; ".join(
                f"{'cpu weight' if c == 'cpu' else c} ({why})" for c, why in self.failed.items()))
        return out


def _field(path: Path, key: str) -> int:
    for line in _read(path).splitlines():
        k, _, v = line.partition(" ")
        if k == key and v.strip().isdigit():
            return int(v)
    return 0


def remove(d: Path, mechanism: str) -> None:
    """Kill what is left in a group, then remove it."""
    if not d.exists():
        return
    if mechanism == "cgroup-v2" and (d / "cgroup.kill").exists():
        try:
            _write(d / "cgroup.kill", "1")
        except OSError:
            pass
    for _ in range(100):
        pids = _read(d / "cgroup.procs").split()
        if not pids:
            try:
                d.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                pass
        for p in pids:
            try:
                os.kill(int(p), signal.SIGKILL)
            except (ProcessLookupError, ValueError, PermissionError):
                pass
        time.sleep(0.05)


def _clean_stale(base: Path, mechanism: str) -> None:
    """Groups whose agentd is gone (the pid in the name runs no more): emptied and removed."""
    prefix = "agentd-" if mechanism == "cgroup-v2" else ""
    try:
        children = [d for d in base.iterdir() if d.is_dir() and d.name.startswith(prefix) and d.name != LEAF]
    except OSError:
        return
    for d in children:
        parts = d.name.rsplit(".", 2)
        if len(parts) == 3 and parts[1].isdigit():
            pid = int(parts[1])
            if pid != os.getpid() and not os.path.exists(f"/proc/{pid}"):
                remove(d, mechanism)


def group(cfg, run_id: str | None) -> Group:
    """The cgroup for one command of run ``run_id`` (a context manager; nothing when no cfg)."""
    name = f"{run_id or 'tools'}.{os.getpid()}.{next(_SEQ)}"
    if cfg is None:
        return Group(Host("none", why_none="no config"), Limits(), name)
    return Group(host(cfg.env), limits(cfg), name, cfg.env)


def _describe(mechanism: str, applied: dict, why: str | None, hits=()) -> dict:
    out = {"mechanism": mechanism, "pids": applied.get("pids"), "memory": applied.get("memory"),
           "cpu_weight": applied.get("cpu")}
    if why:
        out["why_none"] = why
    if hits:
        out["hits"] = list(hits)
    return out


def describe(cfg) -> dict:
    """The limits a run of this host gets, for its manifest (before it runs)."""
    lim, h = limits(cfg), host(cfg.env)
    wanted = lim.wanted()
    if not wanted:
        return _describe("none", {}, "limit_pids, limit_memory and limit_cpu_weight are off in the config")
    applied = wanted if h.mechanism == "systemd-run" else {c: n for c, n in wanted.items() if c in h.dirs}
    return _describe(h.mechanism if applied else "none", applied, None if applied else h.why_none or
                     f"no writable cgroup has the controllers of the limits asked ({', '.join(wanted)})")


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
