"""The parse index: a cache of what the worklog's bytes parsed into.

One row per worklog path (``FILES``): inode, size, mtime, ctime, the byte offset
parsed so far, a fingerprint of that prefix (hashes of its first and last 64 KiB)
and the folded ``parse.State`` but for its tasks; plus, when the file ends in an
unfinished line or entry (or a line that may be the cut-off start of one, see
``markers.hold_back``), that tail's bytes (at most ~64 KiB) and the state with it
folded in (``fold``), so an unchanged file is never read or parsed.  The task
table (``tasktable``) is kept apart (``TASKS``), a column per row, named by a token
the files row gives, and written only when the tasks changed.  The documents are
``marshal`` (twice as fast to decode as JSON, three times to encode; the row names
the Python that wrote them, and any other reads the file again).
It is only a cache: deleting or damaging it loses nothing (``agentd reindex``).
"""

from __future__ import annotations

import json
import marshal
import os
import sqlite3
import sys
import zlib
from pathlib import Path

from agentd.recordtype import Record
from agentd.tasks.task import Task
from agentd.worklog.parse import PARSER_VERSION, State, present_key
from agentd.worklog.tasktable import TaskTable

CHUNK = 64 * 1024
MAX_PARTS = 64
MAX_DELTA = 4096  # task definitions kept as changes to the whole table kept before (``Index._tasks``)
FILES = f"files_v{PARSER_VERSION}_m"  # _m: the states as marshal documents
CODEC = f"marshal{marshal.version}:{sys.implementation.cache_tag}"  # marshal's format may change with Python
TASKS = f"tasks_v{PARSER_VERSION}"
PRESENT = f"present_v{PARSER_VERSION}"
LOST = f"lost_v{PARSER_VERSION}"
LEARNED = f"learned_v{PARSER_VERSION}"


class Cached(Record):
    inode: int
    size: int
    mtime_ns: int
    offset: int
    head: str
    tail: str
    state: "State | bytes"  # as of ``offset``; the marshal document until ``load`` decodes it
    rest: bytes | None = None  # the unfinished tail after ``offset``, if there is one
    ctime_ns: int = 0  # also changes when a tool writes in place and then sets mtime back (rsync -t --inplace)
    tasks: object = None  # a function that loads the state's task table (``Index.get``)
    whole: bytes | None = None  # the state with ``rest`` folded in, and the tasks ``rest`` defined (``fold``)

    def load_whole(self) -> State | None:
        """The state with the unfinished tail folded in, as the read that cached it left it,
        without parsing the tail again; None when there is no such document."""
        if not isinstance(self.whole, bytes):
            return None
        try:
            doc, tail = marshal.loads(self.whole)
            state = State.from_dict(doc)
            state.tasks = self.tasks()
            if state.tasks is None:
                return None
            for d in tail:  # (their duplicate lines are in the document already)
                state.tasks.add(Task(**d))
        except (ValueError, TypeError, AttributeError, EOFError, sqlite3.Error):
            return None
        return state

    def load(self) -> State | None:
        """The state as of ``offset``, decoded once, with its tasks; None when its documents are
        damaged or its tasks are gone."""
        doc = self.state
        if isinstance(doc, bytes):
            try:
                doc = State.from_dict(marshal.loads(doc))
                doc.tasks = self.tasks()
            except (ValueError, TypeError, AttributeError, EOFError, sqlite3.Error):
                doc = None
            if doc is not None and doc.tasks is None:
                doc = None
            self.state = doc
        return doc


def _crc(*docs) -> int:
    """The CRC-32 of a files row's documents (None for one it lacks)."""
    crc = 0
    for doc in docs:
        crc = zlib.crc32(doc if isinstance(doc, bytes) else b"\0", crc)
    return crc


def _doc(doc: bytes, crc: int):
    """A task table document, checked against the checksum written with it: ``marshal`` is not made
    to read damaged bytes (it may crash the process, or read them as other values)."""
    if not isinstance(doc, bytes) or zlib.crc32(doc) != crc:
        raise ValueError("a damaged task table document")
    return marshal.loads(doc)


