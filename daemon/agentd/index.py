"""The parse index: a cache of what the worklog's bytes parsed into.

One row per worklog path: inode, size, mtime, the byte offset parsed so far,
a fingerprint of that prefix (hashes of its first and last 64 KiB) and the
folded ``parse.State``.  A read of an unchanged file costs one ``stat``; a
file that grew is read from the offset; a rewritten prefix is parsed again.
It is only a cache: deleting it loses nothing (``agentd reindex``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from agentd.parse import PARSER_VERSION, State

CHUNK = 64 * 1024


@dataclass
class Cached:
    inode: int
    size: int
    mtime_ns: int
    offset: int
    head: str
    tail: str
    state: State


def fingerprint(f, offset: int) -> tuple[str, str]:
    f.seek(0)
    head = hashlib.sha256(f.read(min(CHUNK, offset))).hexdigest()
    f.seek(max(0, offset - CHUNK))
    tail = hashlib.sha256(f.read(offset - max(0, offset - CHUNK))).hexdigest()
    return head, tail


class Index:
    def __init__(self, path: Path):
        self.path = path
        self.db: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        if self.db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, version INTEGER, inode INTEGER,"
                " size INTEGER, mtime_ns INTEGER, offset INTEGER, head TEXT, tail TEXT, state TEXT)")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS present (path TEXT, run_id TEXT, seq INTEGER,"
                " PRIMARY KEY (path, run_id, seq)) WITHOUT ROWID")
        return self.db

    def get(self, worklog: Path) -> Cached | None:
        if not self.path.exists():
            return None
        try:
            row = self._open().execute(
                "SELECT version, inode, size, mtime_ns, offset, head, tail, state FROM files WHERE path=?",
                (str(worklog),)).fetchone()
        except sqlite3.DatabaseError:
            return None  # a damaged cache is just a missing one
        if row is None or row[0] != PARSER_VERSION:
            return None
        try:
            state = State.from_dict(json.loads(row[7]))
        except (ValueError, TypeError):
            return None
        return Cached(row[1], row[2], row[3], row[4], row[5], row[6], state)

    def put(self, worklog: Path, c: Cached, replace_present: bool) -> None:
        db = self._open()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?)",
                       (str(worklog), PARSER_VERSION, c.inode, c.size, c.mtime_ns, c.offset, c.head, c.tail,
                        json.dumps(c.state.to_dict())))
            if replace_present:
                db.execute("DELETE FROM present WHERE path=?", (str(worklog),))
            db.executemany("INSERT OR IGNORE INTO present VALUES (?,?,?)",
                           [(str(worklog), r, s) for r, s in c.state.present])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def present(self, worklog: Path) -> set[tuple[str, int]]:
        return {(r, s) for r, s in self._open().execute(
            "SELECT run_id, seq FROM present WHERE path=?", (str(worklog),))}

    def drop(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(str(self.path) + suffix)
            except FileNotFoundError:
                pass
