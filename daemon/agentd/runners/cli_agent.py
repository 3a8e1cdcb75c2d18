"""Coding-agent CLIs as a runner: ``claude -p`` (claude-cli) and ``codex exec`` (codex-cli).

These run their own tool loop, so they replace the whole agent loop for a run:
one prompt in, JSON lines out (``cli_output``; the shapes agentd reads are in
docs/agent.md).  The CLI runs inside agentd's sandbox (``sandbox.py``: bwrap, no network
of its own unless the task says ``{network: true}``; claude is told so with
``IS_SANDBOX=1``, which it needs to bypass permissions as root), in its own session,
with stdin closed, the workspace as its working directory and ``run_timeout``
stopping its process group.  Without a usable sandbox the run is not started (fail
closed) unless the config says ``sandbox: off``.  bwrap's ``--die-with-parent`` (and
PR_SET_PDEATHSIG on the CLI itself) stop the CLI's whole tree when agentd is killed;
``procs.kill_orphan`` stops leftovers on the next wake.

No key enters the sandbox: the CLI gets a per-run placeholder and reaches its API through
``proxy.Proxy``, which agentd runs outside for the length of the run (it adds the real key, and is
the egress allowlist of ``{network: [hosts]}``), by way of ``relay.py`` inside (the sandbox's
command, which starts the CLI).  Its login dir is a fresh one per run (``clihome.RunHome``),
removed after it; nothing is copied back.

``max_steps`` and what is left of ``usd_per_run`` are passed as the CLI's own caps
where it has them; claude refuses a budget under half a cent, so such a run is not
started.  The run is checkpointed as one tool step; if agentd dies while the CLI
runs, the resumed run starts the CLI again with a note to check the workspace first
(a CLI session can't be resumed from outside).  How it stopped maps to the outcome
as for the API agents (``agentrun.AgentRun.failure``); a usage limit carries the reset
time the CLI printed.  The CLI's own tool calls are read from its output: a run whose every
call failed ends ``failed``, not ``done`` (``all_failed``; the counts go into the manifest, the
exchange and the run's step, so a resumed wake records the same outcome).
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from agentd import escapes, statuses
from agentd.agent.agentrun import AgentRun, health_text
from agentd.agent.budget import Limit
from agentd.agent.checkpoints import FinalStep, ToolStep, UserStep
from agentd.errors import AuthFailed, ProviderDown, RateLimited, StateError, UsageLimit
from agentd.prompts import render
from agentd.providers import cost_usd, model_for
from agentd.config.config import read_env_file
from agentd.providers.choice import KEY_VARS
from agentd.runners import cli_windows
from agentd.runners.cli_output import (USAGE_LIMIT, all_failed, codex_session_model, parse_claude, parse_codex,
                                       reset_at, split_status)
from agentd.store import windows
from agentd.sandbox import bwrap, cgroups, clihome, egress, procs, proxy, relay, sandbox
from agentd.tasks.job import Job, Outcome
from agentd.times import iso
from agentd.workspace.rundir import amend_manifest

_AUTH = re.compile(r"invalid api key|/login|not logged in|unauthori[sz]ed|authentication|\b401\b|\b403\b", re.I)
_RATE = re.compile(r"rate limit|too many requests|\b429\b|\b529\b|overloaded", re.I)
# out of credit or quota: claude's "Credit balance is too low" (an HTTP 400), codex's "Quota exceeded. Check your
# plan and billing details." (insufficient_quota): a blocked quota, as a usage limit without a reset time
_QUOTA = re.compile(r"quota exceeded|insufficient_quota|exceeded your current quota|credit balance|"
                    r"insufficient credits?|billing", re.I)
OUTPUT_KEEP = 200_000
MIN_CLAUDE_USD = 0.005  # claude's --max-budget-usd must be > 0, and agentd passes it with two decimals
# The models the CLIs use when agentd names none (claude-code 2.1.332, codex 0.171.0): for prices only.
CLI_DEFAULT_MODELS = {"claude-cli": "claude-opus-5-5", "codex-cli": "gpt-6.2-sol"}
PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "all_proxy",
              "no_proxy")
# codex: names its shells never see (its own defaults cover *KEY*, *SECRET*, *TOKEN*)
CODEX_SHELL_EXCLUDE = ("*KEY*", "*SECRET*", "*TOKEN*", "*PASSWORD*", "*CREDENTIAL*")
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

    def all_failed(self) -> str | None:
        """Why the CLI's run is not done when every tool call it made (one at least) failed: the counts
        its last run step keeps (``note_tools``, from its output)."""
        ran = [s for s in self.cp.of(ToolStep) if s.name == self.provider_name]
        return all_failed(ran[-1].args.get("tools")) if ran else None

    def note_tools(self, n: int, step: ToolStep, tools: dict) -> None:
        """The CLI's own tool calls, counted from its output: in its run step, the manifest, progress."""
        counts = {"calls": tools["calls"], "failed": tools["failed"]}
        step.args["tools"] = {**counts, "first_error": self.redact(tools["first_error"] or "") or None}
        self.cp.update(n, step)
        if self.run_dir is not None:
            amend_manifest(self.run_dir, tool_calls=counts)
        if counts["calls"]:
            self.progress(f"{self.provider_name} made {counts['calls']} tool call(s), {counts['failed']} failed")

    def run(self) -> Outcome:
        name, cfg, budget = self.provider_name, self.cfg, self.budget
        interrupted = bool(self.cp.recover())
        if final := self.cp.accepted():  # it had ended; agentd died before the wake recorded it
            return self.outcome(final.status, final.summary)
        if limit := budget.check(0):
            return self.stopped(limit, verb="Not started")
        usd_left = budget.limits["usd_per_run"] - budget.usd
        if name == "claude-cli" and usd_left < MIN_CLAUDE_USD:
            return self.stopped(Limit(f"budget: usd_per_run {budget.limits['usd_per_run']} has "
                                      f"${max(usd_left, 0):.4f} left, under the ${MIN_CLAUDE_USD} claude can be "
                                      "given (--max-budget-usd)"), verb="Not started")
        workspace = Path(self.workspace)  # the task's own (worktrees.prepare made it)
        argv, model, prompt = self.argv(workspace, interrupted, usd_left)
        env = dict(cfg.env)
        exe = shutil.which(argv[0], path=env.get("PATH") or os.defpath)
        if exe is None:
            return self.not_run(f"{argv[0]} not found on PATH")
        argv[0] = exe
        login = clihome.login_for(name, env)
        allow = egress.allowlist(cfg, self.task.attrs) or ()  # (None, the whole network: policy.network says so)
        with clihome.RunHome(cfg, self.run_id, name) as home:
            policy = sandbox.policy_for(cfg, self.task.attrs, workspace, for_cli=name, writable=(home.path,))
            if name == "claude-cli" and policy.mode == "off" and _is_root():
                return self.not_run("as root claude bypasses permissions only inside a sandbox, and the config "
                                    "says `sandbox: off`; run agentd as a normal user or turn the sandbox on")
            full = policy.mode == "off" or policy.network  # the CLI shares the host's network: no relay
            net = {"policy": "full" if full else "allowlist" if allow else "provider only",
                   **({"hosts": list(allow)} if allow and not full else {})}
            port = None if full else 20000 + secrets.randbelow(40000)
            with proxy.Proxy(home.sock, login.upstream, login.token, () if full else allow, cli=name, tcp=full,
                             self_port=port) as px:
                port = px.port or port
                url = f"http://127.0.0.1:{port}"
                if name == "codex-cli":
                    home.write_codex_config(url, login.model)
                if name == "codex-cli" and policy.mode != "off":
                    # codex's own sandbox is bwrap too, which can't start inside agentd's (no capabilities,
                    # no user namespaces): agentd's confines it instead (and the record says what ran)
                    argv[argv.index("workspace-write")] = "danger-full-access"
                cmd = argv if full else relay.command(sandbox.python_inside(policy), home.sock, port, argv)
                try:
                    wrapped = sandbox.wrap(cmd, policy, cfg)
                except sandbox.Unavailable as e:
                    return self.not_run(f"agentd runs CLI agents only inside its sandbox, and {e} (only an explicit "
                                        "`sandbox: off` in the config runs them without it)")
                env = _inside_env(policy, env, login, home, url, full)
                which = _sandbox_note(policy, cfg, net)
                if not self.cp.steps:
                    self.cp.add(UserStep(prompt))
                step = ToolStep(f"cli-{self.cp.next_n}", name, {"argv": [self.redact(a) for a in argv],
                                                                 "sandbox": which})
                n = self.cp.add(step)
                self.progress(f"step {n}: running {Path(exe).name} in {workspace} ({which})")
                started = time.monotonic()
                with cgroups.group(cfg, self.run_id) as cg:  # pids, memory, CPU weight
                    rc, out, err = _run(cg.wrap(wrapped), workspace, env, max(1.0, budget.time_left()))
                ran = codex_session_model(home.home) if name == "codex-cli" else None
                readings = cli_windows.codex(home.home) if name == "codex-cli" else cli_windows.claude(out)
                if px.refused:
                    net["refused"] = px.refused[:50]
                    self.progress(f"the proxy refused {len(px.refused)} request(s): " +
                                  escapes.safe(", ".join(px.refused[:5]))[:300])
        if self.run_dir is not None:
            amend_manifest(self.run_dir, network=net, limits=cg.describe())
        self.note_window(readings)
        parsed = parse_claude(out) if name == "claude-cli" else parse_codex(out)
        parsed["model"] = parsed["model"] or ran
        error = _error(Path(exe).name, rc, out, err, parsed, cfg)
        if limit := cgroups.note(cg.notes()):  # the finding says so, whatever else it says
            self.progress(limit)
            error, parsed["text"] = (f"{error} [{limit}]" if error else error), f"{parsed['text']}\n[{limit}]".strip()
        self.record(n, argv, model, parsed, out, error, time.monotonic() - started, which, net)
        step.result = self.redact(parsed["text"] or error or "(no output)")
        step.is_error, step.status = bool(error), "done"
        self.cp.update(n, step)
        self.turns, self.did_act = parsed["turns"], parsed["acted"]
        self.note_tools(n, step, parsed["tools"])
        if parsed["retries"]:
            self.progress(f"{name} retried its API {parsed['retries']} time(s)")
        if parsed["limit"] == "max_turns":
            return self.stopped(Limit(f"budget: max_steps {cfg['max_steps']} reached"), verb="Stopped")
        if parsed["limit"] == "max_budget":
            return self.stopped(Limit(f"budget: usd_per_run {budget.limits['usd_per_run']} reached"), verb="Stopped")
        if rc is None:
            return self.stopped(Limit(f"budget: run_timeout {cfg['run_timeout']} reached"), verb="Stopped")
        if error:
            return self.failure(self.classify(parsed, error))
        status, summary = split_status(self.redact(parsed["text"]))
        self.cp.add(FinalStep(status, summary))
        return self.outcome(status, summary)

    def note_window(self, readings: list) -> None:
        """Keep what the CLI said of its subscription's windows (``agent.window`` decides on it), in the
        store, the manifest and the progress."""
        if not readings:
            return
        said = "; ".join(f"{r.window} {r.used_percent:.3g}% used, resets {iso(r.resets_at)}" for r in readings)
        self.progress(f"{self.provider_name} window: {said}")
        try:
            windows.add(self.store, self.provider_name, self.run_id, readings, time.time())
        except StateError as e:  # a full state dir: the run goes on; the next run reads the window again
            self.progress(f"the window figures were not kept: {e}")
        if self.run_dir is not None:
            amend_manifest(self.run_dir, window=[r.to_dict() for r in readings])

    def not_run(self, why: str) -> Outcome:
        self.turns = 0
        r = f"{self.provider_name}: {why}"
        return self.outcome(statuses.BLOCKED, f"Not run: {r}.", r)

    def argv(self, workspace: Path, interrupted: bool, usd_left: float) -> tuple[list[str], str, str]:
        name, cfg, t = self.provider_name, self.cfg, self.task
        model = model_for(cfg, name)
        prompt = self.redact(render("cli.md", host=cfg.host, workspace=workspace, task_id=t.id, kind=t.kind,
                                    title=t.title, text=t.text, rules=self.rules_text(),
                                    context=self.context().strip() or "(none)",
                                    health=health_text(self.snapshot),
                                    resume_note=RESUME_NOTE if interrupted else ""))
        if name == "claude-cli":
            argv = ["claude", "-p", prompt, "--output-format", "stream-json", "--verbose",  # the tool calls too
                    "--max-turns", str(cfg["max_steps"]),
                    "--max-budget-usd", f"{int(usd_left * 100) / 100:.2f}",
                    "--permission-mode", "bypassPermissions"]
        else:
            exclude = sorted(set(CODEX_SHELL_EXCLUDE) | set(_key_names(cfg)))
            argv = ["codex", "exec", "--json", "--skip-git-repo-check", "--sandbox", "workspace-write",
                    "-C", str(workspace), "-c", "shell_environment_policy.ignore_default_excludes=false",
                    "-c", "shell_environment_policy.exclude=" + json.dumps(exclude), prompt]
        if model:
            argv[2:2] = ["--model", model]
        return argv, model, prompt

    def record(self, n: int, argv: list, model: str, parsed: dict, out: str, error: str | None,
               latency: float, which: str, net: dict) -> None:
        """The CLI's whole run as one exchange, charged to the budget; its model is the one the CLI says
        ran, else the one agentd named, else the CLI's default (said so)."""
        usage = parsed["usage"]
        ran = parsed.get("model") or model
        priced = ran or self.priced_model()
        cost = parsed["cost"] if parsed["cost"] is not None else cost_usd(self.cfg, priced, usage)
        tools = parsed["tools"]
        request = {"argv": argv, "sandbox": which, "network": net,
                   "tool_calls": {"calls": tools["calls"], "failed": tools["failed"]}}
        with self.store.tx():
            self.store.add_exchange(self.run_id, step=n, provider=self.provider_name,
                                    model=ran or f"(cli default: {priced})",
                                    request=self.redact(json.dumps(request, ensure_ascii=False)),
                                    response=self.redact(out[-OUTPUT_KEEP:]), input_tokens=usage.input,
                                    output_tokens=usage.output, cache_read_tokens=usage.cache_read,
                                    cache_write_tokens=usage.cache_write, cost_usd=cost, latency_s=latency,
                                    error=self.redact(error) if error else None)
            self.budget.charge(usage, cost)

    def priced_model(self) -> str:
        """The model a CLI used when agentd named none: codex's config.toml ``model``, else its default."""
        if self.provider_name == "codex-cli":
            src = clihome.codex_src(self.cfg.env) / "config.toml"
            try:
                named = clihome.toml_table(src.read_bytes()).get("model")
                if isinstance(named, str) and named:
                    return named
            except (OSError, ValueError):
                pass
        return CLI_DEFAULT_MODELS.get(self.provider_name, "")

    def classify(self, parsed: dict, error: str):
        return classify(self.provider_name, parsed, error, self.cfg.env.get("TZ"))


