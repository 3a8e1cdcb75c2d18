"""``agentd doctor``'s checks of agentd's files and their disks: the config, the worklog, the state dir,
the free space where they live, and agentd's reserve against a full disk."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any, Callable

from agentd.cli.doctor_check import FAIL, OK, WARN, Check
from agentd.errors import ConfigError
from agentd.queue import queue
from agentd.wake import diskuse, reserve
from agentd.wake.lock import wake_running


GiB, MiB = 1024 ** 3, 1024 ** 2
DISK_WARN = 5 * GiB
DISK_FAIL = 500 * MiB


def check_config(cfg_loader: Callable[[], Any]) -> tuple[Any, list[Check]]:
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
