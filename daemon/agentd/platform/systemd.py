"""The systemd user units: install, uninstall, and look at them (linger, the timer).

``unitfiles.render`` fills the templates in ``agentd/platform/units/`` (a copy of
``units/``) with this install's values: the path of this ``agentd``, the PATH
of the installing shell, timeouts and niceness from the config, the calendar of
the interval.  Commands run with ``cfg.env``; expected problems
are a non-zero return with a message saying what to do, or an ``AgentdError``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from agentd.errors import AgentdError, UsageError
from agentd.platform.unitfiles import (PASSED_ENV, TEMPLATE_DIR, UNITS, _home, default_agentd_exe, env_file,  # noqa: F401
                              _interval, installed_interval, on_calendar, render)
import pwd
import time
from agentd.times import parse

TIMER = "agentd.timer"
SERVICE = "agentd.service"
LINGER_DIR = Path("/var/lib/systemd/linger")
ENV_TEMPLATE = """\
# agentd: environment of the agentd service (systemd EnvironmentFile=).
# One KEY=VALUE a line; no `export`, no $expansion; quote values with spaces.
# Keep this file private (mode 0600): it holds API keys.
# Changes apply at the next wake; no re-install needed.
#
#ANTHROPIC_API_KEY=sk-ant-...
#OPENAI_API_KEY=sk-...
#AGENTD_PROVIDER=anthropic
"""


def user_unit_dir(env: dict) -> Path:
    """Where the user manager reads units: $XDG_CONFIG_HOME/systemd/user."""
    base = env.get("XDG_CONFIG_HOME")
    base = base if base and os.path.isabs(base) else os.path.join(_home(env), ".config")
    return Path(base) / "systemd" / "user"


# -- interval -> calendar ------------------------------------------------------
def _run(env: dict, tool: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess | None:
    """Run a systemd tool; None when it is not on PATH."""
    exe = shutil.which(tool, path=env.get("PATH", os.defpath))
    if not exe:
        return None
    try:
        return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess([exe, *args], 124, "", f"{tool} timed out after {timeout:g}s")
    except OSError as e:
        return subprocess.CompletedProcess([exe, *args], 126, "", str(e))


def _why(p: subprocess.CompletedProcess) -> str:
    text = (p.stderr or p.stdout or "").strip().splitlines()
    return text[-1] if text else f"exit status {p.returncode}"


def _no_manager_help(env: dict, again: str = "agentd install") -> str:
    hint = ("  XDG_RUNTIME_DIR is not set: in a `su`/`sudo` shell try `export XDG_RUNTIME_DIR=/run/user/$(id -u)`,\n"
            "  or log in as the user directly (ssh, console).\n") if not env.get("XDG_RUNTIME_DIR") else ""
    return ("agentd needs a systemd user manager (`systemctl --user`).\n" + hint +
            "  A user manager runs while you are logged in, and always once `loginctl enable-linger $USER` is set.\n"
            f"  Then run `{again}` again.")


def _user(env: dict) -> str:
    name = env.get("USER") or env.get("LOGNAME")
    if name:
        return name

    return pwd.getpwuid(os.getuid()).pw_name


def linger_enabled(env: dict, linger_dir: Path = LINGER_DIR) -> bool | None:
    """Whether the user manager outlives logouts; None when it can't be told."""
    user = _user(env)
    p = _run(env, "loginctl", "show-user", user, "--property=Linger", timeout=10)
    if p is not None and p.returncode == 0:
        value = p.stdout.strip().partition("=")[2]
        if value in ("yes", "no"):
            return value == "yes"
    if linger_dir.is_dir():
        return (linger_dir / user).exists()
    return None if p is None else False


def timer_next_elapse(env: dict) -> str | None:
    """When agentd.timer fires next, as systemd prints it; None if unknown."""
    return timer_state(env)[0]


def timer_state(env: dict) -> tuple[str | None, str | None]:
    """(next elapse, None) when the timer is active; else (None, why the user manager
    could not be asked), the reason None when it answered and the timer is simply not active."""
    p = _run(env, "systemctl", "--user", "show", TIMER, "--property=NextElapseUSecRealtime", timeout=10)
    if p is None:
        return None, "systemctl did not answer"
    if p.returncode != 0:
        return None, _why(p)
    value = p.stdout.strip().partition("=")[2].strip()
    return (None, None) if value in ("", "n/a", "0") else (value, None)


