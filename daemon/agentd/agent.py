"""The agent runs: the API agent loop, and what it shares with the CLI agents.

``AgentRun`` holds what every agent run has: its checkpoints, its budget, the
worklog context for the prompt, and the mapping of how it stopped to the one
``runners.Outcome``.  ``ApiAgentRun`` is the loop for the chat APIs: it asks the
model, runs the tools it asks for, and stops when it calls ``finish`` (or answers
in plain text: done, with that text as the summary), when a budget runs out
(blocked), or when the provider fails (blocked, deferred or failed: see
``failure``).  A reply cut off at the output limit (``length`` / ``max_tokens``) is
not an answer: the model is told so and goes on, and a reply that stays cut
(``MAX_CUT`` in a row, or at the last step) fails the run (``cut_off``).  A run
whose every tool call failed is never done (``all_failed``).  The CLI agents (``runners/cli_agent.py``) run their own loop.
Every step is checkpointed (``checkpoints.py``) before the next action, so running
the same run id again resumes it.  The model's mistakes go back to it as tool
errors; exceptions from agentd's own code propagate to the wake.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from agentd import approvals, compaction, statuses, worktrees
from agentd.budget import DAILY, Budget
from agentd.checkpoints import (UNKNOWN_OUTCOME, Checkpoints, FinalStep, ModelStep, ReviewStep, SystemStep,
                                ToolStep, UserStep, transcript_lines)
from agentd.errors import AuthFailed, ContextOverflow, ProviderDown, ProviderError, RateLimited, UsageLimit
from agentd.prompts import render
from agentd.providers import (CUT_REASONS, Message, Provider, Response, ToolCall, cost_usd, make_provider,
                              resolve_provider_name)
from agentd.redact import redact
from agentd.runners.job import Job, Outcome
from agentd.times import iso_in, next_utc_day
from agentd.tools import SPECS, Tools, check_args

DEFAULT_DEFER = 900  # seconds to wait out a rate limit that named no time
TRIVIAL = 20  # a done summary shorter than this is flagged
MAX_CUT = 3  # replies cut off at the output limit in a row that fail the run
CUT_NOTE = ("[agentd] Your last reply was cut off at the output limit (stop reason {stop}, max_tokens {limit}) "
            "before you ended it. Go on from where it stopped, in shorter replies, and call finish when the task "
            "is done.")


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

    def redact(self, text: str) -> str:
        return redact(text, self.secrets_env)

    def context(self) -> str:
        return worklog_context(self.cfg, self.store, self.task)

    def acted(self) -> bool:
        return bool(self.cp.used_tools())

    # -- how it ended ----------------------------------------------------------------
    def outcome(self, status: str, summary: str, reason: str | None = None,
                defer_until: str | None = None) -> Outcome:
        flagged = None
        if status == statuses.DONE and (why := self.all_failed()):
            status, reason = statuses.FAILED, why
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
                       flagged=flagged)

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

    def stopped(self, reason: str, verb: str | None = None) -> Outcome:
        """A budget stopped the run: the day's budget defers it to the next UTC day, any other blocks it."""
        summary = f"{verb or f'Stopped after {self.steps()} model turns'}: {reason}."
        if reason.startswith(DAILY):
            return self.outcome(statuses.DEFERRED, summary, reason, next_utc_day())
        return self.outcome(statuses.BLOCKED, summary, reason)

    def failure(self, e: ProviderError) -> Outcome:
        """Map a provider failure to the outcome that decides the next wake."""
        reason = str(e)
        summary = f"Stopped after {self.steps()} model turns: {reason}"
        if isinstance(e, AuthFailed):
            return self.outcome(statuses.BLOCKED, summary, reason)
        if isinstance(e, UsageLimit):
            if e.reset_at and self.may_wait_for_reset():
                self.store.update_run(self.run_id, limit_waits=self.limit_waits() + 1)
                out = self.outcome(statuses.WAITING, f"Waiting for the usage limit to reset at {e.reset_at}: {reason}",
                                   f"waiting for usage reset at {e.reset_at}", e.reset_at)
                return out
            if e.reset_at:
                return self.outcome(statuses.DEFERRED, summary, reason, e.reset_at)
            return self.outcome(statuses.BLOCKED, summary, reason)
        if isinstance(e, RateLimited):
            wait = e.retry_after if e.retry_after is not None else DEFAULT_DEFER
            return self.outcome(statuses.DEFERRED, summary, reason, iso_in(wait))
        if self.budget.time_left() <= 0:
            return self.stopped(f"budget: run_timeout {self.cfg['run_timeout']} reached")
        return self.outcome(statuses.FAILED, summary, reason)


    def limit_waits(self) -> int:
        return int((self.store.run(self.run_id) or {}).get("limit_waits") or 0)

    def may_wait_for_reset(self) -> bool:
        """Park for a usage limit's reset, unless waiting is off or the run has waited out its windows
        (the task's ``limit_waits``, else config ``max_limit_waits``)."""
        cap = self.task.attrs.get("limit_waits")
        cap = self.cfg["max_limit_waits"] if cap is None else cap
        return bool(self.cfg["wait_for_usage_reset"]) and self.limit_waits() < cap


