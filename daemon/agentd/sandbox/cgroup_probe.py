"""What this host lets agentd do with cgroups, found in order: a delegated cgroup v2 (``cgroup-v2``),
writable cgroup v1 hierarchies (``cgroup-v1``), a user ``systemd-run`` scope, or ``none`` with why;
and the groups a dead agentd left behind, emptied and removed."""

from __future__ import annotations

import os
from pathlib import Path

from agentd.recordtype import Factory, Record
from agentd.sandbox import cgroup_files as files
from agentd.sandbox.systemd_scope import systemd_run_missing

LEAF = "agentd-self"  # v2: the leaf agentd moves itself into, so its cgroup may have children
V1 = ("pids", "memory", "cpu")


class Host(Record):
    mechanism: str  # cgroup-v2 | cgroup-v1 | systemd-run | none
    dirs: dict = Factory(dict)  # controller -> the dir the run groups go in (v2: the same dir for each)
    why_none: str | None = None
    notes: list = Factory(list)  # what was tried and did not work


def probe(root: Path, env: dict) -> Host:
    """The first mechanism that works under the cgroup mount ``root``."""
    own = _own_paths()
    notes: list[str] = []
    for probe_one in (_probe_v2, _probe_v1):
        h = probe_one(root, own, notes)
        if h is not None:
            return h
    why = systemd_run_missing(env)
    if why is None:
        return Host("systemd-run", notes=notes)
    notes.append(why)
    return Host("none", why_none="; ".join(notes) or f"no cgroup file system at {root}", notes=notes)


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


def _probe_v2(root: Path, own: dict, notes: list) -> Host | None:
    mount = root if (root / "cgroup.controllers").exists() else root / "unified"
    if not (mount / "cgroup.controllers").exists() or "" not in own:
        return None
    if not set(files.read(mount / "cgroup.controllers").split()) & set(V1):
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
    read, write = files.read, files.write
    try:
        if not own_base:  # root's own top-level cgroup: its parent, the root cgroup, hands it the controllers
            base.mkdir(exist_ok=True)
            for c in (set(read(mount / "cgroup.controllers").split()) & set(V1)) - set(
                    read(mount / "cgroup.subtree_control").split()):
                write(mount / "cgroup.subtree_control", f"+{c}")
        offered = set(read(base / "cgroup.controllers").split()) & set(V1)
        if not offered:
            return set(), "its pids, memory and cpu controllers are not offered to it"
        if not (os.access(base / "cgroup.subtree_control", os.W_OK) and os.access(base, os.W_OK)):
            return set(), "not delegated to agentd (its cgroup.subtree_control is not writable)"
        if offered <= set(read(base / "cgroup.subtree_control").split()):
            return offered, None
        procs = read(base / "cgroup.procs").split()
        if procs and base != mount:  # the no-internal-processes rule (the root cgroup is exempt)
            if not own_base or set(procs) != {str(os.getpid())}:
                return set(), (f"other processes share it ({len(procs)}), so it can't enable controllers for "
                               "children (cgroup v2's no-internal-processes rule)")
            leaf = base / LEAF
            leaf.mkdir(exist_ok=True)
            write(leaf / "cgroup.procs", str(os.getpid()))
        for c in offered:
            write(base / "cgroup.subtree_control", f"+{c}")
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


def clean_stale(base: Path, mechanism: str) -> None:
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
                files.remove(d, mechanism)
