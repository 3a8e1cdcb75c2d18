"""Agent tasks (directives, blockers, plain tasks) over a chat API go to the agent loop."""

from __future__ import annotations

from agentd.agent.agent import ApiAgentRun
from agentd.tasks.job import Job, Outcome


def run(job: Job) -> Outcome:
    return ApiAgentRun(job).run()
