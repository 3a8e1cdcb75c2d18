"""Command tasks: a shell command in its directory, watched (``procs.watch``).

It runs in the task's ``cwd:``, else in the worklog's directory, and never in a directory an
agent could write (``worktrees.command_cwd``): code an agent left there would run outside the
sandbox, as the person.  Such a task is blocked, saying why.

The command runs in its own process group with stdin closed and stdout and
stderr captured to the run directory, then redacted.  A wall-clock timeout (the
task's ``minutes`` × 2, else ``command_timeout``), an idle-output watchdog
(``idle_output_timeout``) and the output cap (``max_output_mib``) each kill the
whole group: SIGTERM, then SIGKILL 5 s later.  SIGTERM to agentd (systemd
stopping the service) does the same.  Its environment has no LLM keys.
"""

from __future__ import annotations

import time
from pathlib import Path

from agentd.errors import WorkspaceError
from agentd.redact import redact, redact_file, without_llm_keys
from agentd.sandbox import procs
from agentd.tasks.job import Job, Outcome
from agentd.workspace import worktrees


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


def child_env(job: Job) -> dict:
    """A child's environment: the person's, less agentd's LLM keys, plus which run it belongs to."""
    env = without_llm_keys(job.cfg.env)
    env.update(AGENTD_RUN_ID=job.run_id, AGENTD_RUN_DIR=str(job.run_dir), AGENTD_TASK_ID=job.task.id)
    return env


def timeouts(cfg, attrs: dict) -> tuple[float, float]:
    """(wall clock, idle output) limits: `minutes` × 2 can ask for less than command_timeout, never more
    (the systemd unit's TimeoutStartSec is computed from command_timeout)."""
    limit = cfg.duration("command_timeout")
    wall = min(float(attrs["minutes"]) * 60 * 2, limit) if attrs.get("minutes") else limit
    return max(wall, 1.0), cfg.duration("idle_output_timeout")


def written_by_a_person(cfg, task) -> bool:
    """A command runs only when a person wrote it: a line of the worklog, or a task file in tasks_dir
    (both hidden from the agents' sandbox).  Nothing else (an agent's output, a restored entry) can
    make one."""
    if task.source in ("worklog", "fleet"):  # fleet: fleet_worklog.txt, in the worklog dir (docs/fleet.md)
        return True
    try:
        return Path(task.source).resolve().parent == Path(cfg.tasks_dir).resolve()
    except (OSError, ValueError):
        return False


def run(job: Job) -> Outcome:
    cfg, cmd = job.cfg, job.task.attrs["run"]
    if not written_by_a_person(cfg, job.task):
        return Outcome("blocked", f"not run: the command came from {job.task.source}, not a person's line of the "
                       f"worklog or a task file in {cfg.tasks_dir}", reason="command of unknown provenance")
    try:
        ws = worktrees.command_cwd(cfg, job.task, job.store)
    except WorkspaceError as e:
        return Outcome("blocked", f"`{cmd}` not run: {e}", reason=f"cwd: {e}"[:200],
                       next_step=f"give the task a `cwd:` outside {cfg.workspace}, then RETRY: {job.task.id}")
    job.workspace = ws  # what a ``metrics:`` file is relative to (wake/results.py)
    out_path, err_path = job.run_dir / "stdout.txt", job.run_dir / "stderr.txt"
    wall, idle = timeouts(cfg, job.task.attrs)
    job.progress("run command")
    start = time.monotonic()
    try:
        code, killed_for = procs.watch(["/bin/sh", "-c", cmd], cwd=ws, env=child_env(job), out_path=out_path,
                                       err_path=err_path, wall=wall, idle=idle,
                                       max_bytes=cfg["max_output_mib"] * 2**20)
    except procs.Stopped as e:
        return Outcome("interrupted", f"agentd was stopped while `{cmd}` ran; the command was killed",
                       exit_code=e.returncode)
    if killed_for and killed_for.startswith("printed more"):
        killed_for += " (max_output_mib)"
    dur = time.monotonic() - start
    for path in (out_path, err_path):
        redact_file(path, cfg.env)
    n = cfg["output_tail"]
    lines = [f"$ {cmd}", f"exit {code} after {dur:.1f} s in {ws}"]
    for label, path in (("stdout", out_path), ("stderr", err_path)):
        t = tail(path, n)
        if t:
            lines.append(f"--- {label} (last {len(t)} lines; full: {path}) ---")
            lines += [redact(x, cfg.env) for x in t]
    if killed_for:
        return Outcome("failed", f"`{cmd}` {killed_for}; killed its process group", lines, exit_code=code,
                       reason=killed_for, next_step=f"{_limit_hint(cfg, job.task.attrs, killed_for)}; "
                       f"{retry_hint(cfg, job.task)}")
    if code == 0:
        return Outcome("done", f"`{cmd}` exited 0 in {dur:.1f} s", lines, exit_code=0)
    look = ("read the stderr tail above" if tail(err_path, 1) else
            "it printed nothing on stderr: see its stdout above" if tail(out_path, 1) else
            f"it printed nothing at all: try it by hand in {ws}")
    return Outcome("failed", f"`{cmd}` exited {code} after {dur:.1f} s", lines, exit_code=code,
                   reason=f"exit code {code}", next_step=f"{look}; {retry_hint(cfg, job.task)}")


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


def retry_hint(cfg, task) -> str:
    """Whether it will be tried again by itself: this failure is attempt task.attempts + 1."""
    if task.attempts + 1 >= cfg["max_attempts"]:
        return (f"that was attempt {task.attempts + 1} of {cfg['max_attempts']} (max_attempts), so it is blocked "
                f"now: write RETRY: {task.id} after fixing")
    return f"RETRY: {task.id} after fixing, or it retries by itself with backoff"
