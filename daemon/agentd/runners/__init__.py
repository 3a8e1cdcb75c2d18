"""Runners: one per kind of task.  Each takes a ``Job`` and returns the one ``Outcome``.

    command     a shell command in the workspace          (runners/command.py)
    experiment  built-in health / cuda-probe / model-bench (runners/experiment.py)
    agent       the LLM agent loop over a chat API         (runners/agent.py -> agentd.agent)
    cli agent   claude-cli / codex-cli, whole processes    (runners/cli_agent.py)

Commands, experiments and CLI agents run as child processes through ``procs``: the
same output cap, wall-clock and idle-output limits, redaction and key-free environment.
"""

from __future__ import annotations

from agentd.runners.job import Job, Outcome

CLI_AGENTS = ("claude-cli", "codex-cli")
__all__ = ["CLI_AGENTS", "Job", "Outcome", "run"]


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
