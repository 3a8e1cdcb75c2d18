"""Agent tasks (directives, blockers, plain tasks) go to the LLM agent loop."""

from __future__ import annotations

from agentd.runners import Job, Outcome


def run(job: Job) -> Outcome:
    from agentd.agent import AgentTask, run_agent

    t = job.task
    o = run_agent(job.cfg, job.store, job.run_id, AgentTask(id=t.id, title=t.title, kind=t.kind, text=t.text,
                                                           context=job.context),
                  job.snapshot, job.run_dir, job.progress)
    lines = [f"steps {o.steps}, tokens {o.input_tokens} in / {o.output_tokens} out, ${o.cost_usd:.4f}"
             + (f" ({o.provider})" if o.provider else "")]
    if o.flagged:
        lines.append(f"flagged: {o.flagged}")
    return Outcome(status=o.status, summary=o.summary, lines=lines, reason=o.reason, defer_until=o.defer_until,
                   input_tokens=o.input_tokens, output_tokens=o.output_tokens, cost_usd=o.cost_usd,
                   provider=o.provider)
