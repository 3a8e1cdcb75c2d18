"""Space kept for agentd on its own disk: ``<state_dir>/reserve``, a file of real blocks it frees to
record a run, and explain why, when something (most often the agent's workspace) has filled the disk.

    at_wake(cfg)     at the start of a wake: free it when the disk is already full, else ensure(cfg)
    ensure(cfg)      make or refill it when the disk has room; says whether it is held
    release(cfg)     unlink it; the bytes it held are free for agentd's own writes
    retry(cfg, fn)   fn(); once more after release() when fn failed for a full disk
    full_error(e)    whether an exception is "the disk is full" (sqlite, ENOSPC, EDQUOT)

The blocks are allocated (``posix_fallocate``), not a sparse file, so freeing it frees space for real.
The size is ``RESERVE_BYTES`` (0 turns the reserve off).  While the reserve can't be made for want of
room, agent tasks wait (``gating``): they would fill the disk again.  docs/reliability.md#a-full-disk
"""

from __future__ import annotations

import errno
import os
from agentd.errors import StateError, WorklogError
from pathlib import Path

MiB = 1024**2
RESERVE_BYTES = 64 * MiB
# Made only when this much stays free beside it; freed before recording when less than RECORD_ROOM is free.
MARGIN = 16 * MiB
RECORD_ROOM = 4 * MiB
NAME = "reserve"

HELD, MADE, NO_ROOM, OFF, FAILED, FREED = "held", "made", "no room", "off", "failed", "freed"
_FULL_WORDS = ("disk is full", "no space left", "quota exceeded", "disk quota")


def path(cfg) -> Path:
    return Path(cfg.state_dir) / NAME


def held(cfg) -> int:
    """The bytes the reserve holds now (its allocated blocks), 0 without one."""
    try:
        return os.lstat(path(cfg)).st_blocks * 512
    except OSError:
        return 0


def free_bytes(p: Path) -> int:
    """Free bytes (for an unprivileged writer) on the file system of ``p``, or of its nearest existing parent."""
    p = Path(os.path.abspath(p))
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize


def ensure(cfg, size: int | None = None) -> str:
    """Make or refill the reserve when the disk has room for it and ``MARGIN`` beside; one of HELD,
    MADE, NO_ROOM (the disk is (nearly) full), OFF (size 0) or FAILED (the file system refused)."""
    size = RESERVE_BYTES if size is None else size
    p = path(cfg)
    if size <= 0:
        release(cfg)
        return OFF
    have = held(cfg)
    if have >= size and not p.is_symlink():
        return HELD
    try:
        if free_bytes(p.parent) < size - have + MARGIN:
            return NO_ROOM
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)
    except OSError as e:
        release(cfg)  # no half reserve: it would be taken for a whole one
        return NO_ROOM if e.errno in (errno.ENOSPC, errno.EDQUOT) else FAILED
    return MADE


def at_wake(cfg) -> str:
    """At the start of a wake: FREED when the disk is already full (what a killed run left), else ``ensure``."""
    if release_if_low(cfg):
        return FREED
    return ensure(cfg)


def release(cfg) -> int:
    """Unlink the reserve; the bytes it held (0 when there was none)."""
    have = held(cfg)
    try:
        os.unlink(path(cfg))
    except FileNotFoundError:
        return 0
    except OSError:
        return 0
    return have


def release_if_low(cfg) -> int:
    """Free the reserve when less than ``RECORD_ROOM`` is free beside it: what is about to be written is
    agentd's record.  The bytes freed (0 when there was room or no reserve)."""
    try:
        low = free_bytes(Path(cfg.state_dir)) < RECORD_ROOM
    except OSError:
        low = False
    return release(cfg) if low else 0


def full_error(e: BaseException) -> bool:
    """Whether ``e`` says the disk (or the quota) is full: an OSError, or a StateError/WorklogError
    whose text says so (sqlite's "database or disk is full", "No space left on device")."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if getattr(e, "full", False):
        return True
    return isinstance(e, (StateError, WorklogError)) and any(w in str(e).lower() for w in _FULL_WORDS)


def retry(cfg, fn, *args, **kw):
    """``fn(*args, **kw)``; when it fails for a full disk and the reserve is there, free it and try once more."""
    try:
        return fn(*args, **kw)
    except Exception as e:
        if not full_error(e) or not release(cfg):
            raise
    return fn(*args, **kw)
