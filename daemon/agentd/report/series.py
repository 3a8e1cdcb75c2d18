"""The report's metric series: each (task, metric) of this host's measured points in the range, with
its ``expect:`` gates as lines and the changes the wake flagged (its finding's ``change:`` lines).

Bounded: at most ``MAX_SERIES`` series (those a gate names first, then the most recently measured),
each its newest ``MAX_POINTS`` points.  A run's own figures (``run.duration_s``, ``run.exit_code``,
its tokens and cost) are kept for every run; they are drawn only where a gate names them.
"""

from __future__ import annotations

from agentd.metrics import gates as gates_mod
from agentd.store import metrics as kept

MAX_SERIES = 20
MAX_POINTS = 500
CHANGE = "change: "
QC = "QC: "


def gather(store, host, lo: str, hi: str, task_of) -> list[dict]:
    """The series, each ``{name, unit, task, points, gates, changes}`` (docs/report.md)."""
    db = store.db
    if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='metrics'").fetchone() is None:
        return []  # a store older than the metrics table
    found = db.execute(
        "SELECT task, name, max(at) FROM metrics WHERE source = 'measured' AND at >= ? AND at <= ?"
        " AND (host = ? OR host IS NULL) GROUP BY task, name", (lo, hi, host)).fetchall()
    gated: dict = {}
    for task, _, _ in found:
        if task not in gated:
            t = task_of(task)
            expect = t.attrs.get("expect") if t is not None else None
            gated[task] = gates_mod.parse_expect(expect)[0] if isinstance(expect, dict) else []
    chosen = []
    for task, name, last in found:
        mine = [g for g in gated[task] if g.name == name]
        if name.startswith("run.") and not mine:
            continue
        chosen.append((not mine, _neg(last), task, name, mine))
    chosen.sort()
    return [one(store, host, lo, hi, task, name, mine) for _, _, task, name, mine in chosen[:MAX_SERIES]]


def _neg(at: str) -> tuple:
    """A key that sorts ISO times newest first."""
    return tuple(-ord(c) for c in at or "")


def one(store, host, lo: str, hi: str, task: str, name: str, gate_list: list) -> dict:
    db = store.db
    rows = db.execute(
        "SELECT m.at, m.value, m.run, m.unit, r.status, r.reason FROM metrics m LEFT JOIN runs r ON r.run_id = m.run"
        " WHERE m.task = ? AND m.name = ? AND m.source = 'measured' AND m.at >= ? AND m.at <= ?"
        " AND (m.host = ? OR m.host IS NULL) ORDER BY m.at DESC, m.rowid DESC LIMIT ?",
        (task, name, lo, hi, host, MAX_POINTS)).fetchall()[::-1]
    points = [{"at": at, "value": float(v), "run": run,
               "failed": status == "failed" and name in qc_failed(reason)}
              for at, v, run, _, status, reason in rows]
    unit = rows[-1][3] if rows else ""
    return {"name": name, "unit": unit or None, "task": task, "points": points,
            "gates": [gate(store, host, task, g) for g in gate_list],
            "changes": changes(db, name, rows)}


def qc_failed(reason) -> set:
    """The metrics a run's QC verdict names: ``QC: tflops 80 >= 90: FAIL; token_limit_rate ...`` (each gate's
    working starts with its metric, ``wake/results.decide``), or ``expect: yield: ...`` for a condition that
    can't be read.  A run that failed for anything else names none."""
    if not isinstance(reason, str) or not reason.startswith(QC):
        return set()
    out = set()
    for part in reason[len(QC):].split("; "):
        words = part.split()
        if words[:1] == ["expect:"] and len(words) > 1:
            out.add(words[1].rstrip(":"))
        elif words:
            out.add(words[0])
    return out


def gate(store, host, task: str, g) -> dict:
    """A gate as a line: its threshold, or None where it is relative and not known (a baseline with
    too few passing runs, a device peak)."""
    value = None
    if g.ref == "":
        value = g.factor
    elif g.ref == "baseline":
        base, _ = gates_mod.baseline_of(kept.baseline_values(store, task, host, g.name))
        value = None if base is None else g.factor * base
    return {"text": g.text, "op": g.op, "value": value}


def changes(db, name: str, rows) -> list[dict]:
    """The changes the wake flagged in this series: the ``change: <name> …`` lines of its runs' entries."""
    at_of = {run: at for at, _, run, *_ in rows}
    out = []
    runs = list(at_of)
    for n in range(0, len(runs), 500):
        part = runs[n:n + 500]
        for run, text in db.execute(
                f"SELECT run_id, text FROM entries WHERE run_id IN ({','.join('?' * len(part))})"
                " AND instr(text, ?) > 0 ORDER BY seq", [*part, CHANGE + name + " "]):
            for line in text.splitlines():
                line = line[2:] if line.startswith("> ") else line  # (an entry's body lines are quoted)
                if line.startswith(CHANGE + name + " "):
                    out.append({"at": at_of[run], "run": run, "text": line[len(CHANGE):]})
    out.sort(key=lambda c: c["at"])
    return out
