"""The ``windows`` table (migration 010): what a CLI agent said of its subscription's usage windows.

One row per window per run (``runners.cli_windows.Reading``), kept for ``KEEP`` rows a provider: the
latest says where each window stands (``latest``); the rows before it, how much of a window one run
takes (``per_run``).  A store that predates the table (opened read-only, never migrated) has no
readings, said as none.
"""

from __future__ import annotations

import sqlite3

KEEP = 500  # rows kept per provider


def add(store, provider: str, run: str | None, readings, at: float) -> None:
    """Keep a run's readings (one transaction), dropping the provider's oldest past ``KEEP``."""
    if not readings or store.readonly:  # (read-only: a full disk, maybe an old store without the table)
        return
    with store.tx():
        store.db.executemany(
            "INSERT INTO windows (provider, window, used_percent, resets_at, minutes, run, at) VALUES (?,?,?,?,?,?,?)",
            [(provider, r.window, r.used_percent, r.resets_at, r.minutes, run, at) for r in readings])
        store.db.execute("DELETE FROM windows WHERE provider=? AND id <= (SELECT id FROM windows WHERE provider=? "
                         "ORDER BY id DESC LIMIT 1 OFFSET ?)", (provider, provider, KEEP))


def history(store, provider: str) -> dict[str, list[tuple]]:
    """Each window's readings, oldest first: (used_percent, resets_at, at, run, minutes)."""
    try:
        rows = store.db.execute("SELECT window, used_percent, resets_at, at, run, minutes FROM windows "
                                "WHERE provider=? ORDER BY id", (provider,)).fetchall()
    except sqlite3.OperationalError:  # no such table: a store not yet migrated, read-only
        return {}
    got: dict[str, list] = {}
    for w, used, reset, at, run, minutes in rows:
        got.setdefault(w, []).append((float(used), float(reset), float(at), run, minutes))
    return got
