"""The queue's tasks in order (``queue.build``'s answer): the tasks worked out one by one, merged
with the plain rows of the worklog's ``TaskTable`` in the order the table keeps them.

Iterating gives ``Task`` objects, made as they are reached, so a queue of a million tasks is never
held as a million objects.  ``rows()`` gives the same sequence with each plain task as a
``Row`` (its table row, status and, when it can't run, why), which the views render without
making a Task (``views``; tests/queue/test_scale.py checks both renderings agree).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections import namedtuple
from itertools import compress, islice, repeat

from agentd.statuses import DONE, OPEN, RUNNABLE
from agentd.tasks.task import AGENT_KINDS, Task, runner_of

# Views of the table's plain rows, for the fast path that renders a long queue a column at a time
# (``views``, ``runlines``) without making a Task per row; ``TaskList.task`` makes the Task a Row
# stands for.
# A plain row as the queue lists it: ``i``, its row in the table; ``status`` (open or done);
# ``why``: why it can't run now, or None when it can.
Row = namedtuple("Row", "i status why")
# Plain rows next to each other in the queue, of one status: ``rows``, their rows in the table (an
# array); ``why``: why they can't run now, None when they can, or a list with each one's why (the
# rows held back, when they are held for different reasons: unknown experiments).
Run = namedtuple("Run", "rows status why")


def order_key(t: Task) -> tuple:
    """Where a task stands in the queue: those that can run, by score; then those that could run
    but can't now; then the rest (done, cancelled, blocked, waiting)."""
    group = 0 if t.eligible else 1 if t.status in RUNNABLE else 2
    return group, not t.forced, -t.score, t.source != "worklog", t.line, t.id


def _key(table, group: int):
    """``order_key`` of a plain row in ``group``, from its row."""
    totals, lines, ids = table.totals, table.lines, table.ids
    return lambda i: (group, True, -totals[i], False, lines[i], ids[i])


def _between(rows, out: set, status: str, why):
    """The Runs of ``rows`` between the positions in ``out``."""
    a = 0
    for n in sorted(out):
        if n > a:
            yield Run(rows[a:n], status, why)
        a = n + 1
    if a < len(rows):
        yield Run(rows[a:], status, why)