def fold(state: State, rest: bytes) -> bytes | None:
    """Fold the unfinished tail into ``state``; return what ``Cached.load_whole`` reads back (the
    state but for its tasks, and the definitions of the tasks the tail added or changed), or None
    when marshal can't keep a value."""
    n = len(state.tasks.changed)
    state.feed(rest, final=True)
    state.present = []
    table = state.tasks
    tail = [table.definition(table.find(tid)) for tid in dict.fromkeys(table.changed[n:])]
    try:
        return marshal.dumps((state.to_dict(plain=True, tasks=False), tail))
    except ValueError:
        return None


def encode(state: State) -> bytes | None:
    """The state as the index keeps it, but for its tasks (``Index.put`` writes those apart); None for
    a value marshal can't keep (then nothing is cached)."""
    try:
        return marshal.dumps(state.to_dict(plain=True, tasks=False))
    except ValueError:
        return None


def fingerprint(f, offset: int) -> tuple[str, str]:
    # lazy: hashlib loads OpenSSL (~5 ms); most runs of queue and status never hash
    import hashlib

    f.seek(0)
    head = hashlib.sha256(f.read(min(CHUNK, offset))).hexdigest()
    f.seek(max(0, offset - CHUNK))
    tail = hashlib.sha256(f.read(offset - max(0, offset - CHUNK))).hexdigest()
    return head, tail


def _fid(worklog: Path) -> int:
    """A 56-bit number for a worklog path (the present table's key)."""
    # lazy: hashlib loads OpenSSL (~5 ms); most runs of queue and status never hash
    import hashlib

    return int.from_bytes(hashlib.sha1(str(worklog).encode("utf-8", "surrogateescape")).digest()[:7], "big")