def classify(name: str, parsed: dict, error: str, tz: str | None = None):
    """The CLI's error as the provider error it amounts to (see ``AgentRun.failure``).

    claude says what happened in fields (``api_error_status``, ``api_error``); codex only in text.
    Out of credit or quota is a usage limit (blocked until a person acts, or until the reset it names).
    """
    exe = name.split("-")[0]
    status, kind = parsed.get("api_error_status"), parsed.get("api_error")
    text = f"{error} {parsed['text']}"
    short = error.strip().splitlines()[0][:300] if error.strip() else error
    if kind == "usage_limit_reached" or USAGE_LIMIT.search(text):
        when = reset_at(text, tz)
        if when is None:
            return UsageLimit(f"usage limit ({name}): {short} (no reset time given)")
        return UsageLimit(f"usage limit ({name}): {short}", reset_at=iso(when.timestamp()))
    if _QUOTA.search(text):
        return UsageLimit(f"usage limit ({name}): {short} (no reset time given)")
    if status in (401, 403) or (status is None and _AUTH.search(text)):
        return AuthFailed(f"auth: {exe} is not logged in or its key was refused ({short[:200]})")
    if status in (429, 529) or (status is None and _RATE.search(text)):
        return RateLimited(f"rate limited ({name}): {short[:200]}")
    return ProviderDown(f"provider down ({name}): {short}")


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _sandbox_note(policy, cfg, net: dict) -> str:
    hosts = f" ({', '.join(net['hosts'])})" if net.get("hosts") else ""
    network = f"network: {net['policy']}{hosts}, keys added outside by agentd's proxy"
    if policy.mode == "off":
        return f"sandbox: off (config `sandbox: off`), {network}"
    st = bwrap.status(cfg.env)
    return f"sandbox: bwrap {st.version or ''}".rstrip() + f", {network}"


