"""Coding-agent CLIs as providers: ``claude -p`` (claude-cli) and ``codex exec`` (codex-cli).

These run their own tool loop, so they replace the whole agent loop for a
run: one prompt in, one JSON result out.  Stdin is closed, the workspace is
the working directory, ``run_timeout`` kills the process group, and
``max_steps`` and what is left of ``usd_per_run`` are passed as the CLI's own
caps where it has them.  The CLI gets the full environment: it needs its own
credentials.  The run is checkpointed as one tool step; if agentd dies
while the CLI runs, the resumed run starts the CLI again with a note to
check the workspace first (a CLI session can't be resumed from outside).

The final message should end with ``STATUS: done|blocked|failed``; without
one the run counts as done.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from agentd.budget import DAILY, Budget, next_utc_day
from agentd.checkpoints import Checkpoints, FinalStep, ToolStep, UserStep, transcript_lines
from agentd.prompts import render
from agentd.providers import Usage, cost_usd, model_for
from agentd.redact import redact

_STATUS = re.compile(r"^\s*\**STATUS:?\**\s*(done|blocked|failed)\b.*$", re.I | re.M)
_RESET = re.compile(r"limit reached\|(\d{9,})")
_AUTH = re.compile(r"invalid api key|/login|not logged in|unauthori[sz]ed|authentication|401", re.I)
_LIMIT = re.compile(r"usage limit|limit reached|rate limit|quota|429|overloaded", re.I)
OUTPUT_KEEP = 200_000
RESUME_NOTE = ("\nNote: a previous attempt at this task was interrupted while it ran. Check the current state "
               "of the workspace before redoing anything.\n")


def run_cli_agent(cfg, store, run_id, task, snapshot, run_dir, progress, name: str):
    from agentd.agent import Outcome, health_text, iso_in

    cp = Checkpoints(store, run_id)
    budget = Budget(cfg, store, run_id)
    env = dict(cfg.env)
    secrets = {**os.environ, **env}
    workspace = Path(cfg.workspace)
    workspace.mkdir(parents=True, exist_ok=True)
    model = model_for(cfg, name)
    interrupted = bool(cp.recover())

    def outcome(status, summary, reason=None, defer_until=None, flagged=None, turns=0):
        if status in ("blocked", "failed") and reason is None:
            reason = (summary.strip().splitlines() or [status])[0][:200]
        if run_dir is not None:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            (Path(run_dir) / "transcript.txt").write_text("\n".join(transcript_lines(store, run_id)) + "\n")
        return Outcome(status, summary, reason, defer_until, budget.input_tokens, budget.output_tokens,
                       budget.usd, name, turns, flagged)

    if final := cp.accepted():  # it had ended; agentd died before the wake recorded it
        return outcome(final.status, final.summary)
    if reason := budget.check(0):
        if reason.startswith(DAILY):  # the day's budget: wait for the next UTC day, as agent.stopped does
            return outcome("deferred", f"Not started: {reason}.", reason, next_utc_day())
        return outcome("blocked", f"Not started: {reason}.", reason)
    t = task
    prompt = redact(render("cli.md", host=cfg.host, workspace=workspace, task_id=t.id, kind=t.kind, title=t.title,
                           text=t.text, context=t.context.strip() or "(none)", health=health_text(snapshot),
                           resume_note=RESUME_NOTE if interrupted else ""), secrets)
    usd_left = max(0.0, budget.limits["usd_per_run"] - budget.usd)
    if name == "claude-cli":
        argv = ["claude", "-p", prompt, "--output-format", "json", "--max-turns", str(cfg["max_steps"]),
                "--max-budget-usd", f"{usd_left:.2f}", "--permission-mode", "bypassPermissions"]
    else:
        argv = ["codex", "exec", "--json", "--skip-git-repo-check", "--sandbox", "workspace-write",
                "-C", str(workspace), prompt]
    if model:
        argv[2:2] = ["--model", model]
    if not cp.steps:
        cp.add(UserStep(prompt))
    step = ToolStep(f"cli-{cp.next_n}", name, {"argv": [redact(a, secrets) for a in argv]})
    n = cp.add(step)
    progress(f"step {n}: running {argv[0]} in {workspace}")
    started = time.monotonic()
    rc, out, err = _run(argv, workspace, env, max(1.0, budget.time_left()))
    latency = time.monotonic() - started
    parsed = parse_claude(out) if name == "claude-cli" else parse_codex(out)
    usage, summary, turns, error = parsed["usage"], parsed["text"], parsed["turns"], parsed["error"]
    if rc is None:
        error = f"killed: {argv[0]} ran past run_timeout {cfg['run_timeout']}"
    elif rc == 127 and not out:
        error = err.strip() or f"{argv[0]} not found on PATH"
    elif rc != 0 and not error:
        error = f"{argv[0]} exited with {rc}: {err.strip()[-500:]}"
    cost = parsed["cost"] if parsed["cost"] is not None else cost_usd(cfg, model, usage)
    with store.tx():
        store.add_exchange(run_id, step=n, provider=name, model=model or "(cli default)",
                           request=redact(json.dumps(argv, ensure_ascii=False), secrets),
                           response=redact(out[-OUTPUT_KEEP:], secrets), input_tokens=usage.input,
                           output_tokens=usage.output, cache_read_tokens=usage.cache_read,
                           cache_write_tokens=usage.cache_write, cost_usd=cost, latency_s=latency,
                           error=redact(error, secrets) if error else None)
        budget.charge(usage, cost)
    step.result = redact(summary or error or "(no output)", secrets)
    step.is_error, step.status = bool(error), "done"
    cp.update(n, step)

    limit = parsed.get("limit")
    if limit == "max_turns":
        return outcome("blocked", f"Stopped: budget: max_steps {cfg['max_steps']} reached.",
                       f"budget: max_steps {cfg['max_steps']} reached", turns=turns)
    if limit == "max_budget":
        r = f"budget: usd_per_run {budget.limits['usd_per_run']} reached"
        return outcome("blocked", f"Stopped: {r}.", r, turns=turns)
    if rc is None:
        r = f"budget: run_timeout {cfg['run_timeout']} reached"
        return outcome("blocked", f"Stopped: {r}.", r, turns=turns)
    if rc == 127 and not out:
        r = f"{name}: {error}"
        return outcome("blocked", f"Not run: {r}.", r)
    if error:
        text = f"{error} {summary}"
        if m := _RESET.search(text):
            reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(m.group(1))))
            return outcome("deferred", f"{name}: usage limit until {reset}", f"usage limit: {error[:200]}", reset)
        if _AUTH.search(text):
            r = f"auth: {argv[0]} is not logged in or its key was refused ({error[:200]})"
            return outcome("blocked", r, r, turns=turns)
        if _LIMIT.search(text):
            return outcome("deferred", f"{name}: {error[:200]}", f"rate limited: {error[:200]}", iso_in(900))
        return outcome("failed", f"{name} failed: {error[:500]}", f"provider down: {error[:200]}", turns=turns)
    status, summary = split_status(redact(summary, secrets))
    flagged = None
    if status == "done" and not parsed["acted"]:
        flagged = "finished without doing anything"
    cp.add(FinalStep(status, summary))
    return outcome(status, summary, flagged=flagged, turns=turns)


def split_status(text: str) -> tuple[str, str]:
    """('done', text) or the status named by the last STATUS: line, with that line removed."""
    matches = list(_STATUS.finditer(text or ""))
    if not matches:
        return "done", (text or "").strip()
    m = matches[-1]
    return m.group(1).lower(), (text[:m.start()] + text[m.end():]).strip()


def _run(argv, cwd, env, timeout) -> tuple[int | None, str, str]:
    from agentd import procs

    try:
        rc, out, err, _ = procs.run(argv, cwd=cwd, env=env, timeout=timeout, max_bytes=32 * 2**20)
    except FileNotFoundError:
        return 127, "", f"{argv[0]} not found on PATH"
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def parse_claude(out: str) -> dict:
    """``claude -p --output-format json``: one result object (or a list holding one)."""
    res = {"usage": Usage(), "text": "", "turns": 0, "error": None, "cost": None, "acted": True, "limit": None}
    try:
        data = json.loads(out)
    except ValueError:
        res["error"] = f"not JSON: {out.strip()[:300]}" if out.strip() else None
        return res
    if isinstance(data, list):
        data = next((d for d in reversed(data) if isinstance(d, dict) and d.get("type") == "result"), {})
    if not isinstance(data, dict):
        res["error"] = "unexpected JSON from claude"
        return res
    u = data.get("usage") or {}
    res["usage"] = Usage(input=int(u.get("input_tokens") or 0), output=int(u.get("output_tokens") or 0),
                         cache_read=int(u.get("cache_read_input_tokens") or 0),
                         cache_write=int(u.get("cache_creation_input_tokens") or 0))
    res["text"] = str(data.get("result") or "")
    res["turns"] = int(data.get("num_turns") or 0)
    res["acted"] = res["turns"] > 1
    if data.get("total_cost_usd") is not None:
        res["cost"] = float(data["total_cost_usd"])
    subtype = str(data.get("subtype") or "")
    if subtype == "error_max_turns":
        res["limit"] = "max_turns"
    elif "budget" in subtype:
        res["limit"] = "max_budget"
    elif data.get("is_error") or subtype.startswith("error"):
        res["error"] = res["text"] or subtype or "claude reported an error"
    return res


def parse_codex(out: str) -> dict:
    """``codex exec --json``: JSON lines of thread/turn/item events."""
    res = {"usage": Usage(), "text": "", "turns": 0, "error": None, "cost": None, "acted": False, "limit": None}
    inp = cached = outp = 0
    for line in out.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if not isinstance(ev, dict):
            continue
        kind = ev.get("type")
        item = ev.get("item") or {}
        if kind == "item.completed" and item.get("type") == "agent_message":
            res["text"] = str(item.get("text") or "")
        elif kind == "item.completed" and item.get("type") in ("command_execution", "file_change", "mcp_tool_call"):
            res["acted"] = True
        elif kind == "turn.completed":
            res["turns"] += 1
            u = ev.get("usage") or {}
            inp += int(u.get("input_tokens") or 0)
            cached += int(u.get("cached_input_tokens") or 0)
            outp += int(u.get("output_tokens") or 0)
        elif kind in ("turn.failed", "error"):
            err = ev.get("error") if isinstance(ev.get("error"), dict) else ev
            res["error"] = str(err.get("message") or kind)
    res["usage"] = Usage(input=max(0, inp - cached), cache_read=cached, output=outp)
    return res
