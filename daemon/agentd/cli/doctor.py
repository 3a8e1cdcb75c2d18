"""``agentd doctor``: check this host's setup, one line per check.

Each line is ``OK``, ``WARN`` or ``FAIL``, what was checked, and for WARN
and FAIL the fix.  The exit status is 1 when any check FAILs, else 0.
Secrets are never printed: the API key checks say only where a key is set.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from agentd.recordtype import Record

OK, WARN, FAIL = "OK", "WARN", "FAIL"
GiB, MiB = 1024 ** 3, 1024 ** 2
DISK_WARN = 5 * GiB
DISK_FAIL = 500 * MiB
CLI_BACKENDS = {"claude-cli": "claude", "codex-cli": "codex"}
KEY_OF = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
TORCH_PROBE = ("import json, torch\n"
               "cuda = torch.cuda.is_available()\n"
               "print(json.dumps({'version': torch.__version__, 'cuda': cuda,\n"
               "  'device': torch.cuda.get_device_name(0) if cuda else None}))\n")


class Check(Record):
    status: str  # OK WARN FAIL
    what: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4} {self.what}"
        return text + (f"\n     fix: {self.fix}" if self.fix and self.status != OK else "")


# -- single checks -------------------------------------------------------------------
def check_config(cfg_loader: Callable[[], Any]) -> tuple[Any, list[Check]]:
    from agentd.errors import ConfigError

    try:
        cfg = cfg_loader()
    except ConfigError as e:
        problems = "\n".join(f"       {p}" for p in e.problems + e.warnings)
        return None, [Check(FAIL, f"config has {len(e.problems)} problem(s):\n{problems}",
                            "edit the config file at the lines named above")]
    checks = [Check(OK, f"config {cfg.config_file}" + ("" if cfg.config_file.exists() else " (absent: defaults)"))]
    checks += [Check(WARN, w.removeprefix("warning: "), "unset it or fix its name") for w in cfg.warnings]
    return cfg, checks


def check_worklog(cfg: Any) -> Check:
    path = cfg.worklog_path
    if not path.exists():
        return Check(WARN, f"worklog {path} does not exist", "run `agentd init`")
    if not path.is_file():
        return Check(FAIL, f"worklog {path} is not a file", "move it away and run `agentd init`")
    missing = [w for w, m in (("readable", os.R_OK), ("writable", os.W_OK)) if not os.access(path, m)]
    if not os.access(path.parent, os.W_OK | os.X_OK):
        missing.append(f"in a writable directory ({path.parent})")
    if missing:
        return Check(FAIL, f"worklog {path} is not {' and '.join(missing)}",
                     f"chmod u+rw {path}; chmod u+rwx {path.parent}")
    try:
        from agentd.queue import queue
        from agentd.wake.lock import wake_running

        view = queue.load(cfg, wake_running=wake_running(cfg))
    except Exception as e:  # doctor reports; it does not crash
        return Check(WARN, f"worklog {path} could not be parsed: {e}", "run `agentd queue` to see why")
    bad = view.read.state.error_count + len(view.problems)
    if bad:
        return Check(WARN, f"worklog {path} is readable and writable, but {bad} line(s) or task-file entries "
                     "could not be read", "run `agentd queue`: it lists them by line number")
    return Check(OK, f"worklog {path} is readable and writable; {len(view.tasks)} tasks")


def check_state_dir(cfg: Any) -> Check:
    d = cfg.state_dir
    if not d.exists():
        return Check(WARN, f"state dir {d} does not exist yet", f"the first wake creates it, or: mkdir -m 700 -p {d}")
    mode = stat.S_IMODE(d.stat().st_mode)
    if mode & 0o077:
        return Check(WARN, f"state dir {d} is mode {mode:04o}: others can read runs and model exchanges",
                     f"chmod 700 {d}")
    if not os.access(d, os.W_OK | os.X_OK):
        return Check(FAIL, f"state dir {d} is not writable", f"chmod 700 {d}")
    return Check(OK, f"state dir {d} (mode 0700)")


def check_units(cfg: Any) -> tuple[bool, Check]:
    from agentd.platform import systemd

    try:
        ok, message = systemd.units_match(cfg)
    except Exception as e:  # noqa: BLE001 - doctor reports, never crashes
        return False, Check(WARN, f"units could not be checked: {e}", "run `agentd install`")
    installed = any((systemd.user_unit_dir(cfg.env) / n).exists() for n in systemd.UNITS)
    if ok:
        return True, Check(OK, message)
    fix = "run `agentd install` (or `agentd install --every <interval>` as before)"
    return installed, Check(WARN, message.split(" (run `agentd install")[0], fix)


def check_linger(cfg: Any) -> Check:
    from agentd.platform import systemd

    linger = systemd.linger_enabled(cfg.env)
    if linger:
        return Check(OK, "linger is on: the timer runs while you are logged out and after boot")
    if linger is None:
        return Check(WARN, "cannot tell whether linger is on (no loginctl)", "loginctl enable-linger $USER")
    return Check(WARN, "linger is off: the timer runs only while you are logged in", "loginctl enable-linger $USER")


def check_timer(cfg: Any) -> Check:
    from agentd.platform import systemd

    if not shutil.which("systemctl", path=cfg.env.get("PATH", os.defpath)):
        return Check(WARN, "no systemctl: nothing wakes agentd on a timer", "run `agentd wake` from cron")
    nxt, unreachable = systemd.timer_state(cfg.env)
    if nxt:
        return Check(OK, f"agentd.timer next wakes at {nxt}")
    if unreachable:
        # From a su/sudo shell or a session without a user manager, the timer may well be
        # running: this shell just can't ask.  Say so instead of suggesting to enable it.
        fix = ("export XDG_RUNTIME_DIR=/run/user/$(id -u) and run `agentd doctor` again, or run it from a login"
               " session (ssh, console)" if not cfg.env.get("XDG_RUNTIME_DIR") else
               "run `agentd doctor` from a login session (ssh, console); the user manager runs only while you"
               " are logged in unless linger is on (`loginctl enable-linger $USER`)")
        return Check(WARN, f"cannot tell whether agentd.timer is active: the user manager can't be reached "
                           f"({unreachable})", fix)
    return Check(WARN, "agentd.timer is not active", "systemctl --user enable --now agentd.timer  (after `agentd install`)")


def _providers(cfg: Any) -> list[str]:
    v = cfg.values
    out = [v.get("provider"), v.get("fallback_provider"), (v.get("review") or {}).get("provider")
           if (v.get("review") or {}).get("enabled") else None]
    return [p for i, p in enumerate(out) if p and p not in out[:i]]


def check_backends(cfg: Any) -> list[Check]:
    checks = []
    for provider in _providers(cfg):
        exe = CLI_BACKENDS.get(provider)
        if not exe:
            continue
        found = shutil.which(exe, path=cfg.env.get("PATH", os.defpath))
        if found:
            checks.append(Check(OK, f"provider {provider}: {exe} is {found}"))
        else:
            checks.append(Check(FAIL, f"provider {provider}: `{exe}` is not on PATH",
                                f"install {exe}, or put its directory on PATH and run `agentd install` again "
                                "(the service keeps the PATH of the install)"))
    return checks


def check_api_keys(cfg: Any) -> list[Check]:
    from agentd.platform import systemd
    from agentd.config.config import read_env_file

    env_path = systemd.env_file(cfg)
    in_file = read_env_file(env_path)
    checks = []
    if env_path.exists():
        mode = stat.S_IMODE(env_path.stat().st_mode)
        if mode & 0o077:
            checks.append(Check(WARN, f"env file {env_path} is mode {mode:04o}: others can read the API keys",
                                f"chmod 600 {env_path}"))

    def where(key: str) -> str | None:
        # config.load merged the env file into cfg.env (the real environment wins)
        if in_file.get(key) and cfg.env.get(key) == in_file[key]:
            return str(env_path)
        return "the environment" if cfg.env.get(key) else None

    providers = _providers(cfg)
    for provider in providers:
        if provider == "auto":
            found = [k for k in KEY_OF.values() if where(k)]
            if found:
                checks.append(Check(OK, f"provider auto: {', '.join(f'{k} set in {where(k)}' for k in found)}"))
            else:
                checks.append(Check(WARN, "provider auto: neither ANTHROPIC_API_KEY nor OPENAI_API_KEY is set, "
                                    "so agent tasks have no model", f"add one to {env_path}"))
        elif provider in KEY_OF:
            key = KEY_OF[provider]
            if where(key):
                checks.append(Check(OK, f"provider {provider}: {key} set in {where(key)}"))
            elif provider == "openai" and cfg.values.get("base_url"):
                from agentd.providers import public_url

                checks.append(Check(OK, f"provider openai at {public_url(cfg.values['base_url'])}: no OPENAI_API_KEY "
                                    "(fine for a local server)"))
            else:
                checks.append(Check(FAIL, f"provider {provider}: {key} is not set",
                                    f"add {key}=... to {env_path} (mode 0600)"))
    return checks


def check_torch(python: str = sys.executable, timeout: float = 120) -> Check:
    try:
        p = subprocess.run([python, "-c", TORCH_PROBE], capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Check(WARN, f"importing torch took over {timeout:g}s", "check the torch install")
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        return Check(WARN, f"torch is not importable ({last}): gpu tasks cannot run",
                     "pip install 'agentd-host[gpu]' (or make install)")
    info = json.loads(p.stdout.strip().splitlines()[-1])
    if info["cuda"]:
        return Check(OK, f"torch {info['version']} with CUDA ({info['device']})")
    gpu_here = Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi") is not None
    if gpu_here:
        return Check(WARN, f"torch {info['version']} has no CUDA but this host has an NVIDIA GPU",
                     "install a CUDA build of torch (see pytorch.org), e.g. make install TORCH=torch")
    return Check(OK, f"torch {info['version']} (CPU only; no NVIDIA GPU here)")


def check_sandbox(cfg: Any, canary: bool = True) -> list[Check]:
    """The OS sandbox of the agent's tools: which, whether it works, how to fix it, and its canary."""
    from agentd.sandbox import bwrap, sandbox

    agents = cfg.values.get("provider") != "none"
    bad = FAIL if agents else WARN  # with provider: none no agent task runs anyway
    if (cfg.values.get("sandbox") or "bwrap") == "off":
        from agentd.config.provenance import sandbox_off_by

        by = sandbox_off_by(cfg)
        checks = [Check(WARN, f"sandbox: off ({by}): the agent's shell runs unconfined, as you",
                        f"install bubblewrap and remove {'`sandbox: off`' if by.startswith('`') else by} "
                        "(see docs/security.md)")]
    else:
        st = bwrap.status(cfg.env)
        if not st.ok:
            return [Check(bad, f"sandbox: {st.reason}; agent tasks wait until it works", st.fix or "")]
        conflicts = sandbox.policy_for(cfg).conflicts
        if conflicts:
            return [Check(bad, f"sandbox: can't protect agentd: {conflicts[0]}; agent tasks wait",
                          "set `workspace` to a directory of its own (or leave it unset)")]
        policy = sandbox.policy_for(cfg)
        shown = sum(1 for h in policy.hidden if h.exists())
        checks = [Check(OK, f"sandbox: bwrap {st.version or ''} ({st.bwrap}) works: root read-only, workspace "
                            f"{policy.workspace} and a private /tmp writable, {shown} paths hidden, own PID "
                            f"namespace".replace("  ", " "))]
    if not canary:
        return checks
    from agentd.sandbox.canary import canary as run_canary

    r = run_canary(cfg)
    if r["error"]:
        return checks + [Check(bad, f"sandbox canary did not run: {r['error']}", "see docs/security.md")]
    # the config's own `network: true` grants the network: reaching it is what was asked for, not a leak
    granted = {p["name"] for p in r["probes"] if p["reached"] and p["name"].startswith("network")
               and r["mode"] != "off" and cfg.values.get("network") is True}
    rows = "\n".join(f"       {'granted' if p['name'] in granted else 'REACHED' if p['reached'] else 'refused'}  "
                     f"{p['name']}: {p['detail']}" + (" (the config's `network: true`)" if p["name"] in granted else "")
                     for p in r["probes"])
    reached = [p["name"] for p in r["probes"] if p["reached"] and p["name"] not in granted]
    if not reached:
        return checks + [Check(WARN if granted else OK,
                               f"sandbox canary: {len(r['probes'])} probes, nothing reached"
                               + (f" but the network the config grants ({FULL})" if granted else "") + f":\n{rows}",
                               "list the hosts tasks need instead (`network: [pypi.org]`)" if granted else "")]
    status = WARN if r["mode"] == "off" else FAIL
    return checks + [Check(status, f"sandbox canary: {len(reached)} of {len(r['probes'])} probes reached "
                                   f"what the agent must not:\n{rows}",
                           "install bubblewrap and remove `sandbox: off`" if r["mode"] == "off"
                           else "report this as a bug: the sandbox policy leaks (docs/security.md)")]


