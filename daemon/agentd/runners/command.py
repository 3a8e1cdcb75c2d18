"""Command tasks: a shell command in the workspace, watched.

The command runs in its own process group with stdin closed and stdout and
stderr captured to the run directory.  A wall-clock timeout (the task's
``minutes`` × 2, else ``command_timeout``) and an idle-output watchdog
(``idle_output_timeout``) each kill the whole group: SIGTERM, then SIGKILL
5 s later.  SIGTERM to agentd (systemd stopping the service) does the same.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from agentd import procs
from agentd.redact import redact, redact_file, without_llm_keys
from agentd.runners import Job, Outcome


class Stopped(Exception):
    pass


def kill_orphan(run_id: str) -> str | None:
    """Stop what a killed wake left running for this run: commands, agent tools, CLI agents.

    Every process a run starts carries AGENTD_RUN_ID=<run_id> in its environment; the
    process groups of those still alive (other than ours) are stopped, SIGTERM then SIGKILL.
    """
    marker = f"AGENTD_RUN_ID={run_id}".encode()
    groups = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            pid = int(proc.name)
            if pid != os.getpid() and marker in (proc / "environ").read_bytes().split(b"\0"):
                groups.add(os.getpgid(pid))
        except (OSError, ValueError):
            continue
    groups.discard(os.getpgrp())
    if not groups:
        return None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for g in groups:
            try:
                os.killpg(g, sig)
            except ProcessLookupError:
                pass
        for _ in range(50):
            alive = []
            for g in groups:
                try:
                    os.killpg(g, 0)
                    alive.append(g)
                except ProcessLookupError:
                    pass
            if not alive:
                break
            time.sleep(0.1)
    return f"its processes were still running (process groups {', '.join(map(str, sorted(groups)))}); stopped them"


def tail(path: Path, n: int, max_bytes: int = 64 * 1024) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return [line[:400] for line in lines[-n:]]


def timeouts(cfg, attrs: dict) -> tuple[float, float]:
    limit = cfg.duration("command_timeout")
    wall = min(float(attrs["minutes"]) * 60 * 2, limit) if attrs.get("minutes") else limit
    return max(wall, 1.0), cfg.duration("idle_output_timeout")


def run(job: Job) -> Outcome:
    cfg, cmd = job.cfg, job.task.attrs["run"]
    ws = Path(cfg.workspace)
    ws.mkdir(parents=True, exist_ok=True)
    out_path, err_path = job.run_dir / "stdout.txt", job.run_dir / "stderr.txt"
    wall, idle = timeouts(cfg, job.task.attrs)
    max_bytes = cfg["max_output_mib"] * 2**20
    env = without_llm_keys(cfg.env)
    env.update(AGENTD_RUN_ID=job.run_id, AGENTD_RUN_DIR=str(job.run_dir), AGENTD_TASK_ID=job.task.id)
    # one wall-clock limit for all: `minutes` can ask for less time, never more than command_timeout
    # (the systemd unit's TimeoutStartSec is computed from command_timeout)
    job.progress("run command")
    start = time.monotonic()
    killed_for = None

    def on_term(signum, frame):
        raise Stopped()

    old = signal.signal(signal.SIGTERM, on_term)
    proc = None
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", cmd], cwd=ws, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, start_new_session=True)
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            killed_for = procs.pump(proc, {proc.stdout: out, proc.stderr: err}, wall=wall, idle=idle,
                                    max_bytes=max_bytes, start=start)
        if killed_for and killed_for.startswith("printed more"):
            killed_for += " (max_output_mib)"
    except (Stopped, KeyboardInterrupt):
        if proc is not None:
            procs.kill_group(proc)
        return Outcome("interrupted", f"agentd was stopped while `{cmd}` ran; the command was killed",
                       exit_code=proc.returncode if proc is not None else None)
    finally:
        signal.signal(signal.SIGTERM, old)
    dur = time.monotonic() - start
    code = proc.returncode
    for path in (out_path, err_path):
        redact_file(path, cfg.env)
    n = cfg["output_tail"]
    lines = [f"$ {cmd}", f"exit {code} after {dur:.1f} s"]
    for label, path in (("stdout", out_path), ("stderr", err_path)):
        t = tail(path, n)
        if t:
            lines.append(f"--- {label} (last {len(t)} lines; full: {path}) ---")
            lines += [redact(x, cfg.env) for x in t]
    if killed_for:
        return Outcome("failed", f"`{cmd}` {killed_for}; killed its process group", lines, exit_code=code,
                       reason=killed_for, next_step=f"{_limit_hint(cfg, job.task.attrs, killed_for)}; "
                       f"{_retry_hint(cfg, job.task)}")
    if code == 0:
        return Outcome("done", f"`{cmd}` exited 0 in {dur:.1f} s", lines, exit_code=0)
    look = ("read the stderr tail above" if tail(err_path, 1) else
            "it printed nothing on stderr: see its stdout above" if tail(out_path, 1) else
            f"it printed nothing at all: try it by hand in {ws}")
    return Outcome("failed", f"`{cmd}` exited {code} after {dur:.1f} s", lines, exit_code=code,
                   reason=f"exit code {code}", next_step=f"{look}; {_retry_hint(cfg, job.task)}")


def _limit_hint(cfg, attrs: dict, killed_for: str) -> str:
    """What to change for the limit the command ran into."""
    if killed_for.startswith("printed more"):
        return (f"it hit the output cap (max_output_mib: {cfg['max_output_mib']}): raise it in the config, "
                "or have the command write its output to a file")
    if "idle-output" in killed_for:
        return (f"make the command print progress, or raise idle_output_timeout "
                f"(now {cfg['idle_output_timeout']})")
    limit = cfg.duration("command_timeout")
    if attrs.get("minutes") and float(attrs["minutes"]) * 120 < limit:
        return (f"it had twice its `minutes: {attrs['minutes']:g}`: raise `minutes` on the task "
                f"(up to command_timeout, now {cfg['command_timeout']})")
    return f"raise command_timeout in the config (now {cfg['command_timeout']}), or split the work"


def _retry_hint(cfg, task) -> str:
    """Whether it will be tried again by itself: this failure is attempt task.attempts + 1."""
    if task.attempts + 1 >= cfg["max_attempts"]:
        return (f"that was attempt {task.attempts + 1} of {cfg['max_attempts']} (max_attempts), so it is blocked "
                f"now: write RETRY: {task.id} after fixing")
    return f"RETRY: {task.id} after fixing, or it retries by itself with backoff"
