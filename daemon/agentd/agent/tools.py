"""The agent's tools: shell, read_file, write_file, record_metric, request_approval and finish.

Tools run in the workspace.  The shell runs inside the OS sandbox
(``sandbox.py``: bubblewrap; the root read-only, agentd's files and the usual
secrets hidden, no network unless granted, its own PID namespace) and fails
closed: without a usable sandbox, and without an explicit ``sandbox: off``, it
refuses to run.  It gets an environment without API keys
(``redact.scrubbed_env``), a timeout that kills its whole process group, and
an output cap; read_file and write_file refuse paths outside the workspace.
``record_metric`` keeps a number the agent says it measured, as a *claimed* metric (``claimed``: at most
``MAX_CLAIMED`` names a run, each name and value checked as a ``METRIC`` line's are); the wake's gates
decide on measured values only, unless the task says ``accept_claimed: true``.
A model's mistake (unknown tool, bad arguments, a failing command) comes back
as a ``ToolResult`` with ``is_error`` set, for the model to read; it never
raises.  ``finish`` and ``request_approval`` are handled by the agent loop, not here
(``approvals.py``).

The shell's network: none; with ``{network: true}`` (or ``sandbox: off``) the host's; with a list of
hosts (the task's ``{network: [...]}``, else the config's ``network:`` list, widened by approved
``network`` requests) each command runs under ``relay.py`` in its own empty network namespace, with
``HTTP(S)_PROXY`` pointing at the relay, which carries it to an egress-only ``proxy.Proxy`` outside
(``Egress``: no provider, no key; started at the first shell call that needs it, stopped by
``Tools.close``, by the Tools object's end, or with agentd's process: its threads are daemon threads).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import weakref
from pathlib import Path

from agentd.agent.approvals import check_args as approval_problem
from agentd.config import config
from agentd.errors import ConfigError
from agentd.escapes import safe
from agentd.metrics.extract import MAX_CLAIMED
from agentd.metrics.metric import CLAIMED, UNIT, Metric, name_problem, number, value_problem
from agentd.providers import ToolCall, ToolSpec
from agentd.recordtype import Record
from agentd.redact import scrubbed_env
from agentd.sandbox import cgroups, procs, proxy, relay, sandbox
from agentd.sandbox.egress import allowlist
from agentd.workspace.rundir import note_limits

PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")
OUTPUT_CAP = 16_000  # characters of shell output the model sees
SHELL_MAX_BYTES = 8 * 2**20  # a shell command printing more than this is stopped
READ_CAP = 64_000  # characters of a file read_file returns

SPECS = [
    ToolSpec("shell", "Run a shell command (/bin/sh -c) in the workspace. Returns its output and exit code.",
             {"type": "object", "properties": {"command": {"type": "string", "description": "the command"}},
              "required": ["command"]}),
    ToolSpec("read_file", "Read a text file inside the workspace.",
             {"type": "object", "properties": {"path": {"type": "string", "description": "path, relative to the workspace"}},
              "required": ["path"]}),
    ToolSpec("write_file", "Create or overwrite a text file inside the workspace.",
             {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
              "required": ["path", "content"]}),
    ToolSpec("record_metric", "Record a number you measured for this task (e.g. name tokens_per_s, value 41.2, "
             "unit tok/s), so it is kept with the run's series. It is kept as claimed: agentd's QC gates use "
             "the numbers agentd itself measured unless the task accepts claimed ones. Once per name "
             f"(again replaces it); at most {MAX_CLAIMED} names a run.",
             {"type": "object", "properties": {
                 "name": {"type": "string", "description": "a letter or _, then letters, digits, _ or ., at most 64"},
                 "value": {"type": "number", "description": "a finite number"},
                 "unit": {"type": "string", "description": "optional: s, MiB, tok/s, %, ..."}},
              "required": ["name", "value"]}),
    ToolSpec("request_approval", "Ask a person for what the sandbox denies: network access for your shell "
             "(kind network, what: the host names you need, separated by spaces, e.g. `pypi.org "
             "files.pythonhosted.org`, each with its subdomains; empty for the whole network), write access "
             "to a path outside the workspace (kind write, what: the absolute path), "
             "or one command run outside the sandbox (kind command, what: the command). The run pauses until a "
             "person answers in the worklog (it may take hours); then you get the answer and go on.",
             {"type": "object", "properties": {"kind": {"type": "string", "enum": ["network", "write", "command"]},
                                               "what": {"type": "string"}, "why": {"type": "string"}},
              "required": ["kind", "why"]}),
    ToolSpec("finish", "End the task. status: done (the task is complete), blocked (a human must act: say what), "
             "or failed (it cannot be done). summary: what you did and found, for the worklog.",
             {"type": "object", "properties": {"status": {"type": "string", "enum": ["done", "blocked", "failed"]},
                                               "summary": {"type": "string"}},
              "required": ["status", "summary"]}),
]
NAMES = [s.name for s in SPECS]


class ToolResult(Record):
    text: str
    is_error: bool = False


def check_args(call: ToolCall) -> str | None:
    """The model's mistake in this call, or None."""
    if call.error:
        return call.error
    spec = next((s for s in SPECS if s.name == call.name), None)
    if spec is None:
        return f"unknown tool {call.name!r}; the tools are {', '.join(NAMES)}"
    if call.name == "record_metric":
        return metric_problem(call.args)[1]
    for key in spec.parameters["required"]:
        if not isinstance(call.args.get(key), str):
            return f"{call.name}: argument {key!r} is required and must be a string"
    if call.name == "finish" and call.args["status"] not in ("done", "blocked", "failed"):
        return "finish: status must be done, blocked or failed"
    if call.name == "request_approval":
        return approval_problem(call.args)
    return None


