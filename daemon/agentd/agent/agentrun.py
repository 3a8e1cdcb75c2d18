"""What every agent run has, whichever loop drives it (the API loop in ``agent.py``, the CLIs in
``runners/cli_agent.py``): its checkpoints, its budget, the worklog context for the prompt, its
workspace, and the mapping of how it stopped to the one ``runners.Outcome`` (``outcome``,
``stopped``, ``failure``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from agentd import statuses
from agentd.workspace import worktrees
from agentd.agent.budget import Budget, Limit
from agentd.agent.checkpoints import UNKNOWN_OUTCOME, Checkpoints, ModelStep, ToolStep, transcript_lines
from agentd.agent.tools import claimed
from agentd.errors import AuthFailed, ProviderError, RateLimited, UsageLimit
from agentd.providers import resolve_provider_name
from agentd.redact import redact
from agentd.escapes import safe
from agentd.prompts import render
from agentd.statuses import Cause
from agentd.tasks.job import Job, Outcome
from agentd.times import iso_in, next_utc_day

DEFAULT_DEFER = 900  # seconds to wait out a rate limit that named no time
TRIVIAL = 20  # a done summary shorter than this is flagged
MAX_RULES = 20  # the rules in force a prompt holds at most
MAX_CHARS = 4000  # and at most this many characters of their text
MAX_ONE = 1000  # of one rule's text


class AgentRun:
    """One agent run (a job), whichever loop drives it."""

    def __init__(self, job: Job):
        cfg, store = job.cfg, job.store
        self.cfg, self.store, self.run_id, self.task = cfg, store, job.run_id, job.task
        self.snapshot, self.run_dir, self.progress = job.snapshot, job.run_dir, job.progress
        self.cp = Checkpoints(store, job.run_id)
        self.budget = Budget(cfg, store, job.run_id)
        self.secrets_env = {**os.environ, **cfg.env}
        self.provider_name = resolve_provider_name(cfg)
        self.workspace = job.workspace or worktrees.prepare(job)  # the task's own (runners.run made it)
        self.rules = job.rules  # the rules in force the wake gives this run (worklog.standing)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets_env)

    def context(self) -> str:
        return worklog_context(self.cfg, self.store, self.task)

    def rules_text(self) -> str:
        return rules_text(self.rules)

    def acted(self) -> bool:
        return bool(self.cp.used_tools())

    # -- how it ended ----------------------------------------------------------------
    def outcome(self, status: str, summary: str, reason: str | None = None,
                defer_until: str | None = None, cause: str | None = None) -> Outcome:
        flagged = None
        if status == statuses.DONE and (why := self.all_failed()):
            status, reason, cause = statuses.FAILED, why, None
        if status == statuses.DONE:
            if not self.acted():
                flagged = "finished without doing anything"
            elif len(summary.strip()) < TRIVIAL:
                flagged = "trivial summary"
        elif reason is None and status in (statuses.BLOCKED, statuses.FAILED):
            reason = (summary.strip().splitlines() or [status])[0][:200]
        if self.run_dir is not None:
            Path(self.run_dir).mkdir(parents=True, exist_ok=True)
            lines = transcript_lines(self.store, self.run_id)
            (Path(self.run_dir) / "transcript.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        b, steps = self.budget, self.steps()
        provider = self.provider_name
        lines = [f"steps {steps}, tokens {b.input_tokens} in / {b.output_tokens} out, ${b.usd:.4f}"
                 + (f" ({provider})" if provider else "")]
        if flagged:
            lines.append(f"flagged: {flagged}")
        return Outcome(status, summary, lines, reason=reason, defer_until=defer_until, input_tokens=b.input_tokens,
                       output_tokens=b.output_tokens, cost_usd=b.usd, provider=provider, steps=steps,
                       flagged=flagged, cause=cause, metrics=claimed(self.cp.of(ToolStep)))

    def steps(self) -> int:
        return len(self.cp.of(ModelStep))

    def all_failed(self) -> str | None:
        """Why a run whose every tool call (one at least, ``finish`` aside) failed is not done, or None.
        A call a crash left with an unknown outcome may have worked: it is not counted as failed."""
        used = self.cp.used_tools()
        if not used or not all(s.is_error and s.result != UNKNOWN_OUTCOME for s in used):
            return None
        last = ((used[-1].result or "").strip().splitlines() or ["(no output)"])[0][:150]
        return f"every tool call failed ({len(used)} of {len(used)}); the last: {used[-1].name}: {last}"

    def stopped(self, limit: Limit, verb: str | None = None) -> Outcome:
        """A budget stopped the run: the day's budget defers it to the next UTC day, any other blocks it."""
        summary = f"{verb or f'Stopped after {self.steps()} model turns'}: {limit.reason}."
        if limit.cause == Cause.DAILY_LIMIT:
            return self.outcome(statuses.DEFERRED, summary, limit.reason, next_utc_day(), limit.cause)
        return self.outcome(statuses.BLOCKED, summary, limit.reason, cause=limit.cause)

    def failure(self, e: ProviderError) -> Outcome:
        """Map a provider failure to the outcome that decides the next wake."""
        reason = str(e)
        summary = f"Stopped after {self.steps()} model turns: {reason}"
        if isinstance(e, AuthFailed):
            return self.outcome(statuses.BLOCKED, summary, reason, cause=Cause.AUTH)
        if isinstance(e, UsageLimit):
            if e.reset_at and self.may_wait_for_reset():
                self.store.update_run(self.run_id, limit_waits=self.limit_waits() + 1)
                return self.outcome(statuses.WAITING, f"Waiting for the usage limit to reset at {e.reset_at}: {reason}",
                                    f"waiting for usage reset at {e.reset_at}", e.reset_at, Cause.USAGE_LIMIT)
            if e.reset_at:
                return self.outcome(statuses.DEFERRED, summary, reason, e.reset_at, Cause.USAGE_LIMIT)
            return self.outcome(statuses.BLOCKED, summary, reason, cause=Cause.USAGE_LIMIT)
        if isinstance(e, RateLimited):
            wait = e.retry_after if e.retry_after is not None else DEFAULT_DEFER
            return self.outcome(statuses.DEFERRED, summary, reason, iso_in(wait), Cause.RATE_LIMIT)
        if self.budget.time_left() <= 0:
            return self.stopped(Limit(f"budget: run_timeout {self.cfg['run_timeout']} reached"))
        return self.outcome(statuses.FAILED, summary, reason)


    def limit_waits(self) -> int:
        return int((self.store.run(self.run_id) or {}).get("limit_waits") or 0)

    def may_wait_for_reset(self) -> bool:
        """Park for a usage limit's reset, unless waiting is off or the run has waited out its windows
        (the task's ``limit_waits``, else config ``max_limit_waits``)."""
        cap = self.task.attrs.get("limit_waits")
        cap = self.cfg["max_limit_waits"] if cap is None else cap
        return bool(self.cfg["wait_for_usage_reset"]) and self.limit_waits() < cap