class TaskList:
    def __init__(self, dynamic: list[Task], table, shadowed: set, agents_wait: str | None,
                 unknown_experiment, kind_waits: dict | None = None):
        """``dynamic``: the tasks worked out one by one, sorted by ``order_key``; ``table``: the
        worklog's TaskTable (or ``learned.LearnedTable``), whose plain rows named in ``shadowed`` are
        among ``dynamic``; ``agents_wait``: why agent tasks can't run now, or None;
        ``unknown_experiment(title)``: why an experiment can't run, or None; ``kind_waits``: kind ->
        why its plain rows can't run now (an agent task's expected cost over today's budget)."""
        self.dynamic = dynamic
        self.kind_waits = kind_waits or {}
        self.table = table
        self.shadowed = shadowed
        self.agents_wait = agents_wait
        self.unknown_experiment = unknown_experiment
        plain = len(table.order)
        if shadowed:
            rows = [table.find(tid) for tid in shadowed]
            plain -= sum(1 for i in rows if i is not None and table.shapes[i] >= 0)
        self._len = len(dynamic) + plain

    def __len__(self) -> int:
        return self._len

    def __iter__(self):
        task = self.task
        for x in self.rows():
            yield task(x) if type(x) is Row else x

    def __getitem__(self, k):
        if isinstance(k, slice) or k < 0:
            return list(self)[k]
        try:
            return next(islice(iter(self), k, None))
        except StopIteration:
            raise IndexError("task index out of range") from None

    def __bool__(self) -> bool:
        return self._len > 0

    def counts(self) -> dict[str, int]:
        """How many tasks have each status."""
        out: dict = {}
        for x in self.runs():
            out[x.status] = out.get(x.status, 0) + (len(x.rows) if type(x) is Run else 1)
        return out

    def eligible_count(self) -> int:
        return sum((len(x.rows) if x.why is None else 0) if type(x) is Run else x.eligible for x in self.runs())

    def agents_open(self) -> bool:
        """Whether a task not done or cancelled would run an agent."""
        kinds = self.table.kinds
        for x in self.runs():
            if x.status in ("done", "cancelled"):
                continue
            if (any(map(AGENT_KINDS.__contains__, map(kinds.__getitem__, x.rows))) if type(x) is Run
                    else x.runner == "agent"):
                return True
        return False

    def get(self, tid: str) -> Task | None:
        """The task with id ``tid``, as iterating would give it, or None."""
        for t in self.dynamic:
            if t.id == tid:
                return t
        i = self.table.find(tid)
        if i is None or self.table.shapes[i] < 0 or tid in self.shadowed:
            return None
        return self.task(self._row(i))

    def _row(self, i: int) -> Row:
        t = self.table
        if t.done[i]:
            return Row(i, DONE, DONE)
        why = self.unknown_experiment(t.titles[i]) if t.kinds[i] == "experiment" else None
        if why is None and self.agents_wait is not None and runner_of(t.kinds[i]) == "agent":
            why = self.agents_wait
        return Row(i, OPEN, why or self.kind_waits.get(t.kinds[i]))

    def rows(self):
        """The queue in order: each dynamic task as itself, each plain one as a ``Row``."""
        new = tuple.__new__
        for x in self.runs():
            if type(x) is Run:
                whys = x.why if type(x.why) is list else repeat(x.why)
                yield from map(new, repeat(Row), zip(x.rows, repeat(x.status), whys))
            else:
                yield x

    def runs(self):
        """The queue in order: each dynamic task as itself, and the plain rows between them as
        ``Run``s, worked out a column at a time (no Python code runs per row but for the few that
        are held back or worked out one by one).

        The plain rows come in the table's order; those that can't run now (an unknown
        experiment, an agent task while agents wait) are held back to the second group, and those
        checked off make the third.  Each dynamic task comes before the first plain row it sorts
        ahead of (``order_key``)."""
        table, dyn = self.table, self.dynamic
        order, ids, kinds = table.order, table.ids, table.kinds
        cut = bisect_left(order, True, key=table.done.__getitem__)  # (open rows sort before checked ones)
        now, done = order[:cut], order[cut:]
        # the rows a run leaves out: those named by an entry or a DONE/CANCEL/RETRY line (among the
        # dynamic tasks), and those held back; the runs between them stay slices of the order, rows
        # next to each other in the table (``TaskTable.parts``)
        now_out, done_out = (set(compress(range(len(rows)), map(self.shadowed.__contains__, map(ids.__getitem__, rows))))
                             if self.shadowed else set() for rows in (now, done))
        later, whys = array("L"), []
        maybe = {"experiment", *(AGENT_KINDS if self.agents_wait is not None else ()), *self.kind_waits}
        for n in compress(range(len(now)), map(maybe.__contains__, map(kinds.__getitem__, now))):
            i = now[n]
            why = self.unknown_experiment(table.titles[i]) if kinds[i] == "experiment" else None
            if why is None and kinds[i] != "experiment":
                why = (self.agents_wait if self.agents_wait is not None and kinds[i] in AGENT_KINDS
                       else self.kind_waits.get(kinds[i]))
            if why is not None and n not in now_out:
                later.append(i)
                whys.append(why)
                now_out.add(n)
        keys = [order_key(t) for t in dyn]
        k = 0
        for group, runs in ((0, _between(now, now_out, OPEN, None)),
                            (1, [Run(later, OPEN, whys[0] if whys.count(whys[0]) == len(whys) else whys)]
                             if whys else []),
                            (2, _between(done, done_out, DONE, DONE))):
            key = _key(table, group)
            for run in runs:
                rows, a, b = run.rows, 0, len(run.rows)
                while a < b:  # cut where dynamic tasks come between the rows
                    while k < len(keys) and keys[k][0] < group:
                        yield dyn[k]
                        k += 1
                    at = bisect_right(rows, keys[k], a, b, key=key) if k < len(keys) and keys[k][0] == group else b
                    if at > a:
                        yield Run(rows[a:at], run.status, run.why[a:at] if type(run.why) is list else run.why)
                        a = at
                    if a < b:
                        yield dyn[k]
                        k += 1
        yield from dyn[k:]

    def task(self, r: Row) -> Task:
        """A plain row as the Task the queue would have made of it."""
        t = self.table.task(r.i)
        t.score, t.parts, explain, t.certainty, t.certainty_evidence = self.table.score(r.i)
        t.status, t.eligible, t.held_by = r.status, r.why is None, r.why or ""
        t.why = explain if r.why is None else r.why
        return t