class Index:
    def __init__(self, path: Path):
        self.path = path
        self.db: sqlite3.Connection | None = None
        self.unusable = False  # could not be opened or written: the read is not cached

    def _open(self) -> sqlite3.Connection:
        if self.db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"CREATE TABLE IF NOT EXISTS {FILES} (path TEXT PRIMARY KEY, inode INTEGER, size INTEGER,"
                       " mtime_ns INTEGER, offset INTEGER, head TEXT, tail TEXT, state BLOB, rest BLOB,"
                       " ctime_ns INTEGER, codec TEXT, tasks TEXT, whole BLOB, crc INTEGER)")
            # each file's task table (``TaskTable.parts``), named by a token the files row gives: rewritten
            # only when the tasks changed, not on every read that found new entries
            db.execute(f"CREATE TABLE IF NOT EXISTS {TASKS} (path TEXT, part INTEGER, token TEXT, doc BLOB, crc INTEGER,"
                       " PRIMARY KEY (path, part))")
            # the keys (parse.present_key) of the entries each read saw, one row per read: a first
            # read of a large worklog writes one blob instead of a row per entry
            db.execute(f"CREATE TABLE IF NOT EXISTS {PRESENT} (fid INTEGER, part INTEGER, keys BLOB,"
                       " PRIMARY KEY (fid, part))")
            # the last answer to "which of agentd's entries has this worklog lost", and what it held for
            db.execute(f"CREATE TABLE IF NOT EXISTS {LOST} (fid INTEGER PRIMARY KEY, stamp TEXT, keys TEXT)")
            # the plain rows' scores and order with this host's history (``queue.learned``), worked out
            # once per change of the tasks or the history, not on every `queue` (a million rows: ~2 s)
            db.execute(f"CREATE TABLE IF NOT EXISTS {LEARNED} (path TEXT PRIMARY KEY, sig TEXT, totals BLOB, ord BLOB)")
            self.db = db
        return self.db

    def _safely(self, fn, default):
        """Run fn(db); a damaged cache file is deleted and treated as empty.  A cache that can't
        be opened or written (a full, read-only or unwritable state dir) is no cache: reads go on."""
        for attempt in (1, 2):
            try:
                return fn(self._open())
            except (sqlite3.OperationalError, OSError):
                self.unusable = True
                return default
            except sqlite3.DatabaseError:
                self.drop()
        return default

    def get(self, worklog: Path) -> Cached | None:
        if not self.path.exists():
            return None
        row = self._safely(lambda db: db.execute(
            f"SELECT inode, size, mtime_ns, offset, head, tail, state, rest, ctime_ns, codec, tasks, whole, crc "
            f"FROM {FILES} WHERE path=?", (str(worklog),)).fetchone(), None)
        if row is None or row[9] != CODEC or not isinstance(row[6], bytes) or _crc(row[6], row[7], row[11]) != row[12]:
            return None  # (damaged documents are not decoded: see ``_doc``)
        token = row[10]
        return Cached(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7] or None, row[8] or 0,
                      lambda: self._tasks(str(worklog), token), row[11])

    def _tasks(self, path: str, token: str):
        """The task table kept under ``token``, a part at a time; None when it is not there whole.

        A table is kept whole, or as the changes since a table kept whole: a row with part -1
        holding (that table's token, the definitions changed since it)."""
        def load(db):
            db.execute("BEGIN")  # (one snapshot: a writer may replace the whole table meanwhile)
            try:
                delta = db.execute(f"SELECT doc, crc FROM {TASKS} WHERE path=? AND token=? AND part=-1",
                                   (path, token)).fetchone()
                base, changed = _doc(*delta) if delta else (token, None)
                rows = db.execute(f"SELECT doc, crc FROM {TASKS} WHERE path=? AND token=? AND part>=0 "
                                  "ORDER BY part", (path, base))
                t = TaskTable.from_parts(_doc(doc, crc) for doc, crc in rows)
            finally:
                db.execute("COMMIT")
            if changed is not None:
                t.apply(changed)
                t.changed, t.base, t.delta = [], base, [d["id"] for d in changed]
            t.token = token
            return t

        try:
            return self._safely(load, None)
        except Exception:  # noqa: BLE001 (a damaged copy, whatever it raises: the worklog is read again)
            return None

    def put(self, worklog: Path, c: Cached, replace_present: bool, present: list, tasks, whole=None) -> None:
        """Record a read: ``c`` with its state already encoded (``encode``), its ``tasks`` (a
        TaskTable, written unless the index has it already), and ``present``, the keys of the
        entries it saw (``State.present``).  ``whole()``, called once the table is written, folds
        the unfinished tail in and gives ``Cached.whole``."""
        if not isinstance(c.state, bytes):
            return  # a state marshal could not keep: this read is not cached
        fid, path = _fid(worklog), str(worklog)
        keys = b"\n".join(present)
        folded: list = []  # ``whole()`` runs once, even if the write is tried again

        def write(db):
            db.execute("BEGIN IMMEDIATE")
            try:
                token, wrote, base, delta = tasks.token, None, tasks.base, tasks.delta
                if token is None or tasks.changed or db.execute(
                        f"SELECT 1 FROM {TASKS} WHERE path=? AND token=? LIMIT 1", (path, token)).fetchone() is None:
                    token, wrote = os.urandom(8).hex(), list(tasks.changed)
                    base = tasks.base or tasks.token
                    delta = list(dict.fromkeys(tasks.delta + wrote))
                    if base is not None and len(delta) <= MAX_DELTA and db.execute(
                            f"SELECT 1 FROM {TASKS} WHERE path=? AND token=? AND part=0", (path, base)).fetchone():
                        # the whole table kept is still there: only the definitions changed since
                        doc = marshal.dumps((base, list(map(tasks.definition, tasks.rows_of(delta)))))
                        db.execute(f"DELETE FROM {TASKS} WHERE path=? AND token!=?", (path, base))
                        db.execute(f"INSERT INTO {TASKS} VALUES (?,?,?,?,?)", (path, -1, token, doc, zlib.crc32(doc)))
                    else:
                        base, delta = None, []
                        db.execute(f"DELETE FROM {TASKS} WHERE path=?", (path,))
                        for n, part in enumerate(tasks.parts()):  # one column's bytes at a time
                            doc = marshal.dumps(part)
                            db.execute(f"INSERT INTO {TASKS} VALUES (?,?,?,?,?)", (path, n, token, doc, zlib.crc32(doc)))
                if whole is not None and not folded:
                    folded.append(whole())
                whole_doc = folded[0] if folded else None
                row = (str(worklog), c.inode, c.size, c.mtime_ns, c.offset, c.head, c.tail, c.state, c.rest,
                       c.ctime_ns, CODEC, token, whole_doc, _crc(c.state, c.rest, whole_doc))
                db.execute(f"INSERT OR REPLACE INTO {FILES} VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
                if replace_present:
                    db.execute(f"DELETE FROM {PRESENT} WHERE fid=?", (fid,))
                if keys:
                    parts, last = db.execute(f"SELECT count(*), max(part) FROM {PRESENT} WHERE fid=?",
                                             (fid,)).fetchone()
                    if parts >= MAX_PARTS:  # many small reads: merge them into one row
                        blobs = [b for (b,) in db.execute(f"SELECT keys FROM {PRESENT} WHERE fid=?", (fid,))]
                        db.execute(f"DELETE FROM {PRESENT} WHERE fid=?", (fid,))
                        db.execute(f"INSERT INTO {PRESENT} VALUES (?,?,?)", (fid, 0, b"\n".join(blobs + [keys])))
                    else:
                        db.execute(f"INSERT INTO {PRESENT} VALUES (?,?,?)", (fid, (last or 0) + 1, keys))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            if wrote is not None:  # the ids a folded tail added since stay changed: the copy lacks them
                tasks.parent, tasks.token, tasks.changed = (tasks.token, wrote), token, tasks.changed[len(wrote):]
                tasks.base, tasks.delta = base, delta

        try:
            self._safely(write, None)
        except ValueError:  # a value marshal can't keep: this read is not cached
            pass

    def learned(self, worklog: Path, sig: str) -> tuple[bytes, bytes] | None:
        """(totals, order) kept for this worklog under ``sig`` (``queue.learned.signature``), or None."""
        if not self.path.exists():
            return None
        row = self._safely(lambda db: db.execute(f"SELECT totals, ord FROM {LEARNED} WHERE path=? AND sig=?",
                                                 (str(worklog), sig)).fetchone(), None)
        return (row[0], row[1]) if row and isinstance(row[0], bytes) and isinstance(row[1], bytes) else None

    def keep_learned(self, worklog: Path, sig: str, totals: bytes, order: bytes) -> None:
        self._safely(lambda db: db.execute(f"INSERT OR REPLACE INTO {LEARNED} (path, sig, totals, ord) "
                                           "VALUES (?, ?, ?, ?)", (str(worklog), sig, totals, order)), None)

    def missing(self, worklog: Path, keys: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """Which of these (run id, seq) entries the worklog's last read did not see.

        Only answered while the index's record of that read is the file as it is now: when
        the last read could not be recorded (a full or read-only state dir), or the file changed
        since, the answer is "none lost" for now, never a guess that would append copies again.
        """
        def query(db):
            row = db.execute(f"SELECT inode, size, mtime_ns, ctime_ns FROM {FILES} WHERE path=?",
                             (str(worklog),)).fetchone()
            try:
                st = os.lstat(worklog)
            except OSError:
                return []
            if row is None or tuple(row) != (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns):
                return []
            seen: set = set()
            for (blob,) in db.execute(f"SELECT keys FROM {PRESENT} WHERE fid=?", (_fid(worklog),)):
                seen.update(blob.split(b"\n"))
            return [k for k in keys if present_key(k[0], k[1]) not in seen]

        return self._safely(query, [])

    def lost(self, worklog: Path, stamp: str, keys) -> list[tuple[str, int]]:
        """``missing(worklog, keys())``, remembered while ``stamp`` (the version of the worklog
        the last read was, and the store's last seq) stays the same, so an unchanged worklog
        costs no lookup.  An empty stamp: look, and remember nothing."""
        if not stamp:
            return self.missing(worklog, keys())
        fid = _fid(worklog)
        row = self._safely(lambda db: db.execute(f"SELECT stamp, keys FROM {LOST} WHERE fid=?", (fid,)).fetchone(),
                           None)
        if row is not None and row[0] == stamp:
            try:
                return [(r, q) for r, q in json.loads(row[1])]
            except (ValueError, TypeError):
                pass
        found = self.missing(worklog, keys())
        self._safely(lambda db: db.execute(f"INSERT OR REPLACE INTO {LOST} VALUES (?,?,?)",
                                           (fid, stamp, json.dumps(found))), None)
        return found

    def drop(self) -> None:
        if self.db is not None:
            try:
                self.db.close()
            except sqlite3.Error:
                pass
            self.db = None
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(str(self.path) + suffix)
            except OSError:  # gone already, or a read-only state dir: nothing to drop
                pass
