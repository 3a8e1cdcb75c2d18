"""The real ``claude`` and ``codex`` CLIs (pinned in tests/agent_clis/package.json), run headless against
tests/fake_llm.py.  Shared by tests/runners/test_cli_contract.py and tests/captures/capture.py.

Claude Code: ``ANTHROPIC_BASE_URL`` points at the fake, telemetry, autoupdate and other traffic off.
It streams ``POST /v1/messages?beta=true``.  An ``ANTHROPIC_API_KEY`` makes it an API-billed user;
``CLAUDE_CODE_OAUTH_TOKEN`` (no API key) makes it a subscriber, and only then does a 429 carrying
``anthropic-ratelimit-unified-*`` headers print "You've hit your 5-hour limit · resets …".
As root it refuses to bypass permissions unless ``IS_SANDBOX=1``.

Codex: a throwaway ``CODEX_HOME`` whose config.toml has a ``model_providers`` entry with
``wire_api = "responses"``; it streams ``POST /v1/responses``.  Its shell sandbox (bwrap plus a
helper binary) is not set up when CODEX_HOME lies under the temp dir, so ``TMPDIR`` is pointed
elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

CLI_DIR = Path(__file__).resolve().parent / "agent_clis"
BIN = CLI_DIR / "node_modules" / ".bin"
CLAUDE = BIN / "claude"
CODEX = BIN / "codex"
API_KEY = "sk-ant-api03-contract-test-key-0000000000"
OAUTH_TOKEN = "sk-ant-oat01-contract-test-token-0000000000"
OPENAI_KEY = "sk-proj-contract-test-key-0000000000"
# An older claude, not pinned (CI does not install it): `npm install --prefix /tmp/claude-old
# @anthropic-ai/claude-code@2.1.197`, or AGENTD_OLD_CLAUDE_BIN=<its node_modules/.bin>.
OLD_CLAUDE_VERSION = "2.1.197"
OLD_CLAUDE_BIN = Path("/tmp/claude-old/node_modules/.bin")


def pinned() -> dict[str, str]:
    return json.loads((CLI_DIR / "package.json").read_text())["dependencies"]


def installed_version(package: str) -> str | None:
    try:
        return json.loads((CLI_DIR / "node_modules" / package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def missing(name: str) -> str | None:
    """Why the real CLI can't be run here, or None when it can."""
    package = {"claude": "@anthropic-ai/claude-code", "codex": "@openai/codex"}[name]
    binary = BIN / name
    if not binary.exists():
        how = "npm is not installed" if not shutil.which("npm") else "run `make cli-deps`"
        return f"the real {name} CLI is not installed in {BIN} ({how}; CI installs it)"
    want, have = pinned()[package], installed_version(package)
    if have != want:
        return f"{package} {have} is installed but tests/agent_clis/package.json pins {want}: run `make cli-deps`"
    return None


def old_claude_bin() -> Path:
    return Path(os.environ.get("AGENTD_OLD_CLAUDE_BIN") or OLD_CLAUDE_BIN)


def old_claude_missing() -> str | None:
    """Why the older claude (``OLD_CLAUDE_VERSION``) can't be run here, or None when it can."""
    binary = old_claude_bin() / "claude"
    how = (f"`npm install --prefix /tmp/claude-old @anthropic-ai/claude-code@{OLD_CLAUDE_VERSION}`, or point "
           "AGENTD_OLD_CLAUDE_BIN at its node_modules/.bin; it is not in tests/agent_clis/package.json, so CI skips this")
    if not binary.exists():
        return f"claude {OLD_CLAUDE_VERSION} is not installed at {binary} ({how})"
    try:
        have = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60).stdout.split()
    except (OSError, subprocess.SubprocessError) as e:
        return f"{binary} --version failed: {e}"
    if not have or have[0] != OLD_CLAUDE_VERSION:
        return f"{binary} is claude {' '.join(have) or '(unknown)'}, not {OLD_CLAUDE_VERSION} ({how})"
    return None


