"""Coding-agent CLIs as a runner: ``claude -p`` (claude-cli) and ``codex exec`` (codex-cli).

These run their own tool loop, so they replace the whole agent loop for a run:
one prompt in, one JSON result out (``cli_output``; the shapes agentd reads are in
docs/agent.md).  The CLI runs inside agentd's sandbox (``sandbox.py``: bwrap, with
the network for its own API and its own login dirs writable; claude is told so with
``IS_SANDBOX=1``, which it needs to bypass permissions as root), in its own session,
with stdin closed, the workspace as its working directory and ``run_timeout``
stopping its process group.  Without a usable sandbox the run is not started (fail
closed) unless the config says ``sandbox: off``.  bwrap's ``--die-with-parent`` (and
PR_SET_PDEATHSIG on the CLI itself) stop the CLI's whole tree when agentd is killed;
``procs.kill_orphan`` stops leftovers on the next wake.

Keys stay out of the CLI's tool environment where the CLI allows it: claude gets its
key or token through a pipe (``CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR``,
``CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR``), not the environment; codex's shells
get its ``shell_environment_policy`` with key-like names excluded, and codex runs
with a per-run ``CODEX_HOME`` (the user's config.toml copied, auth.json linked) that
is removed after the run, so its session files and shell snapshots don't stay.

``max_steps`` and what is left of ``usd_per_run`` are passed as the CLI's own caps
where it has them; claude refuses a budget under half a cent, so such a run is not
started.  The run is checkpointed as one tool step; if agentd dies while the CLI
runs, the resumed run starts the CLI again with a note to check the workspace first
(a CLI session can't be resumed from outside).  How it stopped maps to the outcome
as for the API agents (``agent.AgentRun.failure``); a usage limit carries the reset
time the CLI printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from agentd import bwrap, procs, sandbox, statuses
from agentd.agent import AgentRun, health_text
from agentd.checkpoints import FinalStep, ToolStep, UserStep
from agentd.errors import AuthFailed, ProviderDown, RateLimited, UsageLimit
from agentd.prompts import render
from agentd.providers import cost_usd, model_for
from agentd.runners.cli_output import USAGE_LIMIT, parse_claude, parse_codex, reset_at, split_status
from agentd.runners.job import Job, Outcome

_AUTH = re.compile(r"invalid api key|/login|not logged in|unauthori[sz]ed|authentication|\b401\b|\b403\b", re.I)
_RATE = re.compile(r"rate limit|too many requests|\b429\b|\b529\b|overloaded", re.I)
_QUOTA = re.compile(r"quota exceeded|insufficient_quota|billing details", re.I)
OUTPUT_KEEP = 200_000
MIN_CLAUDE_USD = 0.005  # claude's --max-budget-usd must be > 0, and agentd passes it with two decimals
# The models the CLIs use when agentd names none (claude-code 2.1.332, codex 0.171.0): for prices only.
CLI_DEFAULT_MODELS = {"claude-cli": "claude-opus-5-5", "codex-cli": "gpt-6.2-sol"}
# claude reads these from a file descriptor instead of the environment its tools inherit
CLAUDE_KEY_FDS = {"ANTHROPIC_API_KEY": "CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR",
                  "CLAUDE_CODE_OAUTH_TOKEN": "CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR"}
# codex: names its shells never see (its own defaults cover *KEY*, *SECRET*, *TOKEN*)
CODEX_SHELL_EXCLUDE = ("*KEY*", "*SECRET*", "*TOKEN*", "*PASSWORD*", "*CREDENTIAL*")
CODEX_HOME_FILES = ("config.toml", "AGENTS.md", "instructions.md")
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
        usd_left = budget.limits["usd_per_run"] - budget.usd
        if name == "claude-cli" and usd_left < MIN_CLAUDE_USD:
            return self.stopped(f"budget: usd_per_run {budget.limits['usd_per_run']} has ${max(usd_left, 0):.4f} "
                                f"left, under the ${MIN_CLAUDE_USD} claude can be given (--max-budget-usd)",
                                verb="Not started")
        workspace = Path(cfg.workspace)
        workspace.mkdir(parents=True, exist_ok=True)
        argv, model, prompt = self.argv(workspace, interrupted, usd_left)
        env = dict(cfg.env)
        exe = shutil.which(argv[0], path=env.get("PATH") or os.defpath)
        if exe is None:
            return self.not_run(f"{argv[0]} not found on PATH")
        argv[0] = exe
        codex_home = _CodexHome(cfg, self.run_id, env) if name == "codex-cli" else None
        try:
            policy = sandbox.policy_for(cfg, self.task.attrs, workspace, for_cli=name,
                                        writable=codex_home.writable() if codex_home else ())
            if name == "claude-cli" and policy.mode == "off" and _is_root():
                return self.not_run("as root claude bypasses permissions only inside a sandbox, and the config "
                                    "says `sandbox: off`; run agentd as a normal user or turn the sandbox on")
            try:
                wrapped = sandbox.wrap(argv, policy, cfg)
            except sandbox.Unavailable as e:
                return self.not_run(f"agentd runs CLI agents only inside its sandbox, and {e} (only an explicit "
                                    "`sandbox: off` in the config runs them without it)")
            if name == "codex-cli" and policy.mode != "off":
                # codex's own sandbox is bwrap too, which can't start inside agentd's (no capabilities,
                # no user namespaces): agentd's confines it instead
                wrapped[wrapped.index("workspace-write")] = "danger-full-access"
            env = sandbox.env_for(policy, env, keep_keys=True)
            if policy.mode != "off":
                env["IS_SANDBOX"] = "1"  # claude: it runs in a sandbox (as root it bypasses permissions only then)
            which = _sandbox_note(policy, cfg)
            if not self.cp.steps:
                self.cp.add(UserStep(prompt))
            step = ToolStep(f"cli-{self.cp.next_n}", name, {"argv": [self.redact(a) for a in argv],
                                                             "sandbox": which})
            n = self.cp.add(step)
            self.progress(f"step {n}: running {Path(exe).name} in {workspace} ({which})")
            started = time.monotonic()
            if codex_home:
                env["CODEX_HOME"] = str(codex_home.path)
            fds = _key_pipes(env) if name == "claude-cli" else []
            rc, out, err = _run(wrapped, workspace, env, max(1.0, budget.time_left()), fds)
        finally:
            if codex_home:
                codex_home.close()
        parsed = parse_claude(out) if name == "claude-cli" else parse_codex(out)
        error = _error(Path(exe).name, rc, out, err, parsed, cfg)
        self.record(n, argv, model, parsed, out, error, time.monotonic() - started, which)
        step.result = self.redact(parsed["text"] or error or "(no output)")
        step.is_error, step.status = bool(error), "done"
        self.cp.update(n, step)
        self.turns, self.did_act = parsed["turns"], parsed["acted"]
        if parsed["retries"]:
            self.progress(f"{name} retried its API {parsed['retries']} time(s)")
        if parsed["limit"] == "max_turns":
            return self.stopped(f"budget: max_steps {cfg['max_steps']} reached", verb="Stopped")
        if parsed["limit"] == "max_budget":
            return self.stopped(f"budget: usd_per_run {budget.limits['usd_per_run']} reached", verb="Stopped")
        if rc is None:
            return self.stopped(f"budget: run_timeout {cfg['run_timeout']} reached", verb="Stopped")
        if error:
            return self.failure(self.classify(parsed, error))
        status, summary = split_status(self.redact(parsed["text"]))
        self.cp.add(FinalStep(status, summary))
        return self.outcome(status, summary)

    def not_run(self, why: str) -> Outcome:
        self.turns = 0
        r = f"{self.provider_name}: {why}"
        return self.outcome(statuses.BLOCKED, f"Not run: {r}.", r)

    def argv(self, workspace: Path, interrupted: bool, usd_left: float) -> tuple[list[str], str, str]:
        name, cfg, t = self.provider_name, self.cfg, self.task
        model = model_for(cfg, name)
        prompt = self.redact(render("cli.md", host=cfg.host, workspace=workspace, task_id=t.id, kind=t.kind,
                                    title=t.title, text=t.text, context=self.context().strip() or "(none)",
                                    health=health_text(self.snapshot),
                                    resume_note=RESUME_NOTE if interrupted else ""))
        if name == "claude-cli":
            argv = ["claude", "-p", prompt, "--output-format", "json", "--max-turns", str(cfg["max_steps"]),
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
               latency: float, which: str) -> None:
        """The CLI's whole run as one exchange, charged to the budget."""
        usage = parsed["usage"]
        priced = model or self.priced_model()
        cost = parsed["cost"] if parsed["cost"] is not None else cost_usd(self.cfg, priced, usage)
        request = {"argv": argv, "sandbox": which}
        with self.store.tx():
            self.store.add_exchange(self.run_id, step=n, provider=self.provider_name,
                                    model=model or f"(cli default: {priced})",
                                    request=self.redact(json.dumps(request, ensure_ascii=False)),
                                    response=self.redact(out[-OUTPUT_KEEP:]), input_tokens=usage.input,
                                    output_tokens=usage.output, cache_read_tokens=usage.cache_read,
                                    cache_write_tokens=usage.cache_write, cost_usd=cost, latency_s=latency,
                                    error=self.redact(error) if error else None)
            self.budget.charge(usage, cost)

    def priced_model(self) -> str:
        """The model a CLI used when agentd named none: codex's config.toml ``model``, else its default."""
        if self.provider_name == "codex-cli":
            src = _codex_src(self.cfg.env) / "config.toml"
            try:
                import tomllib

                named = tomllib.loads(src.read_text()).get("model")
                if isinstance(named, str) and named:
                    return named
            except (OSError, ValueError):
                pass
        return CLI_DEFAULT_MODELS.get(self.provider_name, "")

    def classify(self, parsed: dict, error: str):
        """The CLI's error as the provider error it amounts to (see ``AgentRun.failure``).

        claude says what happened in fields (``api_error_status``, ``api_error``); codex only in text.
        """
        name, exe = self.provider_name, self.provider_name.split("-")[0]
        status, kind = parsed.get("api_error_status"), parsed.get("api_error")
        text = f"{error} {parsed['text']}"
        short = error.strip().splitlines()[0][:300] if error.strip() else error
        if kind == "usage_limit_reached" or USAGE_LIMIT.search(text):
            when = reset_at(text, self.cfg.env.get("TZ"))
            if when is None:
                return UsageLimit(f"usage limit ({name}): {short} (no reset time given)")
            from agentd.times import iso

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


