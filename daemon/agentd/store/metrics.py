"""The ``metrics`` table (migration 009): every run's numbers as series.

Functions over the ``Store`` (or a bare connection): a run's metrics added in one transaction, a series
by name (and task, host), the values a gate's baseline is the median of (the last passing runs of a task
on a host: ``runs.status`` is ``done``), and the names kept.  A metric here is anything with ``name``,
``value``, ``unit`` and ``source`` (``metrics/metric.py``'s ``Metric``), or such a tuple.
"""

from __future__ import annotations

import math

from agentd.store.storedb import Tx
from agentd.times import now_iso

PASSING = "done"
SERIES_LIMIT = 10_000


def _db(store):
    """(connection, transaction maker) of a Store or of a bare sqlite3 connection."""
    db = getattr(store, "db", store)
    return db, (store.tx if hasattr(store, "tx") else (lambda: Tx(db)))


def _dicts(cursor) -> list[dict]:
    """The cursor's rows as dicts, whatever the connection's row factory."""
    cols = [d[0] for d in cursor.description]
    return [dict(zip(cols, tuple(r))) for r in cursor.fetchall()]


def _row(m) -> tuple:
    name, value, unit, source = (m if isinstance(m, tuple) else (m.name, m.value, m.unit, m.source))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"metric {name!r}: {value!r} is not a finite number")
    return name, float(value), unit or "", source


def add(store, run: str, task: str, host: str | None, metrics, at: str | None = None) -> int:
    """Keep a run's metrics, all or none (one transaction); the same run, name and source again
    replaces the row.  Returns how many were written."""
    rows = [_row(m) for m in metrics]
    if not rows:
        return 0
    db, tx = _db(store)
    at = at or now_iso()
    with tx():
        db.executemany("INSERT OR REPLACE INTO metrics (run, task, host, name, value, unit, source, at)"
                       " VALUES (?,?,?,?,?,?,?,?)", [(run, task, host, n, v, u, s, at) for n, v, u, s in rows])
    return len(rows)


def of_run(store, run: str) -> list[dict]:
    db, _ = _db(store)
    return _dicts(db.execute(
        "SELECT run, task, host, name, value, unit, source, at FROM metrics WHERE run=? ORDER BY rowid", (run,)))


def series(store, name: str, task: str | None = None, host: str | None = None, limit: int = SERIES_LIMIT,
           source: str | None = None) -> list[dict]:
    """The last ``limit`` points of a metric, oldest first, each with its run, task, host, time and the
    run's status (None when the run has no row)."""
    db, _ = _db(store)
    where, args = ["m.name=?"], [name]
    for column, value in (("m.task", task), ("m.host", host), ("m.source", source)):
        if value is not None:
            where.append(f"{column}=?")
            args.append(value)
    rows = _dicts(db.execute(
        "SELECT m.run, m.task, m.host, m.name, m.value, m.unit, m.source, m.at, r.status FROM metrics m"
        " LEFT JOIN runs r ON r.run_id = m.run WHERE " + " AND ".join(where) +
        " ORDER BY m.at DESC, m.rowid DESC LIMIT ?", [*args, max(0, int(limit))]))
    return rows[::-1]


def baseline_values(store, task: str, host: str | None, name: str, window: int = 10,
                    before_run: str | None = None, source: str = "measured") -> list[float]:
    """The metric's values in the last ``window`` passing runs of ``task`` on ``host``, oldest first:
    what a gate's ``baseline`` is the median of (``before_run``: leave that run out, the one being judged)."""
    db, _ = _db(store)
    rows = db.execute(
        "SELECT m.value FROM metrics m JOIN runs r ON r.run_id = m.run"
        " WHERE m.task=? AND m.name=? AND m.source=? AND r.status=? AND (m.host IS ? OR m.host=?)"
        " AND m.run IS NOT ? ORDER BY m.at DESC, m.rowid DESC LIMIT ?",
        (task, name, source, PASSING, host, host, before_run, max(0, int(window)))).fetchall()
    return [r[0] for r in reversed(rows)]


def names(store, task: str | None = None) -> list[dict]:
    """Every metric name kept (for a task, or all), with its point count and last time, by name."""
    db, _ = _db(store)
    sql = "SELECT name, count(*) AS points, max(at) AS last FROM metrics"
    args: list = []
    if task is not None:
        sql, args = sql + " WHERE task=?", [task]
    return _dicts(db.execute(sql + " GROUP BY name ORDER BY name", args))