def _inside_env(policy, env: dict, login, home, url: str, full: bool) -> dict[str, str]:
    """The CLI's environment: no key of agentd's (``env_for`` without ``keep_keys``), the run's placeholder,
    the proxy as its API base, and, without full network, the proxy as every tool's HTTP(S) proxy."""
    out = sandbox.env_for(policy, env)
    for k in PROXY_VARS + ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "CLAUDE_CONFIG_DIR", "CODEX_HOME"):
        out.pop(k, None)
    out.update(login.env)
    out.update(home.config_env())
    if policy.mode != "off":
        out["IS_SANDBOX"] = "1"  # claude: it runs in a sandbox (as root it bypasses permissions only then)
    if "ANTHROPIC_API_KEY" in login.env or "CLAUDE_CODE_OAUTH_TOKEN" in login.env or \
            "ANTHROPIC_AUTH_TOKEN" in login.env:
        out["ANTHROPIC_BASE_URL"] = url
    if not full:
        for k in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
            out[k] = out[k.lower()] = url
        out["NO_PROXY"] = out["no_proxy"] = "127.0.0.1,localhost,::1"
    return out


def _key_names(cfg) -> list[str]:
    """Key variables agentd knows of (its providers' and its env file's)."""
    names = set()
    for v in KEY_VARS.values():
        names.update([v] if isinstance(v, str) else list(v))
    try:
        names.update(read_env_file(cfg.config_dir / "env"))
    except Exception:  # noqa: BLE001 - an unreadable env file adds no names
        pass
    return sorted(n for n in names if isinstance(n, str) and n)


def _error(exe: str, rc: int | None, out: str, err: str, parsed: dict, cfg) -> str | None:
    if rc is None:
        return f"killed: {exe} ran past run_timeout {cfg['run_timeout']}"
    if parsed["error"]:
        return parsed["error"]
    if rc != 0 and not parsed["text"] and not parsed["limit"]:
        return f"{exe} exited with {rc}: {_first_line(err)}"
    return None


def _first_line(err: str) -> str:
    """The message of the CLI's stderr, without a stack trace after it."""
    for line in err.splitlines():
        line = line.strip()
        if line and not line.startswith(("at ", "    at ")):
            return line[:300]
    return "(no message)"


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run(argv, cwd, env, timeout) -> tuple[int | None, str, str]:
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, preexec_fn=_die_with_parent)
    except FileNotFoundError:
        return 127, "", f"{argv[0]} not found on PATH"
    out, err = io.BytesIO(), io.BytesIO()
    stopped = procs.pump(proc, {proc.stdout: out, proc.stderr: err}, wall=timeout, max_bytes=32 * 2**20)
    rc = None if stopped else proc.returncode
    return rc, out.getvalue().decode("utf-8", "replace"), err.getvalue().decode("utf-8", "replace")