FULL = "full network, no egress filter"


def check_network(cfg: Any) -> Check:
    """Which network each kind of task gets under this config (docs/security.md#network): WARN where it is
    the full network with no egress filter for every agent task (``network: true``, ``sandbox: off``)."""
    from agentd.sandbox import egress

    allow = egress.allowlist(cfg, {})
    off = (cfg.values.get("sandbox") or "bwrap") == "off"
    hosts = f"{', '.join(allow)} (and their subdomains), through agentd's proxy" if allow else ""
    api = FULL if off or allow is None else f"only {hosts}" if allow else "none"
    cli = FULL if off or allow is None else "their provider, through agentd's proxy (which adds the key), " + (
        f"and {', '.join(allow)} (and their subdomains)" if allow else "nothing else")
    rows = "\n".join(f"       {k}: {v}" for k, v in (
        ("API agents' shell", api), ("CLI agents", cli),
        ("command tasks", "the host's network (they run as you, outside the sandbox)"),
        *([] if off else [("a task's own", "{network: [hosts]} allows those hosts through agentd's proxy, "
                                           f"{{network: true}} is the {FULL}, {{network: false}} none; a person's "
                                           "approval may add hosts")])))
    if off:
        return Check(WARN, f"network: {FULL}, for every task (`sandbox: off`):\n{rows}",
                     "install bubblewrap and remove `sandbox: off` (see docs/security.md)")
    if allow is None:
        return Check(WARN, f"network: {FULL}, for every agent task by default (`network: true` in the config):\n"
                           f"{rows}", "set `network:` to the hosts your tasks need ([pypi.org, github.com]), or "
                                      "remove it and give {network: true} to the tasks that need it")
    return Check(OK, f"network of each kind of task by default (config `network: "
                     f"{'[' + ', '.join(allow) + ']' if allow else 'false'}`):\n{rows}")


