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
from itertools import compress
from operator import not_

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

    def __init__(self, table, history, cached: tuple | None = None):
        """``cached``: (totals, order) as ``kept()`` gave them for the same ``signature``: taken as
        they are when they fit the table (the index keeps them, ``queue.load``)."""
        self._table = table
        kinds = {key[0] for key in table.shape_keys}
        evs = {k: evidence(history, None, k) for k in kinds}
        self.plains = [scoring.Plain(*key, evidence=evs[key[0]]) for key in table.shape_keys]
        learned = [p.ev is not None for p in self.plains]
        per_row = {n for n, p in enumerate(self.plains) if p.per_row}
        shapes, vals, certs, mins = table.shapes, table.vals, table.certs, table.mins
        self.from_cache = False
        if cached is not None:
            totals, order = array("d"), array("L")
            try:
                totals.frombytes(cached[0])
                order.frombytes(cached[1])
            except (ValueError, TypeError):
                pass
            else:
                if len(totals) == len(table.totals) and len(order) == len(table.order):
                    self.totals, self.order, self.from_cache = totals, order, True
                    self.per_row = ([table.ids[i] for i in compress(order, map(per_row.__contains__,
                                                                                map(shapes.__getitem__, order)))]
                                    if per_row else [])
                    return
        rows = list(table.order)
        totals = array("d", table.totals)
        for sh in (n for n, is_learned in enumerate(learned) if is_learned):  # a shape's rows a column at a time
            mine = list(compress(rows, map(sh.__eq__, map(shapes.__getitem__, rows))))
            if mine:
                got = self.plains[sh].totals(map(vals.__getitem__, mine), map(certs.__getitem__, mine),
                                        map(mins.__getitem__, mine))
                for i, x in zip(mine, got):
                    totals[i] = x
        self.totals = totals
        self.per_row = [table.ids[i] for i in rows if shapes[i] in per_row] if per_row else []
        lines, done = table.lines, table.done
        # the order of (done, -score, line, id), as ``TaskTable.order`` has it: a plain task is a worklog
        # line, one task per line, so line order is the (line, id) order; then by score, stable (equal
        # scores stay in line order); then the open rows before the checked ones, kept in that order
        rows.sort(key=lines.__getitem__)
        rows.sort(key=totals.__getitem__, reverse=True)
        checked = list(map(done.__getitem__, rows))
        rows = [*compress(rows, map(not_, checked)), *compress(rows, checked)]
        self.order = array("L", rows)

    def kept(self) -> tuple[bytes, bytes]:
        """(totals, order) as the index keeps them."""
        return self.totals.tobytes(), self.order.tobytes()

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


def signature(table, history) -> str | None:
    """What the learned order depends on: the table's copy in the index (its token), how its rows are
    numbered (the order of its ids: a copy read back may number them otherwise) and each kind's
    evidence; None when the table has no copy in the index (nothing is kept then)."""
    token = getattr(table, "token", None)
    if not token:
        return None
    # lazy: zlib only where a learned order is kept
    from zlib import crc32

    rows = crc32("\n".join(table.ids).encode("utf-8", "surrogateescape"))  # (the rows as this copy numbers them)
    kinds = sorted({key[0] for key in table.shape_keys})
    evs = [(k, None if (ev := evidence(history, None, k)) is None else sorted(ev.__dict__.items())) for k in kinds]
    return f"{token}:{len(table.ids)}:{rows:08x}:{history.runs}:{evs!r}"


def learns(table, history) -> bool:
    """Whether the history changes any plain row's score."""
    if history is None or not history.runs:
        return False
    return any(ev is not None and ev.learned() for ev in
               (evidence(history, None, k) for k in {key[0] for key in table.shape_keys}))
