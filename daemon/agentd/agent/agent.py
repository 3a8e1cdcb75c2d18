"""The API agent loop (``ApiAgentRun``, on ``agentrun.AgentRun``, what it shares with the CLI agents).

``ApiAgentRun`` is the loop for the chat APIs: it asks the
model, runs the tools it asks for, and stops when it calls ``finish`` (or answers
in plain text: done, with that text as the summary), when a budget runs out
(blocked), or when the provider fails (blocked, deferred or failed: see
``failure``).  A reply cut off at the output limit (``length`` / ``max_tokens``) is
not an answer: the model is told so and goes on, and a reply that stays cut
(``MAX_CUT`` in a row, or at the last step) fails the run (``cut_off``).  A run
whose every tool call failed is never done (``AgentRun.all_failed``).  The CLI agents (``runners/cli_agent.py``) run their own loop.
Every step is checkpointed (``checkpoints.py``) before the next action, so running
the same run id again resumes it.  The model's mistakes go back to it as tool
errors; exceptions from agentd's own code propagate to the wake.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from agentd import statuses
from agentd.agent import approvals, compaction
from agentd.agent.agentrun import AgentRun, health_text
from agentd.agent.budget import Limit
from agentd.agent.checkpoints import FinalStep, ModelStep, ReviewStep, SystemStep, ToolStep, UserStep
from agentd.agent.tools import cap, check_args, claimed, SHELL_MAX_BYTES, SPECS, Tools
from agentd.errors import ContextOverflow, ProviderDown, ProviderError, RateLimited
from agentd.escapes import safe
from agentd.prompts import render
from agentd.providers import CUT_REASONS, Message, Provider, Response, ToolCall, cost_usd, make_provider
from agentd.sandbox import egress, procs, sandbox
from agentd.statuses import Cause
from agentd.tasks.job import Job, Outcome
from agentd.workspace import worktrees
from agentd.workspace.rundir import amend_manifest

MAX_CUT = 3  # replies cut off at the output limit in a row that fail the run
CUT_NOTE = ("[agentd] Your last reply was cut off at the output limit (stop reason {stop}, max_tokens {limit}) "
            "before you ended it. Go on from where it stopped, in shorter replies, and call finish when the task "
            "is done.")


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
        network, writable, self.refused_grants = approvals.grants(self.cfg, self.store, self.run_id,
                                                                  self.cfg.workspace)
        for aid, why in self.refused_grants.items():
            self.progress(f"approval {aid} grants nothing: {why}")
        allow = egress.allowlist(self.cfg, self.task.attrs, network)
        attrs = {**self.task.attrs, "network": True if allow is None else list(allow) or False}
        policy = sandbox.policy_for(self.cfg, attrs, self.workspace, writable=writable)
        if getattr(self, "tools", None) is not None:
            self.close_tools()
        tools = Tools(self.workspace, self.cfg.env, cfg=self.cfg, attrs=attrs, policy=policy)
        tools.recorded = {m.name: m for m in claimed(self.cp.of(ToolStep))}  # a resumed run's, for the cap
        return tools

    def close_tools(self) -> None:
        """Stop the shell's egress proxy; what it refused goes to the progress log and the manifest."""
        self.tools.close()
        egress = self.tools.egress
        if egress is not None and egress.refused:
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
                elif out := self.empty(last):
                    return out
                elif out := self.finish(statuses.DONE, last.text):
                    return out
            if limit := self.budget.check(self.steps()):  # max_steps, time, tokens, dollars
                return self.stopped(limit)
            try:
                resp = self.call_model()
            except ProviderError as e:
                return self.failure(e)
            calls = [ToolCall(c.id, c.name, _redact_args(c.args, self.redact)) for c in resp.tool_calls]
            n = self.cp.add(ModelStep(self.redact(resp.text), calls, self.provider.name, self.provider.model,
                                      resp.stop_reason or ""))
            self.progress(f"step {n}: model asked for {', '.join(c.name for c in resp.tool_calls) or 'nothing'}"
                          + (f" (reply cut off: {resp.stop_reason})" if resp.cut else ""))
        return self.stopped(Limit(f"budget: max_steps {self.cfg['max_steps']} reached"))

    def empty(self, last: ModelStep) -> Outcome | None:
        """A reply with no text and no tool call says nothing was done: the run fails, naming it."""
        if last.text.strip():
            return None
        reason = f"the model's reply was empty: no text and no tool call (stop reason {last.stop or 'none'})"
        return self.outcome(statuses.FAILED, f"Stopped after {self.steps()} model turns: {reason}.", reason)

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
                        rules=self.rules_text(),
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
                           f"waiting for approval {row['id']}", cause=Cause.APPROVAL)
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
            amend_manifest(self.run_dir, sandbox=sandbox.describe(self.tools.policy(), self.cfg),
                           approvals=[{k: r[k] for k in ("id", "kind", "what", "answer", "answered_at")}
                                      for r in self.store.approvals(self.run_id)])
        return n_answered

    def run_outside(self, command: str, where: str | None = None) -> str:
        """A command a person approved, run once outside the sandbox, without agentd's keys or any name
        of its env file: in a new empty directory (removed after), never where an agent could have left
        code, or in ``where``, the directory the person's answer named, unless an agent can write it."""
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


def _redact_args(value, redact):
    """Tool-call arguments as stored (and so as run): secrets the model wrote out are masked."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_args(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_args(v, redact) for v in value]
    return value
