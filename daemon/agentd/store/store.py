"""The SQLite store in the state directory: runs, entries, exchanges, steps, ledger.

Unlike the worklog index (a cache, ``index.py``) this is agentd's memory:
its copy of every entry it wrote, every run, every LLM exchange, the agent's
checkpointed steps and the daily budget ledger.  Its schema is built by the
append-only migrations in ``migrations.py``.
"""

from __future__ import annotations

import json
import sqlite3

from agentd.errors import StateError, WorklogError
from agentd.store import clock
from agentd.store.migrations import migrate
from agentd.store.storedb import Conn, Tx, state_error, uri_path
from agentd.times import now_iso
from pathlib import Path
from typing import Any, Iterable

RUN_COLUMNS = ("run_id", "task_id", "kind", "title", "status", "started_at", "duration_s", "exit_code",
               "input_tokens", "output_tokens", "cost_usd", "provider", "summary", "run_dir", "reason",
               "defer_until", "host", "limit_waits")
MAX_SEQ = 10**15  # entries.MAX_SEQ: the reader ignores a seq at or above it
# The highest seq found in a worklog that the counter takes as its floor: above it a forged or
# mistyped seq could leave agentd no seq to write that readers would accept.  A billion entries
# of room is more than a host ever writes.
MAX_FLOOR = MAX_SEQ - 10**9
MAX_RESTORES = 3  # times one lost entry is appended again at most; past that it lives in the store only




