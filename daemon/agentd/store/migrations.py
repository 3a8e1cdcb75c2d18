"""The store's schema, as append-only migrations recorded in its ``migrations`` table.

Never edit one that has shipped; add a new one at the end.
"""

from __future__ import annotations

from agentd.times import now_iso

MIGRATIONS: list[tuple[str, str]] = [
    ("001_core", """
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE entries (
            run_id TEXT NOT NULL, seq INTEGER NOT NULL, task_id TEXT, status TEXT,
            text TEXT NOT NULL, written_at TEXT NOT NULL, restored_count INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, seq));
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY, task_id TEXT NOT NULL, kind TEXT NOT NULL, title TEXT,
            status TEXT NOT NULL, started_at TEXT NOT NULL, duration_s REAL, exit_code INTEGER,
            input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0, provider TEXT, summary TEXT, run_dir TEXT,
            reason TEXT, defer_until TEXT);
        CREATE INDEX runs_started ON runs (started_at);
        CREATE TABLE exchanges (
            id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, step INTEGER,
            provider TEXT, model TEXT, request TEXT, response TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_tokens INTEGER NOT NULL DEFAULT 0, cache_write_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0, latency_s REAL, error TEXT, created_at TEXT NOT NULL);
        CREATE INDEX exchanges_run ON exchanges (run_id);
        CREATE TABLE steps (
            run_id TEXT NOT NULL, n INTEGER NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL,
            status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            PRIMARY KEY (run_id, n));
        CREATE TABLE ledger (
            day TEXT NOT NULL, run_id TEXT NOT NULL, tokens INTEGER NOT NULL, cost_usd REAL NOT NULL,
            created_at TEXT NOT NULL);
        CREATE INDEX ledger_day ON ledger (day);
        CREATE TABLE passovers (task_id TEXT PRIMARY KEY, count INTEGER NOT NULL);
        CREATE TABLE first_seen (task_id TEXT PRIMARY KEY, at REAL NOT NULL);
    """),
    # Several hosts (or worklogs) may share one state directory: scope runs and entries.
    ("002_scope", """
        ALTER TABLE runs ADD COLUMN host TEXT;
        ALTER TABLE entries ADD COLUMN worklog TEXT;
        ALTER TABLE entries ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
    """),
    # A backend that refused its key, or is rate-limited, holds every agent task back.
    ("003_holds", """
        CREATE TABLE holds (backend TEXT PRIMARY KEY, kind TEXT NOT NULL, until TEXT, fingerprint TEXT,
                            reason TEXT, created_at TEXT NOT NULL);
    """),
    # the worklog's highest seq when a DONE/CANCEL/RETRY line was first seen: entries up to it are older
    ("004_seen_seq", """
        ALTER TABLE first_seen ADD COLUMN seq INTEGER;
    """),
    # A run parked as waiting: for a person's answer to an approval request, or for a usage limit
    # to reset (limit_waits counts the windows it waited through).
    ("005_waiting", """
        CREATE TABLE approvals (
            id TEXT PRIMARY KEY, run_id TEXT NOT NULL, task_id TEXT NOT NULL, call_id TEXT NOT NULL,
            kind TEXT NOT NULL, what TEXT NOT NULL, why TEXT NOT NULL, asked_at TEXT NOT NULL,
            expires_at TEXT NOT NULL, answer TEXT, reason TEXT, answered_at TEXT);
        CREATE INDEX approvals_run ON approvals (run_id);
        ALTER TABLE runs ADD COLUMN limit_waits INTEGER NOT NULL DEFAULT 0;
    """),
    # which version of each worklog's task table (its parse index token) has every id in first_seen
    ("006_tables_seen", """
        CREATE TABLE tables_seen (scope TEXT PRIMARY KEY, token TEXT NOT NULL);
    """),
    # where an approved command runs, when the person's answer named a directory (APPROVE: <id> in <dir>)
    ("007_approval_dir", """
        ALTER TABLE approvals ADD COLUMN dir TEXT;
    """),
    # deadlines kept as a start plus a length, by the wall clock and the boot's own (clock.py), the last
    # wake's clocks (to see a jump), and what re-basing changed (for `agentd status`)
    ("008_deadlines", """
        CREATE TABLE deadlines (kind TEXT NOT NULL, key TEXT NOT NULL, start REAL NOT NULL, length REAL NOT NULL,
                                boot_id TEXT NOT NULL, boot REAL NOT NULL, due TEXT NOT NULL,
                                PRIMARY KEY (kind, key));
        CREATE TABLE clock_seen (id INTEGER PRIMARY KEY, wall REAL NOT NULL, boot_id TEXT NOT NULL, boot REAL NOT NULL);
        CREATE TABLE clock_notes (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, text TEXT NOT NULL);
    """),
    # every run's numbers, as series (store/metrics.py): one row per run, name and source (measured, or
    # claimed by an agent); read by task and name (a task's series, its baseline) and by name alone
    ("009_metrics", """
        CREATE TABLE metrics (
            run TEXT NOT NULL, task TEXT NOT NULL, host TEXT, name TEXT NOT NULL, value REAL NOT NULL,
            unit TEXT NOT NULL DEFAULT '', source TEXT NOT NULL, at TEXT NOT NULL);
        CREATE UNIQUE INDEX metrics_run ON metrics (run, name, source);
        CREATE INDEX metrics_task ON metrics (task, name, at);
        CREATE INDEX metrics_name ON metrics (name, at);
    """),
    # what a CLI agent said of its subscription's usage windows after each run (store/windows.py)
    ("010_windows", """
        CREATE TABLE windows (
            id INTEGER PRIMARY KEY AUTOINCREMENT, provider TEXT NOT NULL, window TEXT NOT NULL,
            used_percent REAL NOT NULL, resets_at REAL NOT NULL, minutes INTEGER, run TEXT, at REAL NOT NULL);
        CREATE INDEX windows_provider ON windows (provider, window, id);
    """),
    # A command or experiment run submitted to Slurm (store/slurm.py): its job, and where it stood when
    # a wake last looked.
    ("011_slurm", """
        CREATE TABLE slurm_jobs (
            run_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, task_id TEXT NOT NULL, host TEXT,
            submitted_at TEXT NOT NULL, state TEXT, polled_at TEXT, note TEXT, exit_code INTEGER,
            ended_at TEXT);
        CREATE INDEX slurm_jobs_task ON slurm_jobs (task_id);
    """),
]


def migrate(db, tx) -> None:
    """Apply the migrations ``db`` has not had yet, each in its own transaction (``tx()``)."""
    db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    done = {r[0] for r in db.execute("SELECT name FROM migrations")}
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        with tx():
            for stmt in sql.split(";"):
                if stmt.strip():
                    db.execute(stmt)
            db.execute("INSERT INTO migrations VALUES (?, ?)", (name, now_iso()))
