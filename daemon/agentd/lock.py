"""The wake lock: one wake per host at a time, never waiting.

A filelock on ``<state_dir>/wake.lock``.  The kernel drops the lock when the
process dies, so a killed wake never leaves a stale lock and there is no PID file.
"""

from __future__ import annotations

import contextlib

from agentd.errors import BusyError


@contextlib.contextmanager
def wake_lock(cfg):
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
    """Whether a wake holds the lock right now (a shared-lock probe; cheap, no filelock import)."""
    import fcntl
    import os

    try:
        fd = os.open(cfg.lock_path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing drops the probe's lock
    return False
