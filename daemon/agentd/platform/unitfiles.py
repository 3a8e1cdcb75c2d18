"""Rendering the systemd units from their templates: the calendar, the quoting, the values.

Split from ``systemd.py`` (which installs and inspects them).  Rendering is
deterministic, so re-installing changes nothing and ``units_match`` can compare.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from agentd.config.config import CONFIG_FIELDS, read_env_file
from agentd.config.schema import parse_duration
from agentd.errors import AgentdError, ConfigError, UsageError


TEMPLATE_DIR = Path(__file__).parent / "units"
UNITS = ("agentd.service", "agentd.timer", "agentd-notify@.service")
# Environment variables that decide where agentd finds its config and state:
# when set at install time they are passed on to the service.
PASSED_ENV = ("AGENTD_CONFIG", "AGENTD_HOST", "XDG_CONFIG_HOME", "XDG_STATE_HOME")


def _home(env: dict) -> str:
    return env.get("HOME") or os.path.expanduser("~")


def env_file(cfg) -> Path:
    return cfg.config_dir / "env"


def _span(seconds: float) -> str:
    """Seconds as a systemd time span: 5400 -> '1h 30min'."""
    s, parts = int(round(seconds)), []
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if s >= n:
            parts.append(f"{s // n}{unit}")
            s %= n
    return " ".join(parts) or "0"


def on_calendar(interval: str) -> list[str]:
    """OnCalendar= expressions for a wake every ``interval``, aligned to midnight.

    Calendar times, unlike OnUnitActiveSec=, let Persistent=true catch up a
    wake missed while the machine slept.  The interval must be whole minutes
    and divide a day evenly (1m..30m, 45m, 1h, 1.5h, 2h, 3h, 4h, 6h, 8h, 12h,
    1d), or be 7d (weekly).  Raises ValueError naming the value otherwise.
    """
    seconds = parse_duration(interval)
    if seconds < 60 or seconds % 60:
        raise ValueError(f"interval {interval!r}: the timer needs whole minutes, at least 1m")
    m = int(seconds // 60)
    if m == 1440:
        return ["daily"]
    if m == 7 * 1440:
        return ["weekly"]
    if m > 1440 or 1440 % m:
        raise ValueError(f"interval {interval!r} does not divide a day evenly, so the wakes could not "
                         "keep to a calendar; use e.g. 15m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h, 1d or 7d")
    if m == 1:
        return ["*-*-* *:*:00"]
    if m < 60 and 60 % m == 0:
        return [f"*-*-* *:00/{m}:00"]
    if m % 60 == 0:
        return [f"*-*-* 00/{m // 60}:00:00"]
    hours_of: dict[int, list[int]] = {}
    for t in range(0, 1440, m):
        hours_of.setdefault(t % 60, []).append(t // 60)
    by_spec: dict[str, list[int]] = {}
    for minute, hours in hours_of.items():
        step = hours[1] - hours[0] if len(hours) > 1 else 24
        if hours == list(range(hours[0], 24, step)):
            spec = f"{hours[0]:02d}/{step}"
        else:
            spec = ",".join(f"{h:02d}" for h in hours)
        by_spec.setdefault(spec, []).append(minute)
    return [f"*-*-* {spec}:{','.join(f'{x:02d}' for x in sorted(mins))}:00"
            for spec, mins in by_spec.items()]


# -- rendering -----------------------------------------------------------------
def _quote(value: str) -> str:
    """One word for a unit file: %-specifiers escaped, quoted C-style."""
    value = value.replace("%", "%%")
    if re.fullmatch(r"[A-Za-z0-9_./:@+=,-]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def default_agentd_exe(env: dict | None = None) -> str:
    """The agentd script next to this Python (the venv's bin), else the one on PATH."""
    here = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "agentd")
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    found = shutil.which("agentd", path=(env or os.environ).get("PATH"))
    if found:
        return os.path.abspath(found)
    raise AgentdError("cannot find the agentd executable (not next to "
                      f"{sys.executable} nor on PATH); install agentd-host with pip first")


def _interval(cfg, every: str | None) -> tuple[str, list[str]]:
    value = every if every is not None else cfg.values["interval"]
    try:
        return value, on_calendar(value)
    except ValueError as e:
        if every is not None:
            raise UsageError(f"--every: {e}") from None
        raise ConfigError(f"{cfg.config_file}: 'interval': {e}") from None


