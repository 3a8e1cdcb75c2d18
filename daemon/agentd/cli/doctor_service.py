"""``agentd doctor``'s checks of the service that wakes agentd: its systemd units, linger and the timer."""

from __future__ import annotations

import os
import shutil
from typing import Any

from agentd.cli.doctor_check import OK, WARN, Check
from agentd.platform import systemd


def check_units(cfg: Any) -> tuple[bool, Check]:
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
    linger = systemd.linger_enabled(cfg.env)
    if linger:
        return Check(OK, "linger is on: the timer runs while you are logged out and after boot")
    if linger is None:
        return Check(WARN, "cannot tell whether linger is on (no loginctl)", "loginctl enable-linger $USER")
    return Check(WARN, "linger is off: the timer runs only while you are logged in", "loginctl enable-linger $USER")


def check_timer(cfg: Any) -> Check:
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
