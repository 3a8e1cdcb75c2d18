"""What a runner is given (``Job``) and what every runner gives back (``Outcome``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from agentd.recordtype import Factory, Record


class Job(Record):
    cfg: object
    store: object
    run_id: str
    task: object  # task.Task
    snapshot: dict
    run_dir: Path
    progress: Callable[[str], None]
    resume: bool = False
    workspace: Path | None = None  # where it works: an agent's (runners.run: worktrees.prepare), never shared,
    # or a command's cwd (runners/command.py), what a task's ``metrics:`` file is relative to
    rules: list = Factory(list)  # worklog.standing.Standing: the rules in force an agent run is given


class Outcome(Record):
    status: str  # statuses.OUTCOMES
    summary: str
    lines: list[str] = Factory(list)
    exit_code: int | None = None
    next_step: str | None = None
    reason: str | None = None
    defer_until: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    provider: str | None = None
    steps: int = 0  # agent runs: model turns
    flagged: str | None = None  # agent runs: a done that did nothing, or a trivial summary
    cause: str | None = None  # statuses.Cause: why it ended so, where the wake acts on it (``reason`` is text)
    metrics: list = Factory(list)  # metrics.metric.Metric: measured (an experiment's result) or claimed (record_metric)
    peaks: dict = Factory(dict)  # metric name -> the device's spec figure, what an ``expect:`` gate's ``peak`` means
    duration_s: float | None = None  # the run's own time where the wake's is not it (a Slurm job's), else None
