"""What the queue learns from this host's history (``store.history``): each task's ``Evidence``, an
agent task's expected cost, and the task table's plain rows scored and ordered with their kinds'
evidence (``LearnedTable``).  Pure: the history goes in, numbers come out.

On a fresh host (no history) none of this is used: the table's own order stands.  With history,
each plain row's evidence is its kind's (a plain row has no runs of its own: a run writes an entry
naming it), so each shape (``scoring.Plain``) gets its kind's evidence, and the plain rows are
scored again and sorted once, a column at a time; rows whose line gives a certainty, of a kind with
attempts, are worked out one by one (``Plain.per_row``).
"""

from __future__ import annotations

from array import array

from agentd.store.history import median
from agentd.tasks import scoring
from agentd.tasks.task import runner_of


def evidence(history, tid: str | None, kind: str) -> scoring.Evidence | None:
    """A task's evidence: its own runs when it has any, else its kind's on this host; None without history."""
    if history is None or not history.runs:
        return None
    own = history.tasks.get(tid) if tid is not None else None
    mine = history.kinds.get(kind)
    st, of = (own, "runs of this task") if own is not None and own.attempts else (mine, f"{kind} runs on this host")
    timed, timed_of = ((own, "runs of this task") if own is not None and own.durations
                       else (mine, f"{kind} runs on this host"))
    ev = scoring.Evidence(runs=history.runs, of=of)
    if st is not None:
        ev.done, ev.attempts = st.done, st.attempts
    if timed is not None and timed.durations:
        ev.minutes, ev.timed, ev.timed_of = median(timed.durations) / 60, len(timed.durations), timed_of
    return ev


def expected_cost(history, tid: str | None, kind: str) -> tuple[float, str] | None:
    """(an agent task's expected cost in dollars, where it comes from): the median of its own runs'
    costs, else of its kind's on this host; None without such runs."""
    if history is None or runner_of(kind) != "agent":
        return None
    own = history.tasks.get(tid) if tid is not None else None
    if own is not None and own.costs:
        return median(own.costs), f"median of {len(own.costs)} runs of this task"
    mine = history.kinds.get(kind)
    if mine is not None and mine.costs:
        return median(mine.costs), f"median of {len(mine.costs)} {kind} runs on this host"
    return None


class LearnedTable:
    """A ``TaskTable`` seen with its kinds' evidence: ``plains``, ``totals``, ``order`` and ``score``
    are the learned ones, every other column the table's own.  ``per_row``: the ids of plain rows to
    work out one by one."""

    def __init__(self, table, history):
        self._table = table
        kinds = {key[0] for key in table.shape_keys}
        evs = {k: evidence(history, None, k) for k in kinds}
        self.plains = [scoring.Plain(*key, evidence=evs[key[0]]) for key in table.shape_keys]
        learned = [p.ev is not None for p in self.plains]
        per_row = {n for n, p in enumerate(self.plains) if p.per_row}
        shapes, vals, certs, mins = table.shapes, table.vals, table.certs, table.mins
        rows = list(table.order)
        totals = array("d", table.totals)
        plains = self.plains
        for i in rows:
            sh = shapes[i]
            if learned[sh]:
                totals[i] = plains[sh].total(vals[i], certs[i], mins[i])
        self.totals = totals
        self.per_row = [table.ids[i] for i in rows if shapes[i] in per_row] if per_row else []
        ids, lines, done = table.ids, table.lines, table.done
        rows.sort(key=ids.__getitem__)  # (as ``TaskTable.order``: stable sorts from the last key to the first)
        rows.sort(key=lines.__getitem__)
        rows.sort(key=totals.__getitem__, reverse=True)
        rows.sort(key=done.__getitem__)
        self.order = array("L", rows)

    def __getattr__(self, name):
        return getattr(self._table, name)

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, tid) -> bool:
        return tid in self._table

    def score(self, i: int) -> tuple:
        """As ``TaskTable.score``, with the kind's evidence."""
        sc = self.plains[self.shapes[i]].score(*self.numbers(i))
        return sc.total, sc.parts, sc.explain(), sc.certainty, sc.evidence


def learns(table, history) -> bool:
    """Whether the history changes any plain row's score."""
    if history is None or not history.runs:
        return False
    return any(ev is not None and ev.learned() for ev in
               (evidence(history, None, k) for k in {key[0] for key in table.shape_keys}))