def metric_problem(args: dict) -> tuple[Metric | None, str | None]:
    """A record_metric call's arguments as a claimed Metric, or (None, the model's mistake)."""
    name, value, unit = args.get("name"), args.get("value"), args.get("unit")
    why = name_problem(name)
    if why:
        return None, f"record_metric: {why}"
    if isinstance(value, str):  # "41.2" is taken; "fast", "nan" and "1e999" are not
        value, why = number(value.strip())
    else:
        why = value_problem(value)
    if why:
        return None, f"record_metric: {name}: the value {why}"
    if unit is not None and (not isinstance(unit, str) or (unit and not UNIT.fullmatch(unit))):
        return None, (f"record_metric: {name}: {str(unit)[:40]!r} is not a unit "
                      "(letters, digits, % / _ . * ^ -, at most 32)")
    return Metric(name, float(value), unit or "", CLAIMED), None


def claimed(steps) -> list[Metric]:
    """The metrics a run's record_metric calls kept (its ``ToolStep``s, so a resumed run keeps them too):
    one per name, the last call's value, the first ``MAX_CLAIMED`` names."""
    out: dict[str, Metric] = {}
    for s in steps:
        if s.name != "record_metric" or s.is_error or s.status != "done":
            continue
        m, _ = metric_problem(s.args)
        if m is not None and (m.name in out or len(out) < MAX_CLAIMED):
            out[m.name] = m
    return list(out.values())


class Egress:
    """The egress-only proxy of one run's shell: ``start()`` it (once), ``close()`` it (idempotent).
    Its unix socket lies alone in a fresh private dir under the temp dir (``agentd-egress-PID-*``; one
    left by a killed agentd is removed by the next), shown read-only inside the sandbox."""

    PREFIX = "agentd-egress-"

    def __init__(self, allow: tuple[str, ...], log=None):
        self.allow, self.log = allow, log
        self.dir: Path | None = None
        self.proxy = None
        self.refused: list[str] = []  # what it refused, kept when it is closed

    @property
    def sock(self) -> Path:
        return self.dir / "proxy.sock"

    def start(self) -> "Egress":
        if self.proxy is None:
            _remove_leftovers(Path(tempfile.gettempdir()), self.PREFIX)
            self.dir = Path(tempfile.mkdtemp(prefix=f"{self.PREFIX}{os.getpid()}-"))
            self.proxy = proxy.Proxy(self.sock, None, None, self.allow, log=self.log).__enter__()
            self.refused = self.proxy.refused
        return self

    def close(self) -> None:
        p, self.proxy = self.proxy, None
        if p is not None:
            p.__exit__(None, None, None)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def _remove_leftovers(tmp: Path, prefix: str) -> None:
    """Egress dirs whose agentd is gone (its pid, in the name, runs no more)."""
    for d in tmp.glob(prefix + "*"):
        pid = d.name[len(prefix):].split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(d, ignore_errors=True)


