"""Runners: one per kind of task.  Each takes a ``Job`` and returns the one ``Outcome``.

    command     a shell command in its cwd (never an agent's workspace)   (runners/command.py)
    experiment  built-in health / cuda-probe / model-bench (runners/experiment.py)
    agent       the LLM agent loop over a chat API         (runners/agent.py -> agentd.agent.agent)
    cli agent   claude-cli / codex-cli, whole processes    (runners/cli_agent.py)
    slurm       a command or experiment with ``slurm:``, submitted and parked; collected when it ends
                                                           (runners/slurm.py)

An agent run works in a workspace of its own, or a new git worktree for a ``{repo: PATH}``
task, made here before it starts (``worktrees.prepare``); after a ``repo:`` run agentd commits
what it left and the finding names the branch (``worktrees.land``).

Commands, experiments and CLI agents run as child processes through ``procs``: the
same output cap, wall-clock and idle-output limits, redaction and key-free environment.
"""

from __future__ import annotations

from agentd.errors import WorkspaceError
from agentd.providers import resolve_provider_name
from agentd.runners import agent, cli_agent, command, experiment, slurm
from agentd.tasks.job import Job, Outcome
from agentd.workspace import worktrees

CLI_AGENTS = ("claude-cli", "codex-cli")
__all__ = ["CLI_AGENTS", "Job", "Outcome", "run"]


def run(job: Job) -> Outcome:
    kind = job.task.runner
    if kind != "agent" and job.task.attrs.get("repo"):
        return Outcome("blocked", f"not run: `repo:` is for agent tasks; a {job.task.kind} runs where a person "
                       "says (a command task's `cwd:`)", reason="repo: on a task that is not an agent's")
    if slurm.is_slurm(job):
        return slurm.run(job)
    if kind == "command":
        return command.run(job)
    if kind == "experiment":
        return experiment.run(job)
    try:
        job.workspace = worktrees.prepare(job)
    except WorkspaceError as e:
        return Outcome("blocked", f"not started: {e}", reason=f"workspace: {e}"[:200])
    mod = cli_agent if resolve_provider_name(job.cfg) in CLI_AGENTS else agent
    try:
        out = mod.run(job)
    except BaseException:  # agentd's own error, or stopped: what the run left is committed all the same
        worktrees.land(job, Outcome("interrupted", "agentd stopped before the run ended"))
        raise
    return worktrees.land(job, out)