def _sandbox_note(policy, cfg) -> str:
    if policy.mode == "off":
        return "sandbox: off (config `sandbox: off`)"
    st = bwrap.status(cfg.env)
    return f"sandbox: bwrap {st.version or ''}".rstrip() + ", network on for its API"


def _key_names(cfg) -> list[str]:
    """Key variables agentd knows of (its providers' and its env file's)."""
    names = set()
    from agentd.backends import KEY_VARS

    for v in KEY_VARS.values():
        names.update([v] if isinstance(v, str) else list(v))
    try:
        from agentd.config import read_env_file

        names.update(read_env_file(cfg.config_dir / "env"))
    except Exception:  # noqa: BLE001 - an unreadable env file adds no names
        pass
    return sorted(n for n in names if isinstance(n, str) and n)


def _key_pipes(env: dict) -> list[int]:
    """Move claude's key and token out of ``env`` into pipes it reads once (their read ends, to pass on)."""
    fds = []
    for var, fd_var in CLAUDE_KEY_FDS.items():
        value = env.get(var)
        if not value or fd_var in env:
            continue
        r, w = os.pipe()
        try:
            os.write(w, value.encode())
        finally:
            os.close(w)
        del env[var]
        env[fd_var] = str(r)
        fds.append(r)
    return fds


