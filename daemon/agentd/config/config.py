"""Settings and paths: the one place state locations come from.

Order of precedence, lowest first: built-in defaults, the config file
(``$XDG_CONFIG_HOME/agentd/config.yaml`` or ``$AGENTD_CONFIG``), then one
``AGENTD_<KEY>`` environment variable per top-level key.  Everything goes
through the schema in ``CONFIG_FIELDS``; every problem is reported at once.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from agentd.config.schema import Field, in_line_order, validate
from agentd.config.schema import parse_duration
from agentd.config.worklogdir import WORKLOG_SUFFIX
from agentd.config.yamlread import read_yaml_file, yaml_scalar
from agentd.errors import ConfigError
from agentd.lazyre import lazy
from agentd.recordtype import Factory, Record

PROVIDERS = ("auto", "anthropic", "openai", "none", "claude-cli", "codex-cli")

BUDGET_FIELDS = {
    "tokens_per_run": Field("int", 400_000, "input+output tokens one run may use", lo=1),
    "usd_per_run": Field("float", 2.0, "dollars one run may spend", lo=0),
    "tokens_per_day": Field("int", 4_000_000, "tokens all runs of one UTC day may use", lo=1),
    "usd_per_day": Field("float", 10.0, "dollars all runs of one UTC day may spend", lo=0),
}

WINDOW_FIELDS = {
    "max_percent": Field("float", 75.0, "most of a subscription window's use (percent) at which a CLI agent task "
                         "may still start", lo=0, hi=100),
    "reserve_percent": Field("float", 10.0, "share of each window (percent) always left to the person", lo=0, hi=100),
}

MODELS_FIELDS = {p: Field("str", None, f"model for {p} (default: agentd's)")
                 for p in PROVIDERS if p not in ("auto", "none")}

REVIEW_FIELDS = {
    "enabled": Field("bool", False, "have a second model review a run before it is recorded done"),
    "provider": Field("enum", None, "provider of the reviewer (default: the run's provider)", choices=PROVIDERS),
    "model": Field("str", None, "model of the reviewer"),
}

FLEET_FIELDS = {
    "timeout": Field("duration", "30s", "longest one git fetch or push with the fleet's remote may take; past it the "
                     "wake goes on and the next one retries (docs/fleet.md)"),
}

CONFIG_FIELDS: dict[str, Field] = {
    "worklog_dir": Field("path", "~/agentd", "directory holding <host>_worklog.txt"),
    "workspace": Field("path", None, "parent of each agent task's own workspace, <workspace>/<task id>, and of "
                       "{repo:} tasks' worktrees (default: <state_dir>/workspace, created)"),
    "tasks_dir": Field("path", None, "extra YAML task files (default: <worklog_dir>/tasks)"),
    "state_dir": Field("path", None, "state: store, index, run dirs (default: $XDG_STATE_HOME/agentd)"),
    "provider": Field("enum", "auto", "LLM backend for agent tasks", choices=PROVIDERS),
    "fallback_provider": Field("enum", None, "takes over when the provider is overloaded", choices=PROVIDERS),
    "model": Field("str", None, "model for the provider (default: see models)"),
    "models": Field("map", None, "default model per provider", fields=MODELS_FIELDS),
    "prices": Field("prices", None, "USD per million tokens: {model: {input: X, output: Y}}"
                    " (optional cache_read, cache_write, and context: the model's window in tokens)"),
    "base_url": Field("str", None, "OpenAI-compatible server URL (Ollama, vLLM, llama.cpp)"),
    "max_tokens": Field("int", 4096, "most output tokens one model call may ask for (a small local model on a "
                        "CPU takes minutes to fill 4096; compaction and review ask for less)", lo=1, hi=200_000),
    "max_steps": Field("int", 30, "model turns one agent run may take", lo=1, hi=10_000),
    "max_attempts": Field("int", 3, "failed attempts before a task is blocked", lo=1, hi=100),
    "retry_backoff": Field("duration", "30m", "wait after the first failure; doubles each time"),
    "critical_max_passovers": Field("int", 2, "wakes an eligible critical directive may be passed over", lo=0),
    "directive_age_bonus": Field("float", 0.5, "score a directive gains per day it waits", lo=0),
    "command_timeout": Field("duration", "60m", "wall-clock limit for a command task"),
    "idle_output_timeout": Field("duration", "15m", "kill a command that prints nothing this long"),
    "run_timeout": Field("duration", "30m", "wall-clock limit for one agent run"),
    "call_timeout": Field("duration", "5m", "overall deadline for one model call, retries included"),
    "max_retry_wait": Field("duration", "60s", "longest retry-after agentd will honour"),
    "quiet_hours": Field("time_range", None, "timer wakes do nothing in this local time range"),
    "min_idle": Field("duration", "10m", "user idle time required before gpu tasks (timer wakes)"),
    "max_load": Field("float", 0.8, "timer wakes skip when 1-min load per CPU is above this", lo=0),
    "interval": Field("duration", "6h", "how often the timer wakes agentd"),
    "notify": Field("str", None, "command that gets a one-line summary when a run fails or blocks"),
    "budget": Field("map", None, "token and USD limits", fields=BUDGET_FIELDS),
    "window": Field("map", None, "how much of the claude/codex CLIs' subscription windows agentd may use "
                    "(docs/agent.md#the-subscription-window)", fields=WINDOW_FIELDS),
    "context_share": Field("float", 0.8, "compact the conversation past this share of the context", lo=0.1, hi=1),
    "review": Field("map", None, "second-model review before done", fields=REVIEW_FIELDS),
    "nice": Field("int", 10, "CPU niceness of the service", lo=-20, hi=19),
    "io_idle": Field("bool", True, "IOSchedulingClass=idle for the service"),
    "output_tail": Field("int", 40, "lines of output quoted in a finding", lo=1, hi=1000),
    "max_output_mib": Field("int", 64, "MiB a command task may print (stdout + stderr) before it is killed",
                            lo=1, hi=1_000_000),
    "sandbox": Field("enum", "bwrap", "OS sandbox for the agent's tools: bwrap, or off (explicit opt-out; "
                     "see docs/security.md)", choices=("bwrap", "off")),
    "network": Field("network", False, "the agent tasks' network by default: false (none; CLI agents reach their "
                     "provider only), a list of hosts (through agentd's proxy), or true (the whole network, no "
                     "egress filter); a task's {network: ...} sets its own"),
    "approval_expiry": Field("duration", "7d", "an agent's approval request nobody answers within this ends "
                             "its run blocked"),
    "wait_for_usage_reset": Field("bool", True, "a usage limit with a reset time parks the agent run and resumes "
                                  "it at the reset (off: the task is deferred and runs afresh)"),
    "limit_pids": Field("count", 1024, "most processes and threads one agent shell command or CLI agent run "
                        "may have at once (a cgroup's pids.max); 0 or none: no limit", lo=8, hi=100_000),
    "limit_memory": Field("size", "auto", "memory one agent shell command or CLI agent run may use, without swap "
                          "(512M, 4G, 25% of the RAM; auto: half the RAM, at most 8G); 0 or none: no limit"),
    "limit_cpu_weight": Field("count", 50, "CPU weight of the agent's tools against the host's other work (1-10000; "
                              "100 is a normal process's); 0 or none: no weight set", lo=1, hi=10_000),
    "fleet": Field("map", None, "the fleet repository the worklog dir is a clone of (`agentd fleet init|join`)",
                   fields=FLEET_FIELDS),
    "max_limit_waits": Field("int", 3, "usage-limit windows one run may wait through (a task's "
                             "{limit_waits: N} sets its own)", lo=0, hi=1000),
}

# AGENTD_* variables that are read but are not config keys.
NON_KEY_ENV = {"AGENTD_HOST", "AGENTD_CONFIG", "AGENTD_DEBUG",
               # set by agentd for the processes a run starts
               "AGENTD_RUN_ID", "AGENTD_RUN_DIR", "AGENTD_TASK_ID"}


class Config(Record):
    values: dict[str, object]
    host: str
    config_file: Path
    config_dir: Path
    state_dir: Path
    worklog_dir: Path
    workspace: Path
    tasks_dir: Path
    warnings: list[str] = Factory(list)
    env: dict[str, str] = Factory(dict)

    def __getitem__(self, key: str) -> object:
        return self.values[key]

    @property
    def worklog_path(self) -> Path:
        return self.worklog_dir / f"{self.host}{WORKLOG_SUFFIX}"

    @property
    def store_path(self) -> Path:
        return self.state_dir / "agentd.sqlite3"

    @property
    def index_path(self) -> Path:
        return self.state_dir / "index.sqlite3"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "wake.lock"

    def duration(self, key: str) -> float:
        return parse_duration(self.values[key])

    def ensure_state_dir(self) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.state_dir


def _xdg(env: dict, name: str, fallback: str) -> Path:
    value = env.get(name)
    if value and os.path.isabs(value):
        return Path(value)
    return Path(env.get("HOME") or os.path.expanduser("~")) / fallback


def _expand(p: str, env: dict) -> Path:
    home = env.get("HOME") or os.path.expanduser("~")
    if p == "~" or p.startswith("~/"):
        p = home + p[1:]
    return Path(os.path.expandvars(p))


def _read_config(path: Path, cache_dir: Path) -> tuple:
    """Parse the config file, through a cache keyed on its size and mtime.

    Importing yaml costs ~30 ms, more than the rest of `agentd queue`; the cache in
    $XDG_CACHE_HOME/agentd holds the parsed data and key lines of a file that parsed cleanly.
    """
    try:
        st = path.stat()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        return read_yaml_file(path, "config file")  # a directory, a FIFO: says what it is
    key = [str(path), st.st_size, st.st_mtime_ns]
    cache = cache_dir / "config.json"
    try:
        c = json.loads(cache.read_text(encoding="utf-8"))
        if c["key"] == key:
            return c["data"], {tuple(k.split("\0")) if k else (): v for k, v in c["lines"].items()}, []
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    data, lines, problems = read_yaml_file(path, "config file")
    if not problems:
        try:
            blob = json.dumps({"key": key, "data": data, "lines": {"\0".join(k): v for k, v in lines.items()}})
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f"config.json.{os.getpid()}")
            tmp.write_text(blob, encoding="utf-8")
            os.replace(tmp, cache)
        except (OSError, TypeError, ValueError):
            pass  # YAML that JSON can't hold (dates, ...), or no cache dir: just don't cache
    return data, lines, problems


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of the env file (the systemd EnvironmentFile); comments and junk skipped."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return out
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        k = k.strip().removeprefix("export ").strip()
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
            v = v[1:-1]
        if k.isidentifier():
            out[k] = v
    return out


_HOST_NAME = lazy(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def default_host(env: dict) -> str:
    return env.get("AGENTD_HOST") or os.uname().nodename.split(".")[0] or "localhost"


def load(env: dict | None = None) -> Config:
    """Build the Config from defaults, the file and the environment."""
    env = dict(os.environ if env is None else env)
    config_dir = _xdg(env, "XDG_CONFIG_HOME", ".config") / "agentd"
    for k, v in read_env_file(config_dir / "env").items():
        env.setdefault(k, v)  # the same keys the systemd unit gets; the real environment wins
    config_file = Path(env["AGENTD_CONFIG"]) if env.get("AGENTD_CONFIG") else config_dir / "config.yaml"
    problems: list[str] = []
    warnings: list[str] = []
    raw: dict = {}
    lines: dict = {}
    if env.get("AGENTD_CONFIG") and not config_file.exists():
        problems.append(f"{config_file}: AGENTD_CONFIG names a config file that does not exist")
    elif config_file.is_symlink() and not config_file.exists():  # dangling, or a loop: not "no config"
        problems.append(f"{config_file}: is a symlink to nothing readable ({os.readlink(config_file)!r}); "
                        "fix or remove it")
    elif config_file.exists():  # a directory or a FIFO there is an error, not "no config"
        data, lines, yaml_problems = _read_config(config_file, _xdg(env, "XDG_CACHE_HOME", ".cache") / "agentd")
        problems += yaml_problems
        if data is not None or not yaml_problems:  # a key given twice still lets the rest be checked
            if data is None:
                data = {}
            if not isinstance(data, dict):
                problems.append(f"{config_file}:1: the config must be a mapping of keys")
            else:
                raw = data
    values, file_problems = validate(raw, CONFIG_FIELDS, source=str(config_file), lines=lines)
    problems = in_line_order(problems + file_problems, str(config_file))  # the YAML's and the schema's
    for name in sorted(env):
        if not name.startswith("AGENTD_") or name in NON_KEY_ENV:
            continue
        key = name[len("AGENTD_"):].lower()
        if key not in CONFIG_FIELDS:
            import difflib  # lazy: difflib only for a misspelt key's hint; keeps queue's start-up

            close = difflib.get_close_matches(key, list(CONFIG_FIELDS), n=1)
            hint = f" (did you mean AGENTD_{close[0].upper()}?)" if close else ""
            warnings.append(f"warning: environment variable {name} is not an agentd setting; ignored{hint}")
            continue
        # a path is taken as written (AGENTD_WORKLOG_DIR=2024 or ~ is a directory, not a number or null)
        value = (env[name].strip() or None) if CONFIG_FIELDS[key].kind == "path" else yaml_scalar(env[name])
        sub, env_problems = validate({key: value}, CONFIG_FIELDS,
                                     source=f"environment variable {name}", fill_defaults=False)
        problems += env_problems
        if not env_problems:
            if CONFIG_FIELDS[key].kind == "map" and isinstance(sub[key], dict):
                values[key] = {**values[key], **sub[key]}  # AGENTD_BUDGET='{usd_per_day: 5}' sets one limit
            else:
                values[key] = sub[key]
    host = env.get("AGENTD_HOST")
    if host and not _HOST_NAME.fullmatch(host):  # empty: the hostname, as if unset
        problems.append(f"environment variable AGENTD_HOST: {host!r} can't name a worklog: use letters, digits, "
                        "'.', '_' and '-', starting with a letter or digit (it becomes <host>_worklog.txt)")
    if problems:
        raise ConfigError(problems, warnings)  # the warnings too: a misspelt variable may be the cause
    state_dir = (_expand(values["state_dir"], env) if values["state_dir"]
                 else _xdg(env, "XDG_STATE_HOME", ".local/state") / "agentd")
    worklog_dir = _expand(values["worklog_dir"], env)
    workspace = _expand(values["workspace"], env) if values["workspace"] else state_dir / "workspace"
    tasks_dir = _expand(values["tasks_dir"], env) if values["tasks_dir"] else worklog_dir / "tasks"
    return Config(values=values, host=default_host(env), config_file=config_file, config_dir=config_dir,
                  state_dir=state_dir, worklog_dir=worklog_dir, workspace=workspace, tasks_dir=tasks_dir,
                  warnings=warnings, env=env)


def print_warnings(cfg: Config) -> None:
    for w in cfg.warnings:
        print(f"agentd: {w}", file=sys.stderr)


def reference_markdown() -> str:
    """The config key table in docs/configuration.md, generated from the schema (a test checks it)."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]

    def add(fields: dict, prefix: str = "") -> None:
        for name, f in fields.items():
            if f.kind == "map":
                add(f.fields or {}, prefix + name + ".")
                continue
            kind = f"one of {', '.join(f.choices)}" if f.kind == "enum" else f.kind
            if f.lo is not None and f.hi is not None:
                kind += f" {f.lo:g}–{f.hi:g}"
            default = "—" if f.default is None else f"`{f.default}`"
            rows.append(f"| `{prefix}{name}` | {kind} | {default} | {f.doc} |")

    add(CONFIG_FIELDS)
    return "\n".join(rows) + "\n"
