"""Runners: one per kind of task.  Each takes a ``Job`` and returns an ``Outcome``.

    command     shell command in the workspace  (runners/command.py)
    experiment  built-in health / cuda-probe / model-bench  (runners/experiment.py)
    agent       LLM agent with tools  (runners/agent.py -> agentd.agent)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass
class Job:
    cfg: object
    store: object
    run_id: str
    task: object  # queue.Task
    snapshot: dict
    run_dir: Path
    progress: Callable[[str], None]
    context: str = ""
    resume: bool = False


@dataclass
class Outcome:
    status: str  # done, failed, blocked, deferred, interrupted
    summary: str
    lines: list[str] = field(default_factory=list)
    exit_code: int | None = None
    next_step: str | None = None
    reason: str | None = None
    defer_until: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    provider: str | None = None


def run(job: Job) -> Outcome:
    kind = job.task.runner
    if kind == "command":
        from agentd.runners import command as mod
    elif kind == "experiment":
        from agentd.runners import experiment as mod
    else:
        from agentd.runners import agent as mod
    return mod.run(job)
