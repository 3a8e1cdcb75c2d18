"""Runners: one per kind of task.  Each takes a ``Job`` and returns the one ``Outcome``.

    command     a shell command in the workspace          (runners/command.py)
    experiment  built-in health / cuda-probe / model-bench (runners/experiment.py)
    agent       the LLM agent loop over a chat API         (runners/agent.py -> agentd.agent)
    cli agent   claude-cli / codex-cli, whole processes    (runners/cli_agent.py)

Commands, experiments and CLI agents run as child processes through ``procs``: the
same output cap, wall-clock and idle-output limits, redaction and key-free environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

CLI_AGENTS = ("claude-cli", "codex-cli")


@dataclass
class Job:
    cfg: object
    store: object
    run_id: str
    task: object  # task.Task
    snapshot: dict
    run_dir: Path
    progress: Callable[[str], None]
    resume: bool = False


@dataclass
class Outcome:
    status: str  # statuses.OUTCOMES
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
    steps: int = 0  # agent runs: model turns
    flagged: str | None = None  # agent runs: a done that did nothing, or a trivial summary


def run(job: Job) -> Outcome:
    kind = job.task.runner
    if kind == "command":
        from agentd.runners import command as mod
    elif kind == "experiment":
        from agentd.runners import experiment as mod
    else:
        from agentd.providers import resolve_provider_name

        if resolve_provider_name(job.cfg) in CLI_AGENTS:
            from agentd.runners import cli_agent as mod
        else:
            from agentd.runners import agent as mod
    return mod.run(job)