def _existing(path: Path) -> Path:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(paths: dict[str, Path], warn_bytes: int = DISK_WARN, fail_bytes: int = DISK_FAIL) -> list[Check]:
    seen: dict[int, list[str]] = {}
    free: dict[int, tuple[int, Path]] = {}
    for name, path in paths.items():
        p = _existing(path)
        dev = p.stat().st_dev
        seen.setdefault(dev, []).append(name)
        free[dev] = (shutil.disk_usage(p).free, p)
    checks = []
    for dev, names in seen.items():
        n, p = free[dev]
        what = f"{n / GiB:.1f} GiB free for {', '.join(names)} ({p})"
        if n < fail_bytes:
            checks.append(Check(FAIL, what, f"free disk space (need at least {fail_bytes // MiB} MiB)"))
        elif n < warn_bytes:
            checks.append(Check(WARN, what, f"free disk space (below {warn_bytes / GiB:g} GiB)"))
        else:
            checks.append(Check(OK, what))
    return checks


def check_reserve(cfg: Any) -> list[Check]:
    """agentd's reserve on the state dir's disk, and what fills a (nearly) full disk of the state dir or
    the workspace (docs/reliability.md#a-full-disk)."""
    from agentd.wake import diskuse, reserve

    size, have, where = reserve.RESERVE_BYTES, reserve.held(cfg), reserve.path(cfg)
    full = diskuse.low(cfg)
    if size <= 0:
        checks = [Check(WARN, "reserve: off: a full disk stops agentd from recording runs", "")]
    elif have >= size:
        checks = [Check(OK, f"reserve: {diskuse.human(have)} kept at {where}; agentd frees it to record a run when "
                            "the disk is full")]
    elif not full:
        checks = [Check(OK, f"reserve: none yet at {where}; the next wake makes it ({diskuse.human(size)})")]
    else:
        checks = [Check(WARN, f"reserve: none at {where}: the disk has no room for {diskuse.human(size)}",
                        "free space (below); the next wake makes it again")]
    for x in full:
        lines = x.lines()
        checks.append(Check(FAIL, f"disk of the {' and the '.join(x.names)} (nearly) full: {lines[0]}"
                                  + "".join(f"\n       {ln}" for ln in lines[1:-1]),
                            lines[-1].removeprefix("fix: ")))
    return checks


