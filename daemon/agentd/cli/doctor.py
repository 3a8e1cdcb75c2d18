"""``agentd doctor``: check this host's setup, one line per check.

Each line is ``OK``, ``WARN`` or ``FAIL``, what was checked, and for WARN
and FAIL the fix.  The exit status is 1 when any check FAILs, else 0.
Secrets are never printed: the API key checks say only where a key is set.

The checks live by area: ``doctor_files`` (config, worklog, state dir, disks), ``doctor_service``
(systemd units, linger, timer), ``doctor_backends`` (CLIs, API keys, torch), ``doctor_sandbox``
(sandbox, canary, network); ``doctor_check`` holds the ``Check`` line they all give.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from agentd.cli.doctor_backends import check_api_keys, check_backends, check_torch
from agentd.cli.doctor_check import FAIL, OK, WARN, Check
from agentd.cli.doctor_files import check_config, check_disk, check_reserve, check_state_dir, check_worklog
from agentd.cli.doctor_sandbox import check_network, check_sandbox
from agentd.cli.doctor_service import check_linger, check_timer, check_units
from agentd.config.config import load as load_config
from agentd.sandbox import cgroups


__all__ = ["OK", "WARN", "FAIL", "Check", "check_api_keys", "check_backends", "check_config", "check_disk",
           "check_linger", "check_network", "check_reserve", "check_sandbox", "check_state_dir", "check_timer",
           "check_torch", "check_units", "check_worklog", "doctor", "run_checks"]


def run_checks(cfg_loader: Callable[[], Any] | None = None, *, torch: bool = True,
               canary: bool = True) -> list[Check]:
    if cfg_loader is None:
        cfg_loader = load_config
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
