"""The cgroup file system as agentd touches it: read and write one control file, read one counter
of an events file, and kill what is left in a group and remove it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def read(p: Path) -> str:
    try:
        return p.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def write(p: Path, text: str) -> None:
    with open(p, "w", encoding="ascii") as f:
        f.write(text)


def field(path: Path, key: str) -> int:
    """The number after ``key`` in a ``key value`` per line file (``pids.events``, ``memory.events``), else 0."""
    for line in read(path).splitlines():
        k, _, v = line.partition(" ")
        if k == key and v.strip().isdigit():
            return int(v)
    return 0


def remove(d: Path, mechanism: str) -> None:
    """Kill what is left in a group, then remove it."""
    if not d.exists():
        return
    if mechanism == "cgroup-v2" and (d / "cgroup.kill").exists():
        try:
            write(d / "cgroup.kill", "1")
        except OSError:
            pass
    for _ in range(100):
        pids = read(d / "cgroup.procs").split()
        if not pids:
            try:
                d.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                pass
        for p in pids:
            try:
                os.kill(int(p), signal.SIGKILL)
            except (ProcessLookupError, ValueError, PermissionError):
                pass
        time.sleep(0.05)