def _write(path: Path, text: str) -> bool:
    """Write if different; True when the file changed."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True


def ensure_env_file(cfg) -> bool:
    """Create the env file (0600, commented template) if absent; True if created."""
    path = env_file(cfg)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(ENV_TEMPLATE)
    os.chmod(path, 0o600)
    return True


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def install(cfg, every: str | None = None, dry_run: bool = False, unit_dir: Path | None = None,
            out: Callable[[str], None] = print, err: Callable[[str], None] | None = None,
            agentd_exe: str | None = None) -> int:
    """Render and install the units, enable the timer.  0 when installed.

    ``dry_run`` writes the units to ``unit_dir`` (default: a new temporary
    directory, printed) and runs nothing.  ``unit_dir`` goes only with
    ``dry_run``: the user manager reads units from one place.  ``agentd_exe``
    overrides the executable the units run (see ``render``).
    """
    err = err or _err
    units = render(cfg, every, agentd_exe=agentd_exe)
    if dry_run:
        target = Path(unit_dir) if unit_dir else Path(tempfile.mkdtemp(prefix="agentd-units-"))
        target.mkdir(parents=True, exist_ok=True)
        for name, text in units.items():
            _write(target / name, text)
            out(f"wrote {target / name}")
        out(f"dry run: nothing installed.  `agentd install` would copy these to {user_unit_dir(cfg.env)}/,")
        out("create the env file " + (f"{env_file(cfg)} (absent now)" if not env_file(cfg).exists()
                                      else f"(kept: {env_file(cfg)})")
            + ", and run `systemctl --user daemon-reload` and `systemctl --user enable --now agentd.timer`.")
        return 0
    if unit_dir is not None:
        raise UsageError("--unit-dir only goes with --dry-run: the user manager reads units from "
                         f"{user_unit_dir(cfg.env)}")
    env = cfg.env
    if not shutil.which("systemctl", path=env.get("PATH", os.defpath)):
        exe = default_agentd_exe(env)
        err("agentd install: systemctl is not on PATH, so this host has no systemd to run the timer.\n"
            f"  Run agentd from cron instead, e.g. `crontab -e` and add:  0 */6 * * * {exe} wake\n"
            "  or install on a host with systemd.  Nothing was installed.")
        return 1
    target = user_unit_dir(env)
    for name, text in units.items():
        changed = _write(target / name, text)
        out(f"{'wrote' if changed else 'unchanged'} {target / name}")
    if ensure_env_file(cfg):
        out(f"created {env_file(cfg)} (mode 0600): put API keys there, e.g. ANTHROPIC_API_KEY=...")
    else:
        mode = env_file(cfg).stat().st_mode & 0o777
        note = "" if mode & 0o077 == 0 else f"; it is mode {mode:04o}: run `chmod 600 {env_file(cfg)}`"
        out(f"kept {env_file(cfg)}{note}")
    for args in (("daemon-reload",), ("enable", "--now", TIMER)):
        p = _run(env, "systemctl", "--user", *args)
        if p.returncode != 0:
            why = _why(p)
            hint = (f"  The user manager does not read {target}/: is XDG_CONFIG_HOME set differently for it?\n"
                    if "does not exist" in why else _no_manager_help(env))
            err(f"agentd install: `systemctl --user {' '.join(args)}` failed: {why}\n"
                f"  The unit files are in {target}/ but the timer is not enabled.\n" + hint)
            return 1
    out(f"enabled {TIMER}: agentd wakes every {_interval(cfg, every)[0]}")
    linger = linger_enabled(env)
    if linger is False:
        out("linger is off: the timer runs only while you are logged in.  To wake agentd after logout "
            "and at boot, run:  loginctl enable-linger $USER")
    elif linger is None:
        out("could not tell whether linger is on (`loginctl enable-linger $USER` keeps the timer running "
            "while you are logged out)")
    nxt = timer_next_elapse(env)
    if nxt:
        out(f"next wake: {nxt}")
    return 0


def uninstall(cfg, out: Callable[[str], None] = print, err: Callable[[str], None] | None = None) -> int:
    """Disable the timer and remove the units; keep the env file and the state."""
    err = err or _err
    env, target = cfg.env, user_unit_dir(cfg.env)
    have_systemctl = shutil.which("systemctl", path=env.get("PATH", os.defpath)) is not None
    installed = [n for n in UNITS if (target / n).exists()]
    failed = None
    if have_systemctl:
        p = _run(env, "systemctl", "--user", "disable", "--now", TIMER)
        if p.returncode == 0:
            out(f"disabled {TIMER}")
        elif installed:
            failed = ("disable --now " + TIMER, p)
    wants = target / "timers.target.wants" / TIMER
    if wants.is_symlink() or wants.exists():
        wants.unlink()
    for name in installed:
        (target / name).unlink()
        out(f"removed {target / name}")
    if not installed:
        out(f"no agentd units in {target}/")
    if have_systemctl:
        p = _run(env, "systemctl", "--user", "daemon-reload")
        if p.returncode == 0:
            _run(env, "systemctl", "--user", "reset-failed", "agentd.service")
        elif installed and not failed:
            failed = ("daemon-reload", p)
    kept = [f"{what} {path}" for what, path in (("the config", cfg.config_file), ("the worklog", cfg.worklog_path),
                                                 ("the env file", env_file(cfg)), ("the state in", cfg.state_dir))
            if path.exists()]
    if kept:
        out(f"kept {', '.join(kept)} (delete them yourself if you want them gone)")
    if failed:  # the files are gone, which is what uninstall is for: only the manager was not told
        err(f"agentd uninstall: the unit files are removed, but the user manager was not told (`systemctl "
            f"--user {failed[0]}` failed: {_why(failed[1])}); a running one drops the timer at its next "
            "`systemctl --user daemon-reload`")
    return 0


# -- a one-shot wake ---------------------------------------------------------------
def schedule_wake(cfg, when_iso: str, run_id: str) -> str:
    """Wake agentd at ``when_iso`` (a usage limit's reset), not at the next timer tick: a transient
    timer (``systemd-run --user --on-calendar``) that starts agentd.service once.  Only where the
    timer is installed; says what it did, or why it did not (then `agentd status` shows the time)."""
    env = cfg.env
    if not (user_unit_dir(env) / TIMER).exists():
        return f"the timer is not installed: `agentd wake` after {when_iso} resumes it"

    t = parse(when_iso)
    if t is None:
        return f"no wake scheduled: {when_iso!r} is not a time"

    spec = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
    unit = "agentd-reset-" + "".join(c if c.isalnum() or c == "-" else "_" for c in run_id)
    p = _run(env, "systemd-run", "--user", "--collect", f"--unit={unit}", f"--on-calendar={spec}",
             "--timer-property=AccuracySec=1s", "--description=agentd: resume a run after a usage limit resets",
             "systemctl", "--user", "start", "--no-block", SERVICE, timeout=15)
    if p is None:
        return f"no wake scheduled (systemd-run is not on PATH): the timer's next wake after {when_iso} resumes it"
    if p.returncode != 0:
        return f"no wake scheduled ({_why(p)}): the timer's next wake after {when_iso} resumes it"
    return f"a wake is scheduled for {spec} ({unit}.timer)"


# -- what is installed -------------------------------------------------------------
def units_match(cfg) -> tuple[bool, str]:
    """Do the installed units equal a fresh render for this install?"""
    target = user_unit_dir(cfg.env)
    missing = [n for n in UNITS if not (target / n).is_file()]
    if len(missing) == len(UNITS):
        return False, f"agentd units are not installed in {target}/ (run `agentd install`)"
    if missing:
        return False, f"{', '.join(missing)} missing from {target}/ (run `agentd install`)"
    timer = (target / TIMER).read_text(encoding="utf-8", errors="replace")
    try:
        try:
            fresh = render(cfg, installed_interval(timer))
        except UsageError:
            fresh = render(cfg)
    except AgentdError as e:
        return False, f"cannot render this install's units: {e}"
    for name in UNITS:
        have = (target / name).read_text(encoding="utf-8", errors="replace").splitlines()
        want = fresh[name].splitlines()
        if have != want:
            diff = next(((a, b) for a, b in zip(have, want) if a != b), None)
            detail = f": installed `{diff[0]}`, this install `{diff[1]}`" if diff else ""
            return False, f"{target / name} differs from this install{detail} (run `agentd install` again)"
    return True, f"units in {target}/ match this install (every {installed_interval(timer)})"
