"""A CLI agent's login dir for one run, and the login agentd keeps outside for it.

Each claude-cli / codex-cli run gets a fresh private dir (``RunHome``) under the temp dir, bound
writable into the sandbox and removed after the run (and, left by a killed wake, at the start of the
next CLI run of this agentd).  In it:

- ``home/``: the CLI's config dir (claude: ``CLAUDE_CONFIG_DIR``; codex: ``CODEX_HOME``).  What is
  copied in is the person's instructions only (``CLAUDE.md``; ``AGENTS.md``), each a regular file
  opened with ``O_NOFOLLOW``, at most ``MAX_COPY`` bytes.  Settings, hooks, MCP servers, commands,
  ``config.toml`` and every credential file stay out: they may hold keys (``env``, ``apiKeyHelper``,
  ``http_headers``) or start programs.  codex gets a ``config.toml`` agentd writes: the proxy as its
  only model provider, and the person's ``model`` if their config.toml names one.
- ``proxy.sock``: the unix socket of the run's ``proxy.Proxy``.

Both dirs are made 0700 (whatever the umask) before the sandbox starts; the sandbox binds the run
dir writable.  Checked with the pinned claude (2.1.332) under bwrap with a read-only, empty HOME
and ``CLAUDE_CONFIG_DIR`` set: it writes only there, never ``~/.claude``, and its Bash calls work.

Nothing is ever copied back out.  The person's own ``~/.claude``, ``~/.claude.json`` and ``~/.codex``
are hidden in every sandbox (``sandbox.CLI_OWN``).

``login_for`` reads the real key outside (agentd's environment and env file; claude's
``.credentials.json`` OAuth token; codex's config.toml provider and ``auth.json`` API key) and gives
the proxy's upstream plus what the CLI inside gets instead: a placeholder and the proxy's address.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from agentd.sandbox.proxy import Upstream, placeholder

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser from PyPI (pyproject's dependency for 3.10 only)
    import tomli as tomllib

MAX_COPY = 256 * 1024
COPIED = {"claude-cli": ("CLAUDE.md",), "codex-cli": ("AGENTS.md",)}
ANTHROPIC_BASE = "https://api.anthropic.com"
OPENAI_BASE = "https://api.openai.com/v1"
PROXY_KEY_VAR = "AGENTD_PROXY_KEY"  # codex's env_key for the proxy provider: a placeholder


def claude_src(env: dict) -> Path:
    if env.get("CLAUDE_CONFIG_DIR"):
        return Path(env["CLAUDE_CONFIG_DIR"])
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".claude"


def codex_src(env: dict) -> Path:
    if env.get("CODEX_HOME"):
        return Path(env["CODEX_HOME"])
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".codex"


def read_bounded(path: Path, limit: int = MAX_COPY) -> bytes | None:
    """A regular file's bytes, never through a link, at most ``limit`` of them; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        data = os.read(fd, limit + 1)
        return data if len(data) <= limit else None
    finally:
        os.close(fd)


class Login:
    """The real credential's way out (``upstream``), and the run token the CLI inside holds instead."""

    def __init__(self, upstream: Upstream, token: str, env: dict[str, str], model: str | None = None):
        self.upstream, self.token, self.env, self.model = upstream, token, env, model


