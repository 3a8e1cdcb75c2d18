"""The cgroup fallback with no writable cgroup: a transient ``systemd-run --user --scope`` with the
limits as unit properties, where a user systemd manager answers (it can't say afterwards which limit
was hit)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from agentd.config.limits import Limits


def systemd_run_missing(env: dict) -> str | None:
    """None when ``systemd-run --user`` can make a scope here, else why not (no process is started
    unless the user manager's socket is there)."""
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
