"""Built-in experiments as a runner: a child process (``python -m agentd.experiments``), watched
exactly like a command (``procs.watch``): the same wall-clock and idle-output limits, output cap,
redacted stdout.txt and stderr.txt, and an environment without LLM keys.  Its ``PHASE`` lines
become the run's progress; its result is the run directory's result.json, whose numbers are the
outcome's measured metrics (``metrics/experiments.py``) and the device's peak, for ``peak`` gates.
"""

from __future__ import annotations

import json
import sys

from agentd.metrics.experiments import from_experiment, peaks
from agentd.sandbox import procs
from agentd.redact import redact_file
from agentd.tasks.job import Job, Outcome
from agentd.runners.command import child_env, timeouts


def run(job: Job) -> Outcome:
    cfg, name = job.cfg, job.task.title
    wall, idle = timeouts(cfg, job.task.attrs)
    result_path = job.run_dir / "result.json"
    result_path.unlink(missing_ok=True)
    out_path, err_path = job.run_dir / "stdout.txt", job.run_dir / "stderr.txt"

    def on_line(line: str) -> None:
        if line.startswith("PHASE "):
            job.progress(line[6:].strip())

    try:
        code, killed_for = procs.watch([sys.executable, "-m", "agentd.experiments"], cwd=job.run_dir,
                                       env=child_env(job), out_path=out_path, err_path=err_path, wall=wall,
                                       idle=idle, max_bytes=cfg["max_output_mib"] * 2**20,
                                       input=spec(job).encode("utf-8"), on_stdout_line=on_line)
    except procs.Stopped:
        return Outcome("interrupted", f"agentd was stopped while experiment {name} ran; it was killed")
    finally:
        for path in (out_path, err_path):
            if path.exists():
                redact_file(path, cfg.env)
    return from_result(job, code, killed_for)


def spec(job: Job) -> str:
    """What the experiment's process reads on stdin: its name, attrs, run directory and the host's snapshot."""
    return json.dumps({"name": job.task.title, "attrs": job.task.attrs, "run_dir": str(job.run_dir),
                       "snapshot": job.snapshot})


def from_result(job: Job, code: int | None, killed_for: str | None) -> Outcome:
    """The outcome of an experiment's process that ended: its run directory's result.json (also read for
    one that ran on Slurm: ``runners/slurm.py``)."""
    name, result_path, err_path = job.task.title, job.run_dir / "result.json", job.run_dir / "stderr.txt"
    try:
        r = json.loads(result_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        why = killed_for or f"its process exited {code} without a result"
        return Outcome("failed", f"experiment {name} {why}", reason=why, exit_code=code,
                       lines=[f"stderr: {err_path}"],
                       next_step="raise command_timeout, or `minutes` on the line, if it needs longer")
    data = r.get("data") or {}
    return Outcome(status=r["status"], summary=r["summary"], lines=list(r.get("lines") or []),
                   next_step=r.get("next_step"), reason=r["summary"] if r["status"] != "done" else None,
                   metrics=from_experiment(name, data).metrics, peaks=peaks(name, data))
