"""``agentd metrics``: the metric names the store keeps, or one metric's series, as text, JSON or CSV.

Read-only: the store is opened with SQLite's ``mode=ro`` (``immutable`` where even reading would need a
write, as on a read-only directory), so it is never written, created or migrated; a store with no
``metrics`` table yet (older than migration 009) holds no metrics.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import sqlite3
from pathlib import Path

from agentd.errors import AgentdError
from agentd.escapes import safe
from agentd.store import metrics as store_metrics
from agentd.store.storedb import uri_path

POINT_KEYS = ("name", "value", "unit", "source", "run", "task", "host", "at", "status")
NAME_KEYS = ("name", "points", "last_value", "unit", "source", "last_at")


class UnknownMetric(AgentdError):
    """NAME is not a metric the store keeps (exit 1)."""


def open_read_only(path: Path) -> sqlite3.Connection | None:
    """The store at ``path`` for reading only, or None when there is none or it has no metrics yet."""
    if not path.is_file():
        return None
    for query in ("?mode=ro", "?mode=ro&immutable=1"):
        try:
            db = sqlite3.connect(f"file:{uri_path(path)}{query}", uri=True)
        except sqlite3.Error:
            continue
        try:
            if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='metrics'").fetchone():
                return db
            db.close()
            return None
        except sqlite3.Error:  # a WAL store in a directory that can't be written: try immutable
            db.close()
    return None


def listing(db, task: str | None, host: str | None, limit: int | None) -> list[dict]:
    out = []
    for n in store_metrics.names(db, task=task):
        points = (store_metrics.series(db, n["name"], task=task, host=host) if host is not None
                  else store_metrics.series(db, n["name"], task=task, limit=1))
        if not points:
            continue
        last = points[-1]
        out.append({"name": n["name"], "points": len(points) if host is not None else n["points"],
                    "last_value": last["value"], "unit": last["unit"], "source": last["source"],
                    "last_at": last["at"]})
    return out[:limit] if limit is not None else out


def points(db, name: str, task: str | None, host: str | None, limit: int | None) -> list[dict]:
    """NAME's series, oldest first; UnknownMetric (with a did-you-mean) when the store has no such name."""
    names = [n["name"] for n in store_metrics.names(db)]
    if name not in names:
        near = difflib.get_close_matches(name, names, 1, 0.6)
        hint = f"; did you mean {near[0]}?" if near else ""
        raise UnknownMetric(f"no metric {safe(name, 80)!r}{hint} (`agentd metrics` lists the "
                            f"{len(names)} it keeps)")
    rows = store_metrics.series(db, name, task=task, host=host,
                                limit=store_metrics.SERIES_LIMIT if limit is None else limit)
    return [{k: r[k] for k in POINT_KEYS} for r in rows]


def as_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2) + "\n"


def as_csv(rows: list[dict], keys: tuple) -> str:
    """A header and one row per item; floats as their repr (they read back exactly), text CSV-quoted."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(keys)
    for r in rows:
        w.writerow(["" if r.get(k) is None else repr(r[k]) if isinstance(r[k], float) else r[k] for k in keys])
    return buf.getvalue()


def _num(v) -> str:
    return f"{v:.10g}" if isinstance(v, float) else str(v)


def listing_text(rows: list[dict]) -> list[str]:
    if not rows:
        return ["no metrics yet: a run keeps them from METRIC lines, a metrics: file or an experiment "
                "(docs/metrics.md)"]
    width = max(len(r["name"]) for r in rows)
    return [f"{safe(r['name']):<{width}}  {r['points']:>5} point{'s' if r['points'] != 1 else ' '}  last "
            f"{_num(r['last_value'])}{' ' + safe(r['unit']) if r['unit'] else ''} ({r['source']}, "
            f"{safe(r['last_at'])})" for r in rows]


def points_text(name: str, rows: list[dict]) -> list[str]:
    if not rows:
        return [f"no points of {safe(name)} for that --task/--host"]
    return [f"{safe(r['at'])}  {_num(r['value'])}{' ' + safe(r['unit']) if r['unit'] else ''}  {r['source']}  "
            f"run {safe(r['run'])}  task {safe(r['task'])}{'  on ' + safe(r['host']) if r['host'] else ''}"
            for r in rows]
