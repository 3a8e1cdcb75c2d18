"""The store's SQLite connection: a write that fails for the disk's sake (full, read-only,
denied, locked) is a ``StateError`` naming the file, and transactions are paired (``Tx``).
"""

from __future__ import annotations

import os
import sqlite3
from agentd.errors import io_error, StateError
from pathlib import Path

# What SQLite says when the disk, not agentd, is the problem (all sqlite3.OperationalError).
_IO_WORDS = ("disk is full", "readonly", "read-only", "unable to open", "disk i/o", "locked", "attempt to write",
             "no space")


def state_error(path: Path, e: Exception):
    """The StateError for a write to the store at ``path`` that failed, or None (a bug: re-raise)."""
    if isinstance(e, OSError):
        return io_error(e, str(path))
    text = str(e)
    if not isinstance(e, sqlite3.OperationalError) or not any(w in text.lower() for w in _IO_WORDS):
        return None
    try:
        st = os.statvfs(path.parent)
        full = st.f_bavail * st.f_frsize < 256 * 1024
    except OSError:
        full = False
    full = full or "full" in text or "space" in text
    hint = ("the disk is full: free some space" if full
            else "the file system is read-only or the file is not writable" if "read" in text or "write" in text
            else "another process holds it" if "locked" in text
            else "check the directory, its mode and the disk")
    return StateError(f"cannot write {path}: {text} ({hint})", full=full)


class Conn(sqlite3.Connection):
    """A connection whose I/O failures (disk full, read-only, denied) are StateErrors naming the file."""

    agentd_path: Path = Path("agentd.sqlite3")

    def execute(self, *args):
        return self._checked(super().execute, args)

    def executemany(self, *args):
        return self._checked(super().executemany, args)

    def _checked(self, call, args):
        try:
            return call(*args)
        except sqlite3.OperationalError as e:
            err = state_error(self.agentd_path, e)
            if err is None:
                raise
            raise err from None


class Tx:
    """``with tx:`` one IMMEDIATE transaction: committed, or rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, *_):
        if not exc_type:
            self.db.execute("COMMIT")
            return False
        try:
            self.db.execute("ROLLBACK")
        except Exception:  # no transaction left to roll back (BEGIN itself failed), or the disk: keep the first error
            pass
        return False


def uri_path(path: Path) -> str:
    """The path for a ``file:`` URI (only %, ? and # mean something there)."""
    return str(path.absolute()).replace("%", "%25").replace("?", "%3f").replace("#", "%23")
