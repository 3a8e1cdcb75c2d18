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

from agentd.redact import redact, redact_file, without_llm_keys
from agentd.runners import Job, Outcome


class Stopped(Exception):
    pass


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def kill_orphan(run_dir: Path, run_id: str) -> str | None:
    """Stop the process group a killed wake left running, if it is still there and really ours.

    Ours means some process in the group carries AGENTD_RUN_ID=<run_id> in its environment,
    so a recycled process group id is never touched.
    """
    try:
        pgid = int((run_dir / "pgid").read_text())
    except (OSError, ValueError):
        return None
    members = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.getpgid(int(proc.name)) == pgid and f"AGENTD_RUN_ID={run_id}".encode() in \
                    (proc / "environ").read_bytes().split(b"\0"):
                members.append(int(proc.name))
        except (OSError, ValueError):
            continue
    if not members:
        return None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        for _ in range(50):
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return f"its command was still running (process group {pgid}); stopped it"
            time.sleep(0.1)
    return f"its command was still running (process group {pgid}); sent it SIGKILL"


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
    wall = float(attrs["minutes"]) * 60 * 2 if attrs.get("minutes") else cfg.duration("command_timeout")
    return max(wall, 1.0), cfg.duration("idle_output_timeout")


def run(job: Job) -> Outcome:
    cfg, cmd = job.cfg, job.task.attrs["run"]
    ws = Path(cfg.workspace)
    ws.mkdir(parents=True, exist_ok=True)
    out_path, err_path = job.run_dir / "stdout.txt", job.run_dir / "stderr.txt"
    wall, idle = timeouts(cfg, job.task.attrs)
    env = without_llm_keys(cfg.env)
    env.update(AGENTD_RUN_ID=job.run_id, AGENTD_RUN_DIR=str(job.run_dir), AGENTD_TASK_ID=job.task.id)
    job.progress("run command")
    start = time.monotonic()
    killed_for = None

    def on_term(signum, frame):
        raise Stopped()

    old = signal.signal(signal.SIGTERM, on_term)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(["/bin/sh", "-c", cmd], cwd=ws, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, env=env, start_new_session=True)
        (job.run_dir / "pgid").write_text(f"{proc.pid}\n")  # lets a later wake stop an orphaned command
        last_size, last_change = -1, start
        try:
            while proc.poll() is None:
                time.sleep(0.2)
                now = time.monotonic()
                size = os.fstat(out.fileno()).st_size + os.fstat(err.fileno()).st_size
                if size != last_size:
                    last_size, last_change = size, now
                if now - start > wall:
                    killed_for = f"timed out after {wall:g} s (wall-clock limit)"
                elif now - last_change > idle:
                    killed_for = f"printed nothing for {idle:g} s (idle-output watchdog)"
                if killed_for:
                    _kill_group(proc)
                    break
        except (Stopped, KeyboardInterrupt):
            _kill_group(proc)
            signal.signal(signal.SIGTERM, old)
            return Outcome("interrupted", f"agentd was stopped while `{cmd}` ran; the command was killed",
                           exit_code=proc.returncode)
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
                       reason=killed_for, next_step="raise `minutes` on the line, or make the command print progress")
    if code == 0:
        return Outcome("done", f"`{cmd}` exited 0 in {dur:.1f} s", lines, exit_code=0)
    return Outcome("failed", f"`{cmd}` exited {code} after {dur:.1f} s", lines, exit_code=code,
                   reason=f"exit code {code}", next_step="read the stderr tail above; RETRY: "
                   f"{job.task.id} after fixing, or it retries by itself with backoff")