def worklog_context(cfg, store, task, limit: int = 5) -> str:
    """Worklog context for an agent: the task's own line, its dependencies' results, recent findings."""
    rows = store.entries(worklog=str(cfg.worklog_path))
    parts = [f"The task as written (line {task.line} of {task.source}):\n{task.text}"]
    for dep in task.attrs.get("after") or []:
        mine = [r for r in rows if r["task_id"] == dep]
        if mine:
            parts.append(f"Result of dependency {dep}:\n{mine[-1]['text']}")
    recent = [r for r in rows if r["task_id"] != task.id and r["status"] != statuses.RUNNING][-limit:]
    if recent:
        parts.append("Recent findings:\n" + "\n".join(r["text"] for r in recent))
    return "\n\n".join(parts)


def bounded(rules: list, max_rules: int = MAX_RULES, max_chars: int = MAX_CHARS,
            max_one: int = MAX_ONE) -> tuple[list, int]:
    """(the rules a prompt holds, as (rule, its text cut at ``max_one``); how many were left out): the
    first by line, up to ``max_rules`` of them and ``max_chars`` of their text in all."""
    kept, used = [], 0
    for r in rules:
        text = r.text if len(r.text) <= max_one else r.text[:max_one - 1] + "…"
        if len(kept) >= max_rules or used + len(text) > max_chars:
            break
        kept.append((r, text))
        used += len(text)
    return kept, len(rules) - len(kept)


def rules_text(rules: list) -> str:
    """The prompt's block of the rules in force (``prompts/rules.md``), or "" for none: the person's words,
    one a line between the fence's markers.  Each text is made visible (``escapes.safe``: every line
    break, control and format character written as an escape), so no rule can end its line or the
    fence, and bounded (``bounded``), saying how many were left out."""
    if not rules:
        return ""
    kept, left = bounded(rules)
    lines = [f"- {safe(r.id)} (line {r.line}{', a critical directive' if r.kind == 'directive' else ''}): "
             f"{safe(text)}" for r, text in kept]
    note = (f"({left} more rule(s) in force were left out: a prompt holds at most {MAX_RULES} rules and "
            f"{MAX_CHARS} characters of them)\n" if left else "")
    return "\n" + render("rules.md", rules="\n".join(lines), left_out=note)


def health_text(snapshot: dict | None, limit: int = 3000) -> str:
    if not snapshot:
        return "(no health snapshot)"
    if isinstance(snapshot.get("summary"), str):
        return snapshot["summary"][:limit]
    lines = [f"{k}: {v if isinstance(v, str) else json.dumps(v, default=str)}" for k, v in snapshot.items()]
    return "\n".join(lines)[:limit]
