"""Coding-agent CLIs as a runner: ``claude -p`` (claude-cli) and ``codex exec`` (codex-cli).

These run their own tool loop, so they replace the whole agent loop for a run:
one prompt in, one JSON result out (``cli_output``).  The CLI runs through
``procs`` like every child: stdin closed, the workspace as its working directory,
``run_timeout`` stopping its process group.  ``max_steps`` and what is left of
``usd_per_run`` are passed as the CLI's own caps where it has them.  The run is
checkpointed as one tool step; if agentd dies while the CLI runs, the resumed run
starts the CLI again with a note to check the workspace first (a CLI session
can't be resumed from outside).  How it stopped maps to the outcome as for the
API agents (``agent.AgentRun``).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from agentd import procs, statuses
from agentd.agent import AgentRun, health_text
from agentd.checkpoints import FinalStep, ToolStep, UserStep
from agentd.errors import AuthFailed, ProviderDown, RateLimited, UsageLimit
from agentd.prompts import render
from agentd.providers import cost_usd, model_for
from agentd.runners.job import Job, Outcome
from agentd.runners.cli_output import parse_claude, parse_codex, split_status
from agentd.times import iso

_RESET = re.compile(r"limit reached\|(\d{9,})")
_AUTH = re.compile(r"invalid api key|/login|not logged in|unauthori[sz]ed|authentication|401", re.I)
_LIMIT = re.compile(r"usage limit|limit reached|rate limit|quota|429|overloaded", re.I)
OUTPUT_KEEP = 200_000
RESUME_NOTE = ("\nNote: a previous attempt at this task was interrupted while it ran. Check the current state "
               "of the workspace before redoing anything.\n")


def run(job: Job) -> Outcome:
    return CliAgentRun(job).run()


class CliAgentRun(AgentRun):
    def __init__(self, job: Job):
        super().__init__(job)
        self.turns = 0
        self.did_act = True

    def steps(self) -> int:
        return self.turns

    def acted(self) -> bool:
        return self.did_act

    def run(self) -> Outcome:
        name, cfg, budget = self.provider_name, self.cfg, self.budget
        interrupted = bool(self.cp.recover())
        if final := self.cp.accepted():  # it had ended; agentd died before the wake recorded it
            return self.outcome(final.status, final.summary)
        if reason := budget.check(0):
            return self.stopped(reason, verb="Not started")
        workspace = Path(cfg.workspace)
        workspace.mkdir(parents=True, exist_ok=True)
        argv, model, prompt = self.argv(workspace, interrupted)
        if not self.cp.steps:
            self.cp.add(UserStep(prompt))
        step = ToolStep(f"cli-{self.cp.next_n}", name, {"argv": [self.redact(a) for a in argv]})
        n = self.cp.add(step)
        self.progress(f"step {n}: running {argv[0]} in {workspace}")
        started = time.monotonic()
        rc, out, err = _run(argv, workspace, dict(cfg.env), max(1.0, budget.time_left()))
        parsed = parse_claude(out) if name == "claude-cli" else parse_codex(out)
        error = _error(argv[0], rc, out, err, parsed["error"], cfg)
        self.record(n, argv, model, parsed, out, error, time.monotonic() - started)
        step.result = self.redact(parsed["text"] or error or "(no output)")
        step.is_error, step.status = bool(error), "done"
        self.cp.update(n, step)
        self.turns, self.did_act = parsed["turns"], parsed["acted"]
        if parsed["limit"] == "max_turns":
            return self.stopped(f"budget: max_steps {cfg['max_steps']} reached", verb="Stopped")
        if parsed["limit"] == "max_budget":
            return self.stopped(f"budget: usd_per_run {budget.limits['usd_per_run']} reached", verb="Stopped")
        if rc is None:
            return self.stopped(f"budget: run_timeout {cfg['run_timeout']} reached", verb="Stopped")
        if rc == 127 and not out:
            self.turns = 0
            r = f"{name}: {error}"
            return self.outcome(statuses.BLOCKED, f"Not run: {r}.", r)
        if error:
            return self.failure(self.classify(f"{error} {parsed['text']}", error))
        status, summary = split_status(self.redact(parsed["text"]))
        self.cp.add(FinalStep(status, summary))
        return self.outcome(status, summary)

    def argv(self, workspace: Path, interrupted: bool) -> tuple[list[str], str, str]:
        name, cfg, t = self.provider_name, self.cfg, self.task
        model = model_for(cfg, name)
        prompt = self.redact(render("cli.md", host=cfg.host, workspace=workspace, task_id=t.id, kind=t.kind,
                                    title=t.title, text=t.text, context=self.context().strip() or "(none)",
                                    health=health_text(self.snapshot),
                                    resume_note=RESUME_NOTE if interrupted else ""))
        usd_left = max(0.0, self.budget.limits["usd_per_run"] - self.budget.usd)
        if name == "claude-cli":
            argv = ["claude", "-p", prompt, "--output-format", "json", "--max-turns", str(cfg["max_steps"]),
                    "--max-budget-usd", f"{usd_left:.2f}", "--permission-mode", "bypassPermissions"]
        else:
            argv = ["codex", "exec", "--json", "--skip-git-repo-check", "--sandbox", "workspace-write",
                    "-C", str(workspace), prompt]
        if model:
            argv[2:2] = ["--model", model]
        return argv, model, prompt

    def record(self, n: int, argv: list, model: str, parsed: dict, out: str, error: str | None,
               latency: float) -> None:
        """The CLI's whole run as one exchange, charged to the budget."""
        usage = parsed["usage"]
        cost = parsed["cost"] if parsed["cost"] is not None else cost_usd(self.cfg, model, usage)
        with self.store.tx():
            self.store.add_exchange(self.run_id, step=n, provider=self.provider_name,
                                    model=model or "(cli default)",
                                    request=self.redact(json.dumps(argv, ensure_ascii=False)),
                                    response=self.redact(out[-OUTPUT_KEEP:]), input_tokens=usage.input,
                                    output_tokens=usage.output, cache_read_tokens=usage.cache_read,
                                    cache_write_tokens=usage.cache_write, cost_usd=cost, latency_s=latency,
                                    error=self.redact(error) if error else None)
            self.budget.charge(usage, cost)

    def classify(self, text: str, error: str):
        """The CLI's error as the provider error it amounts to (see ``AgentRun.failure``)."""
        name, exe = self.provider_name, self.provider_name.split("-")[0]
        if m := _RESET.search(text):
            return UsageLimit(f"usage limit ({name}): {error[:200]}", reset_at=iso(int(m.group(1))))
        if _AUTH.search(text):
            return AuthFailed(f"auth: {exe} is not logged in or its key was refused ({error[:200]})")
        if _LIMIT.search(text):
            return RateLimited(f"rate limited ({name}): {error[:200]}")
        return ProviderDown(f"provider down ({name}): {error[:500]}")


def _error(exe: str, rc: int | None, out: str, err: str, parsed_error: str | None, cfg) -> str | None:
    if rc is None:
        return f"killed: {exe} ran past run_timeout {cfg['run_timeout']}"
    if rc == 127 and not out:
        return err.strip() or f"{exe} not found on PATH"
    if rc != 0 and not parsed_error:
        return f"{exe} exited with {rc}: {err.strip()[-500:]}"
    return parsed_error


def _run(argv, cwd, env, timeout) -> tuple[int | None, str, str]:
    try:
        rc, out, err, _ = procs.run(argv, cwd=cwd, env=env, timeout=timeout, max_bytes=32 * 2**20)
    except FileNotFoundError:
        return 127, "", f"{argv[0]} not found on PATH"
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