# -- all of them -------------------------------------------------------------------------
def run_checks(cfg_loader: Callable[[], Any] | None = None, *, torch: bool = True,
               canary: bool = True) -> list[Check]:
    if cfg_loader is None:
        from agentd.config.config import load as cfg_loader
    cfg, checks = check_config(cfg_loader)
    if cfg is not None:
        checks += [check_worklog(cfg), check_state_dir(cfg)]
        installed, units = check_units(cfg)
        checks.append(units)
        if installed:
            checks += [check_linger(cfg), check_timer(cfg)]
        checks += check_backends(cfg) + check_api_keys(cfg)
        checks += check_sandbox(cfg, canary)
        checks.append(check_network(cfg))
        from agentd.sandbox import cgroups

        checks.append(Check(*cgroups.doctor_line(cfg)))
        checks += check_disk({"state dir": cfg.state_dir, "workspace": cfg.workspace, "worklog": cfg.worklog_dir})
        checks += check_reserve(cfg)
    if torch:
        checks.append(check_torch())
    return checks


def doctor(out: Callable[[str], None] = print, cfg_loader: Callable[[], Any] | None = None, *,
           torch: bool = True, canary: bool = True) -> int:
    checks = run_checks(cfg_loader, torch=torch, canary=canary)
    counts = {s: sum(c.status == s for c in checks) for s in (OK, WARN, FAIL)}
    rc = 1 if counts[FAIL] else 0
    try:
        for c in checks:
            out(c.line())
        out(f"{counts[OK]} ok, {counts[WARN]} warnings, {counts[FAIL]} failed")
        if out is print:
            sys.stdout.flush()
    except BrokenPipeError:  # `agentd doctor | head -1`: the reader left early; the checks' result stands
        _stdout_to_devnull()
    return rc


def _stdout_to_devnull() -> None:
    """After a broken pipe: what is still buffered for stdout goes nowhere (Python's flush at exit
    would otherwise fail again and change the exit status)."""
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(fd, sys.stdout.fileno())
    finally:
        os.close(fd)
