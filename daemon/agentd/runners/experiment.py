"""Built-in experiments as a runner: run in a child process, bounded like a command.

The child (``python -m agentd.experiments``) gets ``command_timeout`` of wall clock
(or the task's ``minutes`` × 2, if less); SIGTERM to agentd stops it too.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

from agentd.runners import Job, Outcome
from agentd.procs import kill_group
from agentd.runners.command import Stopped, timeouts


def run(job: Job) -> Outcome:
    wall, _ = timeouts(job.cfg, job.task.attrs)
    env = {**job.cfg.env, "AGENTD_RUN_ID": job.run_id, "AGENTD_RUN_DIR": str(job.run_dir)}
    result_path = job.run_dir / "result.json"
    result_path.unlink(missing_ok=True)

    def on_term(signum, frame):
        raise Stopped()

    old = signal.signal(signal.SIGTERM, on_term)
    proc = timer = None
    try:
        proc = subprocess.Popen([sys.executable, "-m", "agentd.experiments"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=open(job.run_dir / "stderr.txt", "wb"), env=env,
                                cwd=str(job.run_dir), start_new_session=True, text=True)
        timer = threading.Timer(wall, kill_group, (proc,))
        timer.start()
        proc.stdin.write(json.dumps({"name": job.task.title, "attrs": job.task.attrs, "run_dir": str(job.run_dir),
                                     "snapshot": job.snapshot}))
        proc.stdin.close()
        for line in proc.stdout:
            if line.startswith("PHASE "):
                job.progress(line[6:].strip())
        proc.wait()
    except (Stopped, KeyboardInterrupt):
        if proc is not None:
            kill_group(proc)
        return Outcome("interrupted", f"agentd was stopped while experiment {job.task.title} ran; it was killed")
    finally:
        if timer is not None:
            timer.cancel()
        signal.signal(signal.SIGTERM, old)
    try:
        r = json.loads(result_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        why = (f"timed out after {wall:g} s (wall-clock limit)" if proc.returncode and proc.returncode < 0
               else f"its process exited {proc.returncode} without a result")
        return Outcome("failed", f"experiment {job.task.title} {why}", reason=why,
                       lines=[f"stderr: {job.run_dir / 'stderr.txt'}"],
                       next_step="raise command_timeout, or `minutes` on the line, if it needs longer")
    return Outcome(status=r["status"], summary=r["summary"], lines=list(r.get("lines") or []),
                   next_step=r.get("next_step"), reason=r["summary"] if r["status"] != "done" else None)
