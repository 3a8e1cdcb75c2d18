"""One command's cgroup: made with the limit files of its mechanism (v2: ``pids.max``, ``memory.max``,
``cpu.weight``; v1: ``pids.max``, ``memory.limit_in_bytes``, ``cpu.shares``), joined by a tiny shell
wrapper before the command execs, read for the limits hit, emptied and removed; and the ``limits``
record a run's manifest keeps."""

from __future__ import annotations

import os
from pathlib import Path

from agentd.config.limits import Limits, size_text
from agentd.sandbox import cgroup_files as files
from agentd.sandbox.cgroup_probe import Host
from agentd.sandbox.systemd_scope import systemd_run_argv

_WRAPPER = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@"'
OFF = "limit_pids, limit_memory and limit_cpu_weight are off in the config"


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
            self.why_none = OFF
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
                    files.remove(d, self.host.mechanism)
        if self.failed and not self.applied:
            self.why_none = "the run's cgroup could not be made (" + "; ".join(
                f"{c}: {why}" for c, why in self.failed.items()) + ")"
        if self.host.mechanism.startswith("cgroup") and not self.applied and self.why_none is None:
            self.why_none = no_controllers(wanted)
        return self

    def _make(self, c: str, n: int) -> None:
        v2 = self.host.mechanism == "cgroup-v2"
        d = Path(self.host.dirs[c]) / (f"agentd-{self.name}" if v2 else self.name)
        if d not in self.paths.values():
            d.mkdir(exist_ok=True)
        self.paths[c] = d
        write = files.write
        if c == "pids":
            write(d / "pids.max", str(n))
        elif c == "memory" and v2:
            write(d / "memory.max", str(n))
            if (d / "memory.swap.max").exists():
                write(d / "memory.swap.max", "0")
        elif c == "memory":
            write(d / "memory.limit_in_bytes", str(n))
            if (d / "memory.memsw.limit_in_bytes").exists():
                write(d / "memory.memsw.limit_in_bytes", str(n))
        elif c == "cpu" and v2:
            write(d / "cpu.weight", str(n))
        else:
            write(d / "cpu.shares", str(max(2, n * 1024 // 100)))  # systemd's mapping: weight 100 = 1024 shares
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
            n = files.field(self.paths["pids"] / "pids.events", "max")
            if n:
                out.append(f"the pids limit ({self.applied['pids']}) was reached: fork failed {n} time(s)")
        if "memory" in self.paths:
            d = self.paths["memory"]
            f = d / ("memory.events" if self.host.mechanism == "cgroup-v2" else "memory.oom_control")
            n = files.field(f, "oom_kill")
            if n:
                out.append(f"the memory limit ({size_text(self.applied['memory'])}) was reached: the kernel "
                           f"killed {n} process(es) (OOM)")
        return out

    def _remove(self) -> None:
        for d in dict.fromkeys(self.paths.values()):
            files.remove(d, self.host.mechanism)

    def describe(self) -> dict:
        """The limits as the run's manifest records them: those applied, and those that could not be."""
        out = record(self.host.mechanism if self.applied else "none", self.applied,
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


def no_controllers(wanted: dict) -> str:
    return f"no writable cgroup has the controllers of the limits asked ({', '.join(wanted)})"


def record(mechanism: str, applied: dict, why: str | None, hits=()) -> dict:
    """The manifest's ``limits``: the mechanism, each limit applied (None: not), why none, the hits."""
    out = {"mechanism": mechanism, "pids": applied.get("pids"), "memory": applied.get("memory"),
           "cpu_weight": applied.get("cpu")}
    if why:
        out["why_none"] = why
    if hits:
        out["hits"] = list(hits)
    return out