def _codex_src(env: dict) -> Path:
    if env.get("CODEX_HOME"):
        return Path(env["CODEX_HOME"])
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".codex"


class _CodexHome:
    """A per-run CODEX_HOME: the user's config copied, auth.json linked, removed after the run (and, left
    by a killed wake, at the start of the next codex run of this agentd)."""

    def __init__(self, cfg, run_id: str, env: dict):
        self.src = _codex_src(env)
        tag = hashlib.sha256(str(cfg.state_dir).encode()).hexdigest()[:10]
        base = Path(tempfile.gettempdir())
        prefix = f"agentd-codex-{tag}-"
        for old in base.glob(prefix + "*"):  # one wake at a time: these are leftovers
            shutil.rmtree(old, ignore_errors=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:40]
        self.path = Path(tempfile.mkdtemp(prefix=f"{prefix}{safe}-", dir=base))
        for f in CODEX_HOME_FILES:
            if (self.src / f).is_file():
                shutil.copyfile(self.src / f, self.path / f)
        self.auth = self.src / "auth.json"
        if self.auth.is_file():
            (self.path / "auth.json").symlink_to(self.auth.resolve())

    def writable(self) -> list[Path]:
        out = [self.path]
        if self.auth.is_file():
            out.append(self.auth.resolve().parent)
        return out

    def close(self) -> None:
        mine = self.path / "auth.json"
        if mine.is_file() and not mine.is_symlink():  # codex replaced the link: keep its refreshed login
            try:
                tmp = self.src / ".auth.json.agentd"
                shutil.copyfile(mine, tmp)
                os.chmod(tmp, 0o600)
                os.replace(tmp, self.auth)
            except OSError:
                pass
        shutil.rmtree(self.path, ignore_errors=True)


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
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run(argv, cwd, env, timeout, fds=()) -> tuple[int | None, str, str]:
    import io

    try:
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True, pass_fds=tuple(fds),
                                    preexec_fn=_die_with_parent)
        finally:
            for fd in fds:
                os.close(fd)
    except FileNotFoundError:
        return 127, "", f"{argv[0]} not found on PATH"
    out, err = io.BytesIO(), io.BytesIO()
    stopped = procs.pump(proc, {proc.stdout: out, proc.stderr: err}, wall=timeout, max_bytes=32 * 2**20)
    rc = None if stopped else proc.returncode
    return rc, out.getvalue().decode("utf-8", "replace"), err.getvalue().decode("utf-8", "replace")
