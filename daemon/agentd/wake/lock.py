"""The wake lock: one wake per host at a time, never waiting.

A filelock on ``<state_dir>/wake.lock``.  The kernel drops the lock when the
process dies, so a killed wake never leaves a stale lock and there is no PID file.
"""

from __future__ import annotations

import contextlib
import os

from agentd.errors import BusyError


@contextlib.contextmanager
def wake_lock(cfg):
    # lazy: only the wake takes the lock; keeps queue's and status's start-up
    from filelock import FileLock, Timeout

    cfg.ensure_state_dir()
    lock = FileLock(str(cfg.lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BusyError(f"another wake is running (it holds {cfg.lock_path}); not starting a second") from None
    try:
        yield lock
    finally:
        lock.release()


def wake_running(cfg) -> bool:
    """Whether a wake holds the lock right now.

    Read from /proc/locks, so that asking never takes the lock itself (a probe that
    did could make a wake starting at that instant exit 75).
    """
    try:
        st = os.stat(cfg.lock_path)
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            table = f.read()
    except OSError:
        return False
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for parts in (line.split() for line in table.splitlines()):
        if len(parts) <= 5 or parts[1] != "FLOCK" or parts[5].rpartition(":")[2] != str(st.st_ino):
            continue
        if parts[5] == want:
            return True
        # The same inode on a device numbered differently: btrfs shows its subvolumes' files in
        # /proc/locks under another device than stat() gives.  Ask the holder's open files.
        try:
            fds = f"/proc/{parts[4]}/fd"
            if any(os.path.samefile(os.path.join(fds, fd), cfg.lock_path) for fd in os.listdir(fds)):
                return True
        except OSError:  # gone by now, or another user's process
            pass
    return False