def render(cfg, every: str | None = None, agentd_exe: str | None = None,
           path_env: str | None = None) -> dict[str, str]:
    """Unit file name -> text of this install's units."""
    interval, calendars = _interval(cfg, every)
    exe = agentd_exe or default_agentd_exe(cfg.env)
    if not os.path.isabs(exe):
        raise UsageError(f"the agentd executable must be an absolute path, not {exe!r}")
    path = path_env if path_env is not None else cfg.env.get("PATH", os.defpath)
    path = ":".join(dict.fromkeys(p for p in path.split(":") if p))  # drop repeats, keep order
    assignments = [f"PATH={path}"]
    home = _home(cfg.env)
    defaults = {"XDG_CONFIG_HOME": os.path.join(home, ".config"),
                "XDG_STATE_HOME": os.path.join(home, ".local", "state")}
    for name in PASSED_ENV:
        value = cfg.env.get(name)
        if value and os.path.normpath(value) != defaults.get(name):
            if name != "AGENTD_HOST":
                value = os.path.abspath(value)
            assignments.append(f"{name}={value}")
    # Settings made with AGENTD_<KEY> in the installing shell hold for the timer's wakes too
    # (those in the env file reach the service through EnvironmentFile= instead).

    in_file = read_env_file(env_file(cfg))
    for key in CONFIG_FIELDS:
        name = f"AGENTD_{key.upper()}"
        if key in ("nice", "io_idle", "interval"):
            continue  # these shape the units themselves
        if cfg.env.get(name) and name not in in_file:
            value = cfg.env[name]
            if key in ("worklog_dir", "workspace", "tasks_dir", "state_dir"):
                value = os.path.abspath(os.path.expanduser(value))
            assignments.append(f"{name}={value}")
    env_path = env_file(cfg)
    default_env = Path(home) / ".config" / "agentd" / "env"
    env_ref = "%h/.config/agentd/env" if env_path == default_env else str(env_path).replace("%", "%%")
    timeout = (max(cfg.duration("command_timeout"), cfg.duration("run_timeout"))
               + cfg.duration("call_timeout") + 300)
    seconds = parse_duration(interval)
    values = {
        "AGENTD": _quote(exe).replace("$", "$$"),
        "ENVIRONMENT": " ".join(_quote(a) for a in assignments),
        "ENV_FILE": env_ref,
        "TIMEOUT": _span(timeout),
        "NICE": str(cfg.values["nice"]),
        "IO_CLASS": "idle" if cfg.values["io_idle"] else "best-effort",
        "INTERVAL": interval,
        "RANDOM_DELAY": _span(min(seconds / 10, 900)),
        "ACCURACY": "1min" if seconds >= 600 else "1s",
    }
    out = {}
    for name in UNITS:
        lines = []
        for line in _installed_head(name, (TEMPLATE_DIR / name).read_text(encoding="utf-8"), cfg):
            if line.startswith("OnCalendar=@ON_CALENDAR@"):
                lines += [f"OnCalendar={c}" for c in calendars]
                continue
            line = re.sub(r"@([A-Z_]+)@", lambda m: values.get(m.group(1), m.group(0)), line)
            lines.append(line)
        out[name] = "\n".join(lines) + "\n"
    return out


def _installed_head(name: str, text: str, cfg) -> list[str]:
    """The template's lines with its opening comment made right for an installed copy.

    The opening comment (up to the first blank line) is in paragraphs: the title
    stays, those about the template and its @NAME@ placeholders go, the rest stay,
    and a note says where the file came from and how to change it.
    """
    lines = text.splitlines()
    end = lines.index("") if "" in lines else 0
    paragraphs: list[list[str]] = [[]]
    for line in lines[:end]:
        if line.strip() == "#":
            paragraphs.append([])
        else:
            paragraphs[-1].append(line)
    title, rest = paragraphs[0][:1], paragraphs[0][1:]
    kept = [p for p in [rest] + paragraphs[1:]
            if p and not any("This is a template" in x or re.search(r"@[A-Z_]+@", x) for x in p)]
    how = " (or pass --every)" if name.endswith(".timer") else ""
    note = ["# Written by `agentd install` from agentd-host's template of the same name.",
            f"# To change it, edit {str(cfg.config_file).replace('%', '%%')}{how}",
            "# and run `agentd install` again: the next install overwrites changes made here."]
    head = title + ["#"] + note
    for p in kept:
        head += ["#"] + p
    return head + lines[end:]


# -- commands --------------------------------------------------------------------


def installed_interval(text: str) -> str | None:
    m = re.search(r"^Description=agentd: wake the per-host agent daemon every (\S+)$", text, re.M)
    return m.group(1) if m else None
