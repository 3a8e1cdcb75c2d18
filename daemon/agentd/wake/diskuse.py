"""What fills the disk agentd and its agents share: the workspace's size (a bounded walk), the file
systems of the state dir and the workspace, and the one text that names the cause and the fix.

    measure(root)    bytes under ``root`` and under each of its entries, biggest first; ``cut`` when the
                     walk stopped at WALK_ENTRIES entries or WALK_SECONDS (the sizes are then "at least")
    low(cfg)         a ``Low`` for each file system (state dir, workspace) that is (nearly) full, else []
    Low.cause()      "the disk is full: the agent workspace W holds N of the M used on /mount"
    Low.fixes()      "remove W/<task>" for the biggest task dirs, `agentd worktrees --prune` for worktrees

"(Nearly) full" is: less than ``reserve.RESERVE_BYTES`` free beside agentd's reserve, or no whole
reserve for want of room (docs/reliability.md#a-full-disk).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from agentd.recordtype import Factory, Record
from agentd.wake import reserve

WALK_ENTRIES = 200_000
WALK_SECONDS = 3.0
SHOWN = 3  # the biggest task dirs named


class Usage(Record):
    root: str
    total: int = 0
    dirs: list[tuple[str, int]] = Factory(list)  # (entry name, bytes), biggest first
    cut: bool = False  # the walk stopped early: every figure is "at least"

    def size(self, n: int) -> str:
        return ("at least " if self.cut else "") + human(n)


def human(n: float) -> str:
    for unit, step in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= step:
            v = n / step
            return f"{v:.1f} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{int(n)} B"


def measure(root: Path, max_entries: int = WALK_ENTRIES, max_seconds: float = WALK_SECONDS) -> Usage:
    """Allocated bytes under ``root`` (links not followed, other file systems not entered)."""
    u = Usage(str(root))
    try:
        dev = os.lstat(root).st_dev
        tops = list(os.scandir(root))
    except OSError:
        return u
    deadline, seen = time.monotonic() + max_seconds, 0
    per: dict[str, int] = {}
    for top in tops:
        stack, n = [top], 0
        while stack:
            entry = stack.pop()
            seen += 1
            if seen > max_entries or (seen % 512 == 0 and time.monotonic() > deadline):
                u.cut = True
                break
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            n += st.st_blocks * 512
            if entry.is_dir(follow_symlinks=False) and st.st_dev == dev:
                try:
                    stack.extend(os.scandir(entry.path))
                except OSError:
                    pass
        per[top.name] = n
        if u.cut:
            break
    u.dirs = sorted(per.items(), key=lambda kv: -kv[1])
    u.total = sum(per.values())
    return u


def mount_of(p: Path) -> Path:
    p = Path(os.path.abspath(p))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p):
        p = p.parent
    return p


class Low(Record):
    """One (nearly) full file system: ``names`` (state dir, workspace) are on it."""

    names: list[str]
    mount: str
    free: int
    total: int
    used: int
    reserve_held: int
    workspace: str
    usage: Usage | None = None  # the workspace's, when it is on this file system

    def cause(self) -> str:
        head = f"the disk is full: {self.mount} has {human(self.free)} free of {human(self.total)}"
        u = self.usage
        if u is None:
            return head + f" (the agent workspace {self.workspace} is on another disk)"
        if u.total * 2 >= self.used:  # the workspace is what fills it
            return (f"the disk is full: the agent workspace {self.workspace} holds {u.size(u.total)} of the "
                    f"{human(self.used)} used on {self.mount} ({human(self.free)} free)")
        return head + f"; the agent workspace {self.workspace} holds only {u.size(u.total)} of the {human(self.used)} used"

    def biggest(self) -> list[tuple[str, int]]:
        return [(n, b) for n, b in (self.usage.dirs if self.usage else [])[:SHOWN] if b]

    def fixes(self) -> list[str]:
        out = []
        for name, _ in self.biggest():
            where = Path(self.workspace) / name
            out.append(f"`agentd worktrees --prune` (or remove {where})" if "@" in name else f"remove {where}")
        if self.usage is None or self.usage.total * 2 < self.used:
            out.append(f"free space on {self.mount} (`du -xsh {self.mount}/* | sort -h`)")
        return out

    def lines(self) -> list[str]:
        """The cause, the biggest task dirs and the fixes, for status and doctor."""
        out = [self.cause()]
        if self.biggest():
            out.append("biggest in the workspace: " + ", ".join(f"{n} {self.usage.size(b)}" for n, b in self.biggest()))
        out.append("fix: " + "; ".join(self.fixes()))
        return out


def low(cfg, measure_workspace: bool = True) -> list[Low]:
    """The (nearly) full file systems among the state dir's and the workspace's."""
    size = reserve.RESERVE_BYTES
    have = reserve.held(cfg)
    by_mount: dict[str, list[str]] = {}
    for name, p in (("state dir", cfg.state_dir), ("workspace", cfg.workspace)):
        by_mount.setdefault(str(mount_of(p)), []).append(name)
    out = []
    for mount, names in by_mount.items():
        try:
            st = os.statvfs(mount)  # (what shutil.disk_usage reads, without importing shutil on status's path)
            free = reserve.free_bytes(Path(mount))
        except OSError:
            continue
        total, used_all = st.f_blocks * st.f_frsize, (st.f_blocks - st.f_bfree) * st.f_frsize
        held_here = have if "state dir" in names else 0
        no_reserve = "state dir" in names and size > 0 and held_here < size
        if free >= max(size, reserve.RECORD_ROOM) and not (no_reserve and free < size + reserve.MARGIN):
            continue
        used = used_all - held_here
        usage = measure(Path(cfg.workspace)) if "workspace" in names and measure_workspace else None
        out.append(Low(names, mount, free, total, used, held_here, str(cfg.workspace), usage))
    return out


def workspace_full(cfg) -> Low | None:
    """The workspace's file system when it is (nearly) full: agent tasks wait (they would fill it again)."""
    return next((x for x in low(cfg, measure_workspace=False) if "workspace" in x.names), None)
