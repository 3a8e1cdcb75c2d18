"""Built-in experiments as a runner."""

from __future__ import annotations

from agentd import experiments
from agentd.runners import Job, Outcome


def run(job: Job) -> Outcome:
    r = experiments.run(job.task.title, job.task.attrs, job.run_dir, job.snapshot, job.progress)
    return Outcome(status=r.status, summary=r.summary, lines=list(r.lines), next_step=r.next_step,
                   reason=r.summary if r.status != "done" else None)