def claude_env(fake_url: str, home: Path, *, oauth: bool = False, sandbox: bool = True, bin_dir: Path = BIN,
               **extra) -> dict:
    """Environment for a headless ``claude -p`` against the fake at ``fake_url`` (``bin_dir`` first on PATH)."""
    home.mkdir(parents=True, exist_ok=True)
    env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "TZ": "UTC", "LANG": "C.UTF-8",
           "ANTHROPIC_BASE_URL": fake_url, "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
           "DISABLE_ERROR_REPORTING": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
           # 2.1.x retries 401s and 5xx about ten times with backoff (minutes); two keeps a test short
           "CLAUDE_CODE_MAX_RETRIES": "2"}
    if oauth:
        env["CLAUDE_CODE_OAUTH_TOKEN"] = OAUTH_TOKEN
    else:
        env["ANTHROPIC_API_KEY"] = API_KEY
    if sandbox:
        env["IS_SANDBOX"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def codex_env(fake_url: str, home: Path, **extra) -> dict:
    """Environment (and a throwaway CODEX_HOME) for a headless ``codex exec`` against the fake."""
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(
        'model_provider = "fake"\n\n'
        "[model_providers.fake]\n"
        'name = "fake"\n'
        f'base_url = "{fake_url}/v1"\n'
        'env_key = "FAKE_OPENAI_API_KEY"\n'
        'wire_api = "responses"\n')
    tmp = home.parent / (home.name + "-tmp")  # not above CODEX_HOME, or codex skips its sandbox helper
    tmp.mkdir(parents=True, exist_ok=True)
    env = {"PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "CODEX_HOME": str(codex_home),
           "TMPDIR": str(tmp), "TZ": "UTC", "LANG": "C.UTF-8", "FAKE_OPENAI_API_KEY": OPENAI_KEY}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def claude_argv(prompt: str, *, max_turns: int = 30, budget: str | None = "2.00", fmt: str = "json",
                extra=(), binary: Path = CLAUDE) -> list[str]:
    """``claude -p`` with ``--output-format json``, or ``fmt='stream-json'`` (what
    daemon/agentd/runners/cli_agent.py runs: it reads the tool calls from the stream)."""
    argv = [str(binary), "-p", prompt, "--output-format", fmt]
    if fmt == "stream-json":
        argv.append("--verbose")
    argv += ["--max-turns", str(max_turns)]
    if budget is not None:
        argv += ["--max-budget-usd", budget]
    return argv + ["--permission-mode", "bypassPermissions", *extra]


def codex_argv(prompt: str, workspace: Path, extra=()) -> list[str]:
    """What daemon/agentd/providers/cli.py runs."""
    return [str(CODEX), "exec", "--json", "--skip-git-repo-check", "--sandbox", "workspace-write",
            "-C", str(workspace), *extra, prompt]


def run(argv, env: dict, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def events(stdout: str) -> list[dict]:
    """JSON lines of stdout (codex --json, claude stream-json); a line that is not JSON fails."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def unified_limit_headers(reset_epoch: int, claim: str = "five_hour") -> dict:
    """Headers of a subscriber's 429 that make claude print its usage-limit text."""
    return {"anthropic-ratelimit-unified-status": "rejected", "anthropic-ratelimit-unified-reset": str(reset_epoch),
            "anthropic-ratelimit-unified-representative-claim": claim, "retry-after": "3600"}


def claude_window_headers(reset_epoch: int, five_hour: float = 0.8, seven_day: float = 0.3) -> dict:
    """Headers of a subscriber's ordinary reply that say how much of each window is used (0-1), which
    claude 2.1.332 reports as a ``rate_limit_event`` line in stream-json (only on a subscription login)."""
    status = "allowed_warning" if five_hour >= 0.75 else "allowed"
    h = {"anthropic-ratelimit-unified-status": status, "anthropic-ratelimit-unified-reset": str(reset_epoch),
         "anthropic-ratelimit-unified-representative-claim": "five_hour",
         "anthropic-ratelimit-unified-5h-utilization": str(five_hour),
         "anthropic-ratelimit-unified-5h-reset": str(reset_epoch), "anthropic-ratelimit-unified-5h-status": status,
         "anthropic-ratelimit-unified-7d-utilization": str(seven_day),
         "anthropic-ratelimit-unified-7d-reset": str(reset_epoch + 3 * 86400),
         "anthropic-ratelimit-unified-7d-status": "allowed"}
    if status == "allowed_warning":
        h["anthropic-ratelimit-unified-5h-surpassed-threshold"] = "0.75"
    return h


def codex_window_headers(reset_epoch: int, primary: float = 80.0, secondary: float = 30.0) -> dict:
    """Headers of an ordinary reply that say how much of each window is used (percent), which codex
    0.171.0 writes to its session file as ``rate_limits`` (``codex exec --json`` prints none)."""
    return {"x-codex-primary-used-percent": str(primary), "x-codex-primary-window-minutes": "300",
            "x-codex-primary-reset-at": str(reset_epoch), "x-codex-secondary-used-percent": str(secondary),
            "x-codex-secondary-window-minutes": "10080", "x-codex-secondary-reset-at": str(reset_epoch + 3 * 86400)}


def codex_usage_limit_body(reset_epoch: int, plan_type: str | None = "plus") -> dict:
    """The 429 body that makes codex print "You've hit your usage limit … try again at …"."""
    err = {"type": "usage_limit_reached", "message": "The usage limit has been reached", "resets_at": reset_epoch}
    if plan_type:
        err["plan_type"] = plan_type
    return {"error": err}


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
