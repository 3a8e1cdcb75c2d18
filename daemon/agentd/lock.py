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