class ApiAgentRun(AgentRun):
    """The loop for the chat APIs (anthropic, openai and OpenAI-compatible servers)."""

    def __init__(self, job: Job):
        super().__init__(job)
        self.tools = self.make_tools()
        self.provider: Provider | None = None
        self.fell_back = False

    def make_tools(self) -> Tools:
        """The tools, their shell sandboxed by the task's attrs widened by what a person approved: the
        whole network, or hosts added to the task's (or the config's) list (``egress.allowlist``).  The
        tools they replace are closed (their egress proxy stopped)."""
        from agentd import egress, sandbox

        network, writable, self.refused_grants = approvals.grants(self.cfg, self.store, self.run_id,
                                                                  self.cfg.workspace)
        for aid, why in self.refused_grants.items():
            self.progress(f"approval {aid} grants nothing: {why}")
        allow = egress.allowlist(self.cfg, self.task.attrs, network)
        attrs = {**self.task.attrs, "network": True if allow is None else list(allow) or False}
        policy = sandbox.policy_for(self.cfg, attrs, self.workspace, writable=writable)
        if getattr(self, "tools", None) is not None:
            self.close_tools()
        return Tools(self.workspace, self.cfg.env, cfg=self.cfg, attrs=attrs, policy=policy)

    def close_tools(self) -> None:
        """Stop the shell's egress proxy; what it refused goes to the progress log and the manifest."""
        self.tools.close()
        egress = self.tools.egress
        if egress is not None and egress.refused:
            from agentd.escapes import safe
            from agentd.rundir import amend_manifest

            self.progress(f"the proxy refused {len(egress.refused)} request(s) of the shell: "
                          + safe(", ".join(egress.refused[:5]))[:300])
            if self.run_dir is not None:
                amend_manifest(self.run_dir, network={"policy": "allowlist", "hosts": list(egress.allow),
                                                      "refused": egress.refused[:50]})

    # -- the loop ------------------------------------------------------------------
    def run(self) -> Outcome:
        try:
            return self.loop()
        finally:
            self.close_tools()  # the shell's egress proxy lives as long as the run

    def loop(self) -> Outcome:
        try:
            self.provider = make_provider(self.cfg)
        except ProviderError as e:
            return self.failure(e)
        self.provider_name = self.provider.name
        self.begin()
        for turn in range(self.steps(), self.cfg["max_steps"] + 1):  # one model call a turn, max_steps of them
            if final := self.cp.accepted():
                return self.outcome(final.status, final.summary)
            if self.budget.time_left() <= 0:  # a resumed run out of time runs no pending tool
                return self.stopped(self.budget.check(0))
            for call in self.cp.pending_calls():
                if call.name == "finish" and not check_args(call):
                    if out := self.finish(call.args["status"], call.args["summary"], call):
                        return out
                elif call.name == "request_approval" and not check_args(call):
                    if out := self.ask_a_person(call):
                        return out
                else:
                    self.run_tool(call)
            last = self.cp.last()
            if isinstance(last, ModelStep) and not last.tool_calls:
                if last.stop in CUT_REASONS:
                    if out := self.cut_off(last):
                        return out
                elif out := self.finish(statuses.DONE, last.text):
                    return out
            if reason := self.budget.check(self.steps()):  # max_steps, time, tokens, dollars
                return self.stopped(reason)
            try:
                resp = self.call_model()
            except ProviderError as e:
                return self.failure(e)
            calls = [ToolCall(c.id, c.name, _redact_args(c.args, self.redact)) for c in resp.tool_calls]
            n = self.cp.add(ModelStep(self.redact(resp.text), calls, self.provider.name, self.provider.model,
                                      resp.stop_reason or ""))
            self.progress(f"step {n}: model asked for {', '.join(c.name for c in resp.tool_calls) or 'nothing'}"
                          + (f" (reply cut off: {resp.stop_reason})" if resp.cut else ""))
        return self.stopped(f"budget: max_steps {self.cfg['max_steps']} reached")

    def cut_off(self, last: ModelStep) -> Outcome | None:
        """A reply cut off at the output limit with no tool call: tell the model and go on, or, when
        ``MAX_CUT`` replies in a row were cut or no step is left, fail the run naming the stop reason."""
        run = 0
        for step in reversed(self.cp.of(ModelStep)):
            if step.stop not in CUT_REASONS:
                break
            run += 1
        where = (f"{run} times in a row" if run >= MAX_CUT
                 else "at the last step" if self.steps() >= self.cfg["max_steps"] else None)
        if where is None:
            self.cp.add(UserStep(CUT_NOTE.format(stop=last.stop, limit=self.cfg["max_tokens"])))
            self.progress(f"reply cut off ({last.stop}); asking the model to go on")
            return None
        reason = f"reply cut off at the output limit (stop reason {last.stop}) {where}"
        return self.outcome(statuses.FAILED, f"Stopped after {self.steps()} model turns: {reason}.", reason)

    def begin(self) -> None:
        if self.cp.steps:
            lost = self.cp.recover()
            answered = self.take_answers()
            self.progress(f"resuming run {self.run_id} at step {self.cp.next_n}"
                          + (f"; {len(lost)} tool call(s) had an unknown outcome" if lost else "")
                          + (f"; {answered} approval request(s) answered" if answered else ""))
            return
        t = self.task
        system = render("system.md", host=self.cfg.host, task_id=t.id, kind=t.kind, title=t.title, text=t.text,
                        context=self.context().strip() or "(none)", health=health_text(self.snapshot),
                        workspace=worktrees.prompt_text(self.cfg, self.run_id, self.workspace),
                        max_steps=self.cfg["max_steps"])
        self.cp.add(SystemStep(self.redact(system)))
        self.cp.add(UserStep(self.redact(render("task.md", task_id=t.id, title=t.title))))
        self.progress(f"starting with {self.provider.name} {self.provider.model}")

    def run_tool(self, call: ToolCall) -> None:
        step = ToolStep(call.id, call.name, call.args)
        n = self.cp.add(step)  # recorded as started before it runs
        arg = call.args.get("command") or call.args.get("path") or ""
        self.progress(self.redact(f"step {n}: {call.name} {str(arg)[:120]}".rstrip()))
        timeout = max(1.0, min(self.cfg.duration("command_timeout"), self.budget.time_left()))
        result = self.tools.run(call, timeout)
        step.result, step.is_error, step.status = self.redact(result.text), result.is_error, "done"
        self.cp.update(n, step)

    # -- asking a person (approvals.py) ----------------------------------------------
    def ask_a_person(self, call: ToolCall) -> Outcome | None:
        """Park the run: the request is recorded, its tool step left waiting for the answer.  A path
        no sandbox could make writable (``/``, one holding agentd's files), or one that lies in or passes
        through a place an agent can write, is refused at once; the person is shown the resolved path."""
        what = None
        if call.args["kind"] == "write":
            from agentd import sandbox

            conflicts = sandbox.policy_for(self.cfg, self.task.attrs, self.cfg.workspace,
                                           writable=[call.args["what"]]).conflicts
            what, why = approvals.bound_path(self.cfg, self.store, self.cfg.workspace, call.args["what"])
            if conflicts or why:
                self.cp.add(ToolStep(call.id, call.name, call.args, f"request_approval: refused, not asked: "
                                     f"{conflicts[0] if conflicts else why}", True, "done"))
                return None
        row = approvals.request(self.cfg, self.store, self.run_id, self.task.id, call.id, call.args, what=what)
        n = self.cp.add(ToolStep(call.id, call.name, call.args, status=statuses.WAITING))
        self.progress(f"step {n}: waiting for a person to answer {row['id']}")
        out = self.outcome(statuses.WAITING, f"Waiting for approval {approvals.describe(row)}",
                           f"waiting for approval {row['id']}")
        out.lines[:0] = approvals.entry_lines(row)
        return out

    def take_answers(self) -> int:
        """On resume: each request a person answered becomes its tool step's result; an approved command
        runs now, outside the sandbox, as the person would run it."""
        n_answered = 0
        for n, step in self.cp.steps:
            if not isinstance(step, ToolStep) or step.status != statuses.WAITING:
                continue
            row = next((r for r in self.store.approvals(self.run_id) if r["call_id"] == step.call_id), None)
            if row is None or row["answer"] is None:
                continue
            text = approvals.result_text(row, self.refused_grants.get(row["id"]))
            if row["answer"] == "approve" and row["kind"] == "command":
                text += "\n" + self.run_outside(row["what"], row.get("dir"))
            step.result, step.is_error, step.status = self.redact(text), row["answer"] != "approve", "done"
            self.cp.update(n, step)
            n_answered += 1
        if n_answered:
            self.tools = self.make_tools()  # an approval widens the sandbox for the rest of this run
            from agentd import sandbox
            from agentd.rundir import amend_manifest

            amend_manifest(self.run_dir, sandbox=sandbox.describe(self.tools.policy(), self.cfg),
                           approvals=[{k: r[k] for k in ("id", "kind", "what", "answer", "answered_at")}
                                      for r in self.store.approvals(self.run_id)])
        return n_answered

    def run_outside(self, command: str, where: str | None = None) -> str:
        """A command a person approved, run once outside the sandbox, without agentd's keys or any name
        of its env file: in a new empty directory (removed after), never where an agent could have left
        code, or in ``where``, the directory the person's answer named, unless an agent can write it."""
        import shutil

        from agentd import procs
        from agentd.tools import SHELL_MAX_BYTES, cap

        if where:
            real, why = approvals.bound_path(self.cfg, self.store, self.cfg.workspace, where)
            if why is None and not os.path.isdir(real):
                why = f"{real} is not a directory"
            if why:
                return f"[not run: the directory the person named can't be used: {why}]"
        cwd = real if where else approvals.empty_dir(self.cfg)
        try:
            rc, out, _, stopped = procs.run(["/bin/sh", "-c", command], cwd=cwd, env=approvals.command_env(self.cfg),
                                            timeout=self.cfg.duration("command_timeout"),
                                            max_bytes=SHELL_MAX_BYTES, merge_stderr=True)
        finally:
            if not where:
                shutil.rmtree(cwd, ignore_errors=True)
        note = f"[exit code {rc}]" if stopped is None else f"[killed: {stopped}]"
        return f"{cap(out.decode('utf-8', 'replace'))}\n{note}"

    def finish(self, status: str, summary: str, call: ToolCall | None = None) -> Outcome | None:
        """End the run, unless the reviewer sends it back (once)."""
        objected = any(r.verdict == "object" for r in self.cp.of(ReviewStep))
        if status == "done" and self.cfg["review"]["enabled"] and not objected:
            verdict, text = self.review(summary)
            if verdict == "object":
                if call:
                    self.cp.add(ToolStep(call.id, "finish", call.args, "not accepted: a reviewer objected",
                                         True, "done"))
                self.cp.add(ReviewStep("object", render("objection.md", objection=text)))
                self.progress("reviewer objected; continuing")
                return None
            if verdict:
                self.cp.add(ReviewStep(verdict, text))
        summary = self.redact(summary)
        if call:
            args = {k: self.redact(v) if isinstance(v, str) else v for k, v in call.args.items()}
            self.cp.add(ToolStep(call.id, "finish", args, "accepted", False, "done"))
        self.cp.add(FinalStep(status, summary))
        return self.outcome(status, summary)

    # -- model calls ---------------------------------------------------------------
    def call_model(self) -> Response:
        model = self.provider.model
        if compaction.needed(self.cfg, model, self.cp):
            self.progress("compacting the conversation")
            compaction.compact(self.cfg, model, self.cp, self.ask_plain)
        for attempt in range(3):
            try:
                return self.ask(self.cp.system, self.cp.messages())
            except ContextOverflow:
                if attempt or not compaction.compact(self.cfg, model, self.cp, self.ask_plain, force=True):
                    raise
                self.progress("context overflow: compacted, retrying")
            except RateLimited as e:
                if not self.fall_back(e):
                    raise
        raise ProviderDown("gave up after compaction and fallback")

    def ask(self, system: str, messages: list[Message], tools=SPECS, max_tokens: int | None = None,
            provider: Provider | None = None) -> Response:
        """One recorded, budgeted model call, asking for at most config ``max_tokens`` output tokens."""
        p = provider or self.provider
        max_tokens = min(max_tokens or self.cfg["max_tokens"], self.cfg["max_tokens"])
        request = p.request(system, messages, tools, max_tokens)
        t = time.monotonic()
        fields = dict(step=self.cp.next_n, provider=p.name, model=p.model,
                      request=self.redact(json.dumps(request, ensure_ascii=False)))
        try:
            resp = p.complete(system, messages, tools, max_tokens, deadline=self.budget.deadline)
        except ProviderError as e:
            self.store.add_exchange(self.run_id, **fields, latency_s=time.monotonic() - t,
                                    error=self.redact(f"{type(e).__name__}: {e} (after {p.attempts} attempts)"))
            raise
        u, cost = resp.usage, cost_usd(self.cfg, p.model, resp.usage)
        with self.store.tx():
            self.store.add_exchange(self.run_id, **fields, latency_s=time.monotonic() - t,
                                    response=self.redact(json.dumps(resp.raw, ensure_ascii=False, default=str)),
                                    input_tokens=u.input, output_tokens=u.output, cache_read_tokens=u.cache_read,
                                    cache_write_tokens=u.cache_write, cost_usd=cost)
            self.budget.charge(u, cost)
        return resp

    def ask_plain(self, system: str, messages: list[Message]) -> Response:
        return self.ask(system, messages, tools=[], max_tokens=1024)

    def fall_back(self, e: RateLimited) -> bool:
        name = self.cfg["fallback_provider"]
        if not name or self.fell_back:
            return False
        try:
            fallback = make_provider(self.cfg, name, primary=False)
        except ProviderError:
            return False
        self.progress(f"{self.provider.name} overloaded ({e}); falling back to {fallback.name}")
        self.provider, self.provider_name, self.fell_back = fallback, fallback.name, True
        return True

    def review(self, summary: str) -> tuple[str | None, str]:
        rc = self.cfg["review"]
        name = rc["provider"] or self.provider.name
        model = rc["model"] or (self.provider.model if name == self.provider.name else None)
        actions = "\n".join(f"- {s.name} {json.dumps(s.args)[:300]} -> {(s.result or '')[:300]}"
                            for s in self.cp.used_tools()) or "(no tool calls)"
        try:
            reviewer = make_provider(self.cfg, name, model=model, primary=False)
            system = render("review.md", title=self.task.title, text=self.task.text, actions=actions,
                            summary=summary)
            text = self.ask(system, [Message("user", "Review it now.")], tools=[], max_tokens=512,
                            provider=reviewer).text.strip()
        except ProviderError as e:
            self.progress(f"review skipped: {e}")
            return None, ""
        if text.upper().startswith("OBJECT"):
            return "object", text.split(":", 1)[-1].strip() or text
        return "approve", text


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


def health_text(snapshot: dict | None, limit: int = 3000) -> str:
    if not snapshot:
        return "(no health snapshot)"
    if isinstance(snapshot.get("summary"), str):
        return snapshot["summary"][:limit]
    lines = [f"{k}: {v if isinstance(v, str) else json.dumps(v, default=str)}" for k, v in snapshot.items()]
    return "\n".join(lines)[:limit]


def _redact_args(value, redact):
    """Tool-call arguments as stored (and so as run): secrets the model wrote out are masked."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_args(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_args(v, redact) for v in value]
    return value