def login_for(cli: str, env: dict) -> Login:
    """With no key or login found, the proxy adds none: the provider refuses the CLI, which says so."""
    if cli == "claude-cli":
        base = env.get("ANTHROPIC_BASE_URL") or ANTHROPIC_BASE
        if env.get("ANTHROPIC_API_KEY"):
            token = placeholder(env["ANTHROPIC_API_KEY"], "sk-ant-api03-")
            return Login(Upstream(base, {"x-api-key": env["ANTHROPIC_API_KEY"]}), token, {"ANTHROPIC_API_KEY": token})
        for var in ("CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"):
            if env.get(var):
                token = placeholder(env[var], "sk-ant-oat01-")
                return Login(Upstream(base, {"authorization": f"Bearer {env[var]}"}), token, {var: token})
        creds = read_bounded(claude_src(env) / ".credentials.json")
        access = _json_get(creds, "claudeAiOauth", "accessToken")
        if access:
            token = placeholder(access, "sk-ant-oat01-")
            return Login(Upstream(base, {"authorization": f"Bearer {access}"}), token,
                         {"CLAUDE_CODE_OAUTH_TOKEN": token})
        token = placeholder("", "sk-ant-api03-")  # no login: the provider refuses it, and the run says so
        return Login(Upstream(base, {}), token, {"ANTHROPIC_API_KEY": token})
    src = codex_src(env)
    conf = toml_table(read_bounded(src / "config.toml"))
    model = conf.get("model") if isinstance(conf.get("model"), str) else None
    name = conf.get("model_provider")
    prov = (conf.get("model_providers") or {}).get(name) if isinstance(name, str) else None
    if isinstance(prov, dict) and isinstance(prov.get("base_url"), str):
        base, key_var = prov["base_url"], prov.get("env_key") or "OPENAI_API_KEY"
    else:
        base, key_var = env.get("OPENAI_BASE_URL") or OPENAI_BASE, "OPENAI_API_KEY"
    key = env.get(key_var) if isinstance(key_var, str) else None
    if not key:
        key = _json_get(read_bounded(src / "auth.json"), "OPENAI_API_KEY")
    token = placeholder(key or "", "sk-proj-")  # no key (a ChatGPT login is not passed on): the provider refuses
    return Login(Upstream(base, {"authorization": f"Bearer {key}"} if key else {}), token, {PROXY_KEY_VAR: token},
                 model)


def _json_get(data: bytes | None, *keys):
    try:
        v = json.loads(data) if data else None
    except ValueError:
        return None
    for k in keys:
        v = v.get(k) if isinstance(v, dict) else None
    return v if isinstance(v, str) and v else None


def toml_table(data: bytes | None) -> dict:
    """A TOML file's top table, {} when empty or not TOML: tomllib, or on Python 3.10 the same parser
    from PyPI as tomli (pyproject's dependency for 3.10 only)."""
    if not data:
        return {}
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {}


def _prefix(cfg) -> str:
    return f"agentd-cli-{hashlib.sha256(str(cfg.state_dir).encode()).hexdigest()[:10]}-"


def leftovers(cfg) -> list[Path]:
    """This agentd's per-run dirs that are there now (one wake at a time: outside a run, a killed one's)."""
    return sorted(Path(tempfile.gettempdir()).glob(_prefix(cfg) + "*"))


class RunHome:
    """``with RunHome(cfg, run_id, cli) as rh:`` a fresh private dir, removed when the block ends."""

    def __init__(self, cfg, run_id: str, cli: str):
        self.cli, self.env = cli, cfg.env
        for old in leftovers(cfg):
            shutil.rmtree(old, ignore_errors=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:24]
        self.path = Path(tempfile.mkdtemp(prefix=f"{_prefix(cfg)}{safe}-", dir=tempfile.gettempdir()))
        os.chmod(self.path, 0o700)  # whatever the umask took: the CLI writes here inside the sandbox
        self.home = self.path / "home"
        self.sock = self.path / "proxy.sock"

    def __enter__(self) -> "RunHome":
        self.home.mkdir(mode=0o700)
        os.chmod(self.home, 0o700)  # a umask (a unit's UMask=) must not leave it unwritable inside
        src = claude_src(self.env) if self.cli == "claude-cli" else codex_src(self.env)
        for name in COPIED[self.cli]:
            data = read_bounded(src / name)
            if data is not None:
                (self.home / name).write_bytes(data)
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def config_env(self) -> dict[str, str]:
        return {"CLAUDE_CONFIG_DIR" if self.cli == "claude-cli" else "CODEX_HOME": str(self.home)}

    def write_codex_config(self, proxy_url: str, model: str | None) -> None:
        lines = [f"model = {json.dumps(model)}"] if model else []
        lines += ['model_provider = "agentd"', "", "[model_providers.agentd]", 'name = "agentd proxy"',
                  f"base_url = {json.dumps(proxy_url)}", f'env_key = "{PROXY_KEY_VAR}"', 'wire_api = "responses"']
        (self.home / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