class Store:
    """``readonly``: the state directory can't be written (full, read-only, denied); the store was
    opened for reading, so read-only commands still answer, and writes raise StateError."""

    def __init__(self, path: Path):
        self.path = path
        self.readonly = False
        self.write_failed: Exception | None = None  # a write skipped so that the worklog still gets an entry
        self._seq_memo = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.db = self._connect(f"file:{uri_path(path)}", path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except (StateError, OSError) as e:
            err = e if isinstance(e, StateError) else state_error(path, e)
            if err is None:
                raise
            if not path.is_file():
                raise err from None
            self.readonly, self.write_failed = True, err
            self.db = self._read_only(path, err)

    @classmethod
    def read_only(cls, path: Path) -> "Store":
        """The store at ``path`` opened for reading only: never created, written or migrated (`agentd report`)."""
        self = cls.__new__(cls)
        self.path, self.readonly, self._seq_memo = path, True, 0
        self.write_failed = StateError(f"{path} is open for reading only")
        self.db = self._read_only(path, self.write_failed)
        return self

    @staticmethod
    def _connect(uri: str, path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(uri, timeout=30, isolation_level=None, uri=True, factory=Conn)
        db.agentd_path = path
        db.row_factory = sqlite3.Row
        return db

    def _read_only(self, path: Path, err: Exception) -> sqlite3.Connection:
        """Open the store for reading only; ``immutable`` where even that needs a write (a WAL
        store on a read-only file system, whose -shm file can't be made).  A store file with no
        tables yet (the first write of a new one failed) answers as an empty store would."""
        for query in ("?mode=ro", "?mode=ro&immutable=1"):
            try:
                db = self._connect(f"file:{uri_path(path)}{query}", path)
                if db.execute("SELECT 1 FROM sqlite_master WHERE name='migrations'").fetchone() is None:
                    db.close()
                    db = self._connect("file::memory:", path)
                    migrate(db, lambda: Tx(db))
                    db.execute("PRAGMA query_only=1")  # a write fails as on the read-only file, naming it
                db.execute("SELECT count(*) FROM migrations").fetchone()
                return db
            except Exception:
                continue
        raise err from None

    def _migrate(self) -> None:
        migrate(self.db, self.tx)

    def tx(self):
        return Tx(self.db)

    def close(self) -> None:
        self.db.close()

    # -- sequence numbers -------------------------------------------------
    def next_seq(self, floor: int = 0) -> int:
        """As ``_next_seq``; when the store can't be written, the next seq is worked out without
        recording it (``write_failed`` says why), so the entry still reaches the worklog, whose
        highest seq is the next floor.  A finding must never be lost because the state dir is full:
        without it the next wake would run the task again."""
        try:
            seq = self._next_seq(floor)
        except StateError as e:
            self.write_failed = e
            seq = max(self._seq_memo, self.last_seq(), floor if 0 <= floor <= MAX_FLOOR else 0) + 1
        self._seq_memo = seq
        return seq

    def _next_seq(self, floor: int = 0) -> int:
        """A sequence number above every one used so far and above ``floor`` (the worklog's
        highest seq), which is taken only while it leaves room (``MAX_FLOOR``): the store never
        adopts a seq it could not write above."""
        with self.tx():
            row = self.db.execute("SELECT value FROM counters WHERE name='seq'").fetchone()
            counter = row[0] if row else 0
            if not 0 <= counter <= MAX_FLOOR:  # pushed up by an older release that took any seq
                counter = self.db.execute("SELECT COALESCE(max(seq), 0) FROM entries WHERE seq <= ?",
                                          (MAX_FLOOR,)).fetchone()[0]
            seq = max(counter, floor if 0 <= floor <= MAX_FLOOR else 0) + 1
            if seq >= MAX_SEQ:
                raise WorklogError(f"agentd has numbered {seq - 1} entries and has no seq left below {MAX_SEQ}")
            self.db.execute("INSERT OR REPLACE INTO counters VALUES ('seq', ?)", (seq,))
        return seq

    # -- agentd's copy of every entry -------------------------------------
    def save_entry(self, run_id: str, seq: int, task_id: str, status: str, text: str, worklog: str = "") -> None:
        """agentd's copy of an entry.  When the store can't be written the copy is skipped
        (``write_failed``): the entry itself must still reach the worklog."""
        try:
            self._save_entry(run_id, seq, task_id, status, text, worklog)
        except StateError as e:
            self.write_failed = e

    def _save_entry(self, run_id: str, seq: int, task_id: str, status: str, text: str, worklog: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO entries (run_id, seq, task_id, status, text, written_at, worklog)"
                        " VALUES (?,?,?,?,?,?,?)", (run_id, seq, task_id, status, text, now_iso(), worklog))

    def entries(self, worklog: str | None = None) -> list[sqlite3.Row]:
        """agentd's copies, oldest first; with ``worklog``, only those written to that file and not archived."""
        if worklog is None:
            return self.db.execute("SELECT * FROM entries ORDER BY seq").fetchall()
        return self.db.execute("SELECT * FROM entries WHERE worklog=? AND archived=0 ORDER BY seq",
                               (worklog,)).fetchall()

    def archive_entries(self, worklog: str, scope: str = "") -> int:
        """A new worklog at this path starts a new history: don't restore the old one into it, and
        forget when its DONE/CANCEL/RETRY lines were seen (``scope``: taskstate.worklog_scope; names
        from before they carried the worklog go too)."""
        if scope:
            self.db.execute("DELETE FROM first_seen WHERE task_id LIKE ? OR task_id = ? OR task_id LIKE 'cmd:done:%'"
                            " OR task_id LIKE 'cmd:cancel:%' OR task_id LIKE 'cmd:retry:%'",
                            (f"cmd:{scope}:%", f"wl:{scope}"))
        return self.db.execute("UPDATE entries SET archived=1 WHERE worklog=?", (worklog,)).rowcount

    def last_seq_by(self, worklog: str, when_iso: str) -> int | None:
        """The highest seq agentd had written to that worklog before that time's second (times are
        whole seconds, so an entry of the same second may be the later one), or None."""
        row = self.db.execute("SELECT max(seq) FROM entries WHERE worklog=? AND written_at < ?",
                              (worklog, when_iso)).fetchone()
        return row[0]

    def entry_keys(self, worklog: str) -> list[tuple[str, int]]:
        """(run id, seq) of agentd's copies written to that worklog and not archived."""
        return [(r, q) for r, q in self.db.execute("SELECT run_id, seq FROM entries WHERE worklog=? AND archived=0",
                                                   (worklog,))]

    def latest_entries(self, worklog: str) -> list[tuple[str, str, int]]:
        """(task id, run id, seq) of each task's latest copy written to that worklog, not archived."""
        return self.db.execute("SELECT task_id, run_id, max(seq) FROM entries WHERE worklog=? AND archived=0 "
                               "AND task_id IS NOT NULL GROUP BY task_id", (worklog,)).fetchall()

    def last_seq(self) -> int:
        row = self.db.execute("SELECT value FROM counters WHERE name='seq'").fetchone()
        return row[0] if row else 0

    def entry_text(self, run_id: str, seq: int) -> str | None:
        row = self.db.execute("SELECT text FROM entries WHERE run_id=? AND seq=?", (run_id, seq)).fetchone()
        return row[0] if row else None

    def restorable(self, keys, most: int = MAX_RESTORES) -> list[tuple[str, int]]:
        """Of these (run id, seq) entries, those appended again fewer than ``most`` times."""
        keys = list(keys)
        done = {(r, q) for r, q in self.db.execute("SELECT run_id, seq FROM entries WHERE restored_count >= ?",
                                                   (most,))}
        return [k for k in keys if (k[0], k[1]) not in done]

    def mark_restored(self, run_id: str, seq: int) -> None:
        self.db.execute("UPDATE entries SET restored_count = restored_count + 1 WHERE run_id=? AND seq=?",
                        (run_id, seq))

    # -- runs ---------------------------------------------------------------
    def start_run(self, **fields: Any) -> None:
        cols = [c for c in RUN_COLUMNS if c in fields]
        self.db.execute(f"INSERT INTO runs ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                        [fields[c] for c in cols])

    def update_run(self, run_id: str, **fields: Any) -> None:
        bad = set(fields) - set(RUN_COLUMNS)
        if bad:
            raise ValueError(f"unknown run columns {bad}")
        sets = ",".join(f"{c}=?" for c in fields)
        self.db.execute(f"UPDATE runs SET {sets} WHERE run_id=?", [*fields.values(), run_id])
        if "defer_until" in fields or fields.get("status") == "failed":
            at = clock.now()
            if "defer_until" in fields:
                clock.keep(self.db, "run", run_id, fields["defer_until"], at)
            if fields.get("status") == "failed":  # where its retry's backoff starts
                clock.keep(self.db, "failed", run_id, clock.iso(at.wall), at)

    def add_usage(self, run_id: str, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
        self.db.execute("UPDATE runs SET input_tokens=input_tokens+?, output_tokens=output_tokens+?,"
                        " cost_usd=cost_usd+? WHERE run_id=?", (input_tokens, output_tokens, cost_usd, run_id))

    def runs(self, limit: int | None = None, host: str | None = None, task: str | None = None,
             status: str | None = None, since: str | None = None) -> list[dict]:
        """Runs, newest first (``since``: those started at or after that ISO time)."""
        sql, where, args = "SELECT * FROM runs", [], []
        for clause, value in (("(host=? OR host IS NULL)", host), ("task_id=?", task), ("status=?", status),
                              ("started_at>=?", since)):
            if value is not None:
                where, args = [*where, clause], [*args, value]
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY rowid DESC"  # the order they started in, whatever the clock said
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [dict(r) for r in self.db.execute(sql, args)]

    def run(self, run_id: str) -> dict | None:
        """A run by id or by a unique prefix of its id (like git); None if unknown or ambiguous."""
        rows = self.matching_runs(run_id)
        return rows[0] if len(rows) == 1 else None

    def matching_runs(self, run_id: str) -> list[dict]:
        row = self.db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is not None:
            return [dict(row)]
        prefix = run_id.replace("\\", "").replace("%", "").replace("_", "\\_")
        return [dict(r) for r in self.db.execute("SELECT * FROM runs WHERE run_id LIKE ? ESCAPE '\\' LIMIT 20",
                                                 (prefix + "%",))]

    def interrupted_runs(self, host: str | None = None) -> list[dict]:
        return [dict(r) for r in self.db.execute(
            "SELECT * FROM runs WHERE status='running' AND (host=? OR host IS NULL OR ? IS NULL)"
            " ORDER BY rowid", (host, host))]

    # -- LLM exchanges --------------------------------------------------------
    def add_exchange(self, run_id: str, **fields: Any) -> None:
        fields = {"created_at": now_iso(), **fields}
        for k in ("request", "response"):
            if k in fields and not isinstance(fields[k], (str, type(None))):
                fields[k] = json.dumps(fields[k], default=str)
        cols = ["run_id", *fields]
        self.db.execute(f"INSERT INTO exchanges ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                        [run_id, *fields.values()])

    def exchanges(self, run_id: str) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM exchanges WHERE run_id=? ORDER BY id", (run_id,))]

    # -- agent checkpoints ----------------------------------------------------
    def put_step(self, run_id: str, n: int, kind: str, payload: Any, status: str) -> None:
        t = now_iso()
        self.db.execute(
            "INSERT INTO steps VALUES (?,?,?,?,?,?,?) ON CONFLICT(run_id, n) DO UPDATE SET"
            " kind=excluded.kind, payload=excluded.payload, status=excluded.status, updated_at=excluded.updated_at",
            (run_id, n, kind, json.dumps(payload), status, t, t))

    def steps(self, run_id: str) -> list[dict]:
        out = []
        for r in self.db.execute("SELECT * FROM steps WHERE run_id=? ORDER BY n", (run_id,)):
            d = dict(r)
            d["payload"] = json.loads(d["payload"])
            out.append(d)
        return out

    # -- budget ledger ---------------------------------------------------------
    def ledger_add(self, day: str, run_id: str, tokens: int, cost_usd: float) -> None:
        self.db.execute("INSERT INTO ledger VALUES (?,?,?,?,?)", (day, run_id, tokens, cost_usd, now_iso()))

    def ledger_day(self, day: str) -> tuple[int, float]:
        row = self.db.execute("SELECT COALESCE(SUM(tokens),0), COALESCE(SUM(cost_usd),0) FROM ledger WHERE day=?",
                              (day,)).fetchone()
        return int(row[0]), float(row[1])

    def waiting_runs(self, host: str | None = None) -> list[dict]:
        """Runs parked as waiting (for an approval, or for a usage limit to reset), oldest first."""
        return [dict(r) for r in self.db.execute(
            "SELECT * FROM runs WHERE status='waiting' AND (host=? OR host IS NULL OR ? IS NULL)"
            " ORDER BY rowid", (host, host))]

    # -- approval requests -------------------------------------------------------
    def add_approval(self, **fields: Any) -> None:
        cols = list(fields)
        self.db.execute(f"INSERT INTO approvals ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                        [fields[c] for c in cols])
        clock.keep(self.db, "approval", fields["id"], fields["expires_at"])

    def approvals(self, run_id: str | None = None, pending: bool = False) -> list[dict]:
        sql, args = "SELECT * FROM approvals WHERE 1=1", []
        if run_id is not None:
            sql, args = sql + " AND run_id=?", [run_id]
        if pending:
            sql += " AND answer IS NULL"
        return [dict(r) for r in self.db.execute(sql + " ORDER BY rowid", args)]  # as asked, whatever the clock said

    def approval(self, approval_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM approvals WHERE id=?", (approval_id,)).fetchone()
        return dict(row) if row is not None else None

    def answer_approval(self, approval_id: str, answer: str, reason: str, dir: str | None = None) -> None:
        """Record the answer once: a later line can't change what a resumed run was told."""
        self.db.execute("UPDATE approvals SET answer=?, reason=?, answered_at=?, dir=? WHERE id=? AND answer IS NULL",
                        (answer, reason, now_iso(), dir or None, approval_id))

    def asked_in(self, run_id: str, approval_id: str) -> int | None:
        """The seq of the run's first "waiting" entry that names the request: what a person was shown."""
        row = self.db.execute("SELECT MIN(seq) FROM entries WHERE run_id=? AND status='waiting' AND instr(text, ?) > 0",
                              (run_id, approval_id + ":")).fetchone()
        return row[0] if row else None

    # -- backend holds -----------------------------------------------------------
    def set_hold(self, backend: str, kind: str, reason: str, until: str | None = None,
                 fingerprint: str | None = None) -> None:
        self.db.execute("INSERT OR REPLACE INTO holds VALUES (?,?,?,?,?,?)",
                        (backend, kind, until, fingerprint, reason, now_iso()))
        clock.keep(self.db, "hold", backend, until)

    def clear_hold(self, backend: str) -> None:
        self.db.execute("DELETE FROM holds WHERE backend=?", (backend,))
        self.db.execute("DELETE FROM deadlines WHERE kind='hold' AND key=?", (backend,))

    def holds(self) -> dict[str, dict]:
        return {r["backend"]: dict(r) for r in self.db.execute("SELECT * FROM holds")}

    # -- scoring memory ----------------------------------------------------------
    def passovers(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.db.execute("SELECT task_id, count FROM passovers")}

    def set_passovers(self, counts: dict[str, int]) -> None:
        with self.tx():
            self.db.execute("DELETE FROM passovers")
            self.db.executemany("INSERT INTO passovers VALUES (?,?)", [(k, v) for k, v in counts.items() if v])

    def seen(self, keys: Iterable[str]) -> dict[str, tuple[float, int | None]]:
        """(when, seq) agentd first saw each of these task ids and lines, for those it has seen."""
        keys = list(dict.fromkeys(keys))
        out: dict = {}
        for n in range(0, len(keys), 500):
            part = keys[n:n + 500]
            out.update((r[0], (r[1], r[2])) for r in self.db.execute(
                f"SELECT task_id, at, seq FROM first_seen WHERE task_id IN ({','.join('?' * len(part))})", part))
        return out

    def seen_legacy(self) -> bool:
        """Whether a DONE/CANCEL/RETRY line was recorded under a name from before names carried the worklog."""
        return self.db.execute("SELECT 1 FROM first_seen WHERE task_id LIKE 'cmd:done:%' OR task_id LIKE 'cmd:cancel:%'"
                               " OR task_id LIKE 'cmd:retry:%' LIMIT 1").fetchone() is not None

    def tasks_seen(self, scope: str) -> str | None:
        """The version (index token) of worklog ``scope``'s task table whose every id is recorded."""
        row = self.db.execute("SELECT token FROM tables_seen WHERE scope=?", (scope,)).fetchone()
        return row[0] if row else None

    def record_seen(self, rows: Iterable[tuple], scope: str = "", token: str | None = None) -> None:
        """Record first sights, (id, when, seq) each (an id recorded before keeps its own); with
        ``token``: every task id of worklog ``scope``'s table of that version is now recorded.
        A full or read-only state dir: nothing is recorded now (``write_failed``), the next call tries again."""
        try:
            with self.tx():
                self.db.executemany("INSERT OR IGNORE INTO first_seen (task_id, at, seq) VALUES (?,?,?)", rows)
                if token:
                    self.db.execute("INSERT OR REPLACE INTO tables_seen VALUES (?,?)", (scope, token))
        except StateError as e:
            self.write_failed = e