class Tools:
    """The tools of one run.  ``cfg`` and ``attrs`` (the task's ``network``/``gpu``) decide the
    shell's sandbox; without ``cfg`` the config is loaded from ``env``.  ``policy`` overrides both
    (``attrs`` still names the hosts a shell may reach).  ``close()`` (or the ``with`` block's end)
    stops the shell's egress proxy, if one was started."""

    def __init__(self, workspace: Path, env: dict | None = None, *, cfg=None, attrs: dict | None = None,
                 policy=None):
        self.workspace = Path(workspace)
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.root = self.workspace.resolve()
        self.env = scrubbed_env(env)
        self._source_env = env
        self._cfg, self._attrs, self._policy = cfg, attrs, policy
        self._refusal: str | None = None
        self.egress: Egress | None = None
        self._closer = None
        self.recorded: dict[str, Metric] = {}  # record_metric's, by name (seeded from a resumed run's steps)

    def __enter__(self) -> "Tools":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._closer is not None:
            self._closer()

    def allow(self) -> tuple[str, ...]:
        """The hosts the shell reaches through the egress proxy; ``()``: none, or the whole network."""
        policy = self.policy()
        if policy is None or policy.mode == "off" or policy.network:
            return ()
        if self._cfg is None:
            net = (self._attrs or {}).get("network")
            return tuple(net) if isinstance(net, list) else ()
        return allowlist(self._cfg, self._attrs) or ()

    def _egress(self) -> Egress:
        if self.egress is None or not self._closer.alive:  # (a closed Tools used again starts a new one)
            self.egress = Egress(self.allow())
            self._closer = weakref.finalize(self, self.egress.close)
        return self.egress.start()

    def policy(self):
        """The shell's sandbox policy, or None with ``self._refusal`` set (fail closed)."""
        if self._policy is None and self._refusal is None:
            cfg = self._cfg
            if cfg is None:
                try:
                    cfg = self._cfg = config.load(self._source_env)
                except ConfigError as e:
                    self._refusal = f"shell: refused: the config can't be read, so the sandbox is unknown ({e})"
                    return None
            self._policy = sandbox.policy_for(cfg, self._attrs, self.workspace)
        return self._policy

    def run(self, call: ToolCall, timeout: float) -> ToolResult:
        problem = check_args(call)
        if problem:
            return ToolResult(problem, True)
        try:
            if call.name == "shell":
                return self.shell(call.args["command"], timeout)
            if call.name == "read_file":
                return self.read_file(call.args["path"])
            if call.name == "write_file":
                return self.write_file(call.args["path"], call.args["content"])
            if call.name == "record_metric":
                return self.record_metric(call.args)
        except OSError as e:
            return ToolResult(f"{call.name}: {e.strerror or e}", True)
        except ValueError as e:  # a NUL byte in a command or path, a lone surrogate in content
            return ToolResult(f"{call.name}: {e}", True)
        return ToolResult(f"{call.name} is not run as a tool here", True)

    def _inside(self, path: str) -> Path | None:
        p = (self.workspace / path).resolve()
        return p if p == self.root or p.is_relative_to(self.root) else None

    def read_file(self, path: str) -> ToolResult:
        p = self._inside(path)
        if p is None:
            return ToolResult(f"read_file: {path} is outside the workspace {self.root}", True)
        data = p.read_bytes()
        text = data[:READ_CAP * 4].decode("utf-8", "replace")
        if len(text) > READ_CAP:
            text = text[:READ_CAP] + f"\n[... truncated: the file has {len(data)} bytes]"
        return ToolResult(text)

    def write_file(self, path: str, content: str) -> ToolResult:
        p = self._inside(path)
        if p is None:
            return ToolResult(f"write_file: {path} is outside the workspace {self.root}", True)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content, encoding="utf-8")
        return ToolResult(f"wrote {len(content.encode())} bytes to {p.relative_to(self.root)}")

    def record_metric(self, args: dict) -> ToolResult:
        m, why = metric_problem(args)
        if m is None:
            return ToolResult(why, True)
        if m.name not in self.recorded and len(self.recorded) >= MAX_CLAIMED:
            return ToolResult(f"record_metric: this run has recorded {MAX_CLAIMED} metrics, the most agentd keeps "
                              "for one run; record again one of those names to change its value", True)
        self.recorded[m.name] = m
        unit = f" {m.unit}" if m.unit else ""
        return ToolResult(f"recorded {m.name} = {m.value:.6g}{unit} (claimed: agentd's gates use what it measured "
                          "itself, unless the task accepts claimed values)")

    @property
    def run_id(self) -> str | None:
        return (self._cfg.env if self._cfg is not None else self._source_env or {}).get("AGENTD_RUN_ID")

    def _record_hits(self, cg) -> None:
        """A limit the shell hit goes to the run's manifest (``limits.hits``)."""
        if self._cfg is not None and self.run_id:
            note_limits(self._cfg.runs_dir / self.run_id, cg.describe())

    def shell(self, command: str, timeout: float) -> ToolResult:
        policy = self.policy()
        if policy is None:
            return ToolResult(self._refusal, True)
        argv, env = ["/bin/sh", "-c", command], sandbox.env_for(policy, self.env)
        egress = self._egress() if self.allow() else None
        if egress is not None:  # the relay inside, the proxy outside: only the allowed hosts
            port = 20000 + secrets.randbelow(40000)  # (the command's own network namespace: no clash)
            argv = relay.command(sandbox.python_inside(policy), egress.sock, port, argv)
            # its socket's dir, shown read-only (``programs``: dirs bound read-only where they are)
            policy = sandbox.Policy(**{**vars(policy), "programs": (*policy.programs, (egress.dir, egress.dir))})
            env = proxy_env(env, f"http://127.0.0.1:{port}")
            refused = len(egress.refused)
        try:
            argv = sandbox.wrap(argv, policy, self._cfg)
        except sandbox.Unavailable as e:
            return ToolResult(f"shell: refused: agentd runs commands only inside its sandbox, and {e} "
                              "(only an explicit `sandbox: off`, in the config or AGENTD_SANDBOX, runs them without it)", True)
        with cgroups.group(self._cfg, self.run_id) as cg:  # pids, memory and CPU weight (cgroups.py)
            rc, out, _, stopped = procs.run(cg.wrap(argv), cwd=self.workspace, env=env,
                                            timeout=max(timeout, 0.1), max_bytes=SHELL_MAX_BYTES, merge_stderr=True)
        note = f"[exit code {rc}]" if stopped is None else f"[killed: {stopped}]"
        if cg.notes():
            note += f"\n[{cgroups.note(cg.notes())}]"
            self._record_hits(cg)
        if egress is not None and len(egress.refused) > refused:
            note += (f"\n[agentd's proxy refused, not on this task's network allowlist "
                     f"({', '.join(egress.allow)}): {safe(', '.join(egress.refused[refused:refused + 5]))[:500]}]")
        text = cap(out.decode("utf-8", "replace"))
        return ToolResult(f"{text}\n{note}" if text else note, rc != 0)


def proxy_env(env: dict, url: str) -> dict[str, str]:
    """``env`` with every HTTP(S) proxy variable pointing at ``url`` (the relay) and loopback not proxied."""
    out = {k: v for k, v in env.items() if k not in PROXY_VARS and k.lower() != "no_proxy"}
    for k in PROXY_VARS:
        out[k] = url
    out["NO_PROXY"] = out["no_proxy"] = "127.0.0.1,localhost,::1"
    return out


def cap(text: str, limit: int = OUTPUT_CAP) -> str:
    """Keep the head and the tail of long output."""
    if len(text) <= limit:
        return text
    head, tail = limit // 4, limit - limit // 4
    return f"{text[:head]}\n[... {len(text) - limit} characters cut ...]\n{text[-tail:]}"
