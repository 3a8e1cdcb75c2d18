"""The agent's tools: shell, read_file, write_file, request_approval and finish.

Tools run in the workspace.  The shell runs inside the OS sandbox
(``sandbox.py``: bubblewrap; the root read-only, agentd's files and the usual
secrets hidden, no network unless granted, its own PID namespace) and fails
closed: without a usable sandbox, and without an explicit ``sandbox: off``, it
refuses to run.  It gets an environment without API keys
(``redact.scrubbed_env``), a timeout that kills its whole process group, and
an output cap; read_file and write_file refuse paths outside the workspace.
A model's mistake (unknown tool, bad arguments, a failing command) comes back
as a ``ToolResult`` with ``is_error`` set, for the model to read; it never
raises.  ``finish`` and ``request_approval`` are handled by the agent loop, not here
(``approvals.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agentd import procs
from agentd.providers import ToolCall, ToolSpec
from agentd.redact import scrubbed_env

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
    ToolSpec("request_approval", "Ask a person for what the sandbox denies: network access for your shell "
             "(kind network), write access to a path outside the workspace (kind write, what: the absolute path), "
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


@dataclass
class ToolResult:
    text: str
    is_error: bool = False


def check_args(call: ToolCall) -> str | None:
    """The model's mistake in this call, or None."""
    if call.error:
        return call.error
    spec = next((s for s in SPECS if s.name == call.name), None)
    if spec is None:
        return f"unknown tool {call.name!r}; the tools are {', '.join(NAMES)}"
    for key in spec.parameters["required"]:
        if not isinstance(call.args.get(key), str):
            return f"{call.name}: argument {key!r} is required and must be a string"
    if call.name == "finish" and call.args["status"] not in ("done", "blocked", "failed"):
        return "finish: status must be done, blocked or failed"
    if call.name == "request_approval":
        from agentd.approvals import check_args as approval_problem

        return approval_problem(call.args)
    return None


class Tools:
    """The tools of one run.  ``cfg`` and ``attrs`` (the task's ``network``/``gpu``) decide the
    shell's sandbox; without ``cfg`` the config is loaded from ``env``.  ``policy`` overrides both."""

    def __init__(self, workspace: Path, env: dict | None = None, *, cfg=None, attrs: dict | None = None,
                 policy=None):
        self.workspace = Path(workspace)
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.root = self.workspace.resolve()
        self.env = scrubbed_env(env)
        self._source_env = env
        self._cfg, self._attrs, self._policy = cfg, attrs, policy
        self._refusal: str | None = None

    def policy(self):
        """The shell's sandbox policy, or None with ``self._refusal`` set (fail closed)."""
        if self._policy is None and self._refusal is None:
            from agentd import sandbox

            cfg = self._cfg
            if cfg is None:
                from agentd import config
                from agentd.errors import ConfigError

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

    def shell(self, command: str, timeout: float) -> ToolResult:
        from agentd import sandbox

        policy = self.policy()
        if policy is None:
            return ToolResult(self._refusal, True)
        try:
            argv = sandbox.wrap(["/bin/sh", "-c", command], policy, self._cfg)
        except sandbox.Unavailable as e:
            return ToolResult(f"shell: refused: agentd runs commands only inside its sandbox, and {e} "
                              "(only an explicit `sandbox: off` in the config runs them without it)", True)
        rc, out, _, stopped = procs.run(argv, cwd=self.workspace, env=sandbox.env_for(policy, self.env),
                                        timeout=max(timeout, 0.1), max_bytes=SHELL_MAX_BYTES, merge_stderr=True)
        note = f"[exit code {rc}]" if stopped is None else f"[killed: {stopped}]"
        text = cap(out.decode("utf-8", "replace"))
        return ToolResult(f"{text}\n{note}" if text else note, rc != 0)


def cap(text: str, limit: int = OUTPUT_CAP) -> str:
    """Keep the head and the tail of long output."""
    if len(text) <= limit:
        return text
    head, tail = limit // 4, limit - limit // 4
    return f"{text[:head]}\n[... {len(text) - limit} characters cut ...]\n{text[-tail:]}"
