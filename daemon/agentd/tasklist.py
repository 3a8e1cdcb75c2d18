"""The queue's tasks in order (``queue.build``'s answer): the tasks worked out one by one, merged
with the plain rows of the worklog's ``TaskTable`` in the order the table keeps them.

Iterating gives ``Task`` objects, made as they are reached, so a queue of a million tasks is never
held as a million objects.  ``rows()`` gives the same sequence with each plain task as a
``Row`` (its table row, status and, when it can't run, why), which the views render without
making a Task (``views``; tests/test_scale.py checks both renderings agree).
"""

from __future__ import annotations

from collections import namedtuple
from itertools import islice

from agentd.statuses import DONE, OPEN, RUNNABLE
from agentd.task import Task

# A plain task as the queue lists it: ``i``, its row in the table; ``status`` (open or done);
# ``why``: why it can't run now, or None when it can.
Row = namedtuple("Row", "i status why")
# What plain rows of one score key, status and why share (``TaskList.shared``).
Shared = namedtuple("Shared", "kind priority runner status score eligible why parts")

# A Task's fields past its definition, as Task() fills them in.
_FILLED = {k: v for k, v in Task._defaults.items() if k not in Task.DEFINITION and k != "parts"}


def order_key(t: Task) -> tuple:
    """Where a task stands in the queue: those that can run, by score; then those that could run
    but can't now; then the rest (done, cancelled, blocked, waiting)."""
    group = 0 if t.eligible else 1 if t.status in RUNNABLE else 2
    return group, not t.forced, -t.score, t.source != "worklog", t.line, t.id


class TaskList:
    def __init__(self, dynamic: list[Task], table, shadowed: set, agents_wait: str | None,
                 unknown_experiment):
        """``dynamic``: the tasks worked out one by one, sorted by ``order_key``; ``table``: the
        worklog's TaskTable, whose plain rows named in ``shadowed`` are among ``dynamic``;
        ``agents_wait``: why agent tasks can't run now, or None; ``unknown_experiment(title)``:
        why an experiment can't run, or None."""
        self.dynamic = dynamic
        self.table = table
        self.shadowed = shadowed
        self.agents_wait = agents_wait
        self.unknown_experiment = unknown_experiment
        plain = len(table.order)
        if shadowed:
            rows = [table.find(tid) for tid in shadowed]
            plain -= sum(1 for i in rows if i is not None and table.skeys[i] >= 0)
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
        for x in self.rows():
            out[x.status] = out.get(x.status, 0) + 1
        return out

    def eligible_count(self) -> int:
        return sum(1 for x in self.rows() if (x.why is None if type(x) is Row else x.eligible))

    def agents_open(self) -> bool:
        """Whether a task not done or cancelled would run an agent."""
        kinds = self.table.kinds
        for x in self.rows():
            if x.status in ("done", "cancelled"):
                continue
            if kinds[x.i] not in ("command", "experiment") if type(x) is Row else x.runner == "agent":
                return True
        return False

    def get(self, tid: str) -> Task | None:
        """The task with id ``tid``, as iterating would give it, or None."""
        for t in self.dynamic:
            if t.id == tid:
                return t
        i = self.table.find(tid)
        if i is None or self.table.skeys[i] < 0 or tid in self.shadowed:
            return None
        return self.task(self._row(i))

    def _row(self, i: int) -> Row:
        t = self.table
        if t.done[i]:
            return Row(i, DONE, DONE)
        why = self.unknown_experiment(t.titles[i]) if t.kinds[i] == "experiment" else None
        if why is None and self.agents_wait is not None and t.kinds[i] not in ("command", "experiment"):
            why = self.agents_wait
        return Row(i, OPEN, why)

    def rows(self):
        """The queue in order: each dynamic task as itself, each plain one as a ``Row``.

        The plain rows come in the table's order; those that can't run now (an unknown
        experiment, an agent task while agents wait) are held back to the second group.  Each
        dynamic task is yielded before the first plain row it sorts ahead of (``order_key``)."""
        table, dyn = self.table, self.dynamic
        order, skeys, lines, ids, done, kinds = table.order, table.skeys, table.lines, table.ids, table.done, table.kinds
        shadowed, agents_wait, unknown = self.shadowed, self.agents_wait, self.unknown_experiment
        neg = [-x for x in table.totals]
        new = tuple.__new__
        keys = [order_key(t) for t in dyn]
        k, nk = 0, len(keys)
        later: list = []
        done_from = len(order)
        for n, i in enumerate(order):  # group 0: those that can run
            if done[i]:
                done_from = n
                break
            if shadowed and ids[i] in shadowed:
                continue
            kind = kinds[i]
            why = (unknown(table.titles[i]) if kind == "experiment" else
                   agents_wait if agents_wait is not None and kind != "command" else None)
            if why is not None:
                later.append((i, why))
                continue
            while k < nk and keys[k][0] == 0 and keys[k] < (0, True, neg[skeys[i]], False, lines[i], ids[i]):
                yield dyn[k]
                k += 1
            yield new(Row, (i, OPEN, None))
        for group, rows in ((1, later), (2, ((i, DONE) for i in order[done_from:]))):
            for i, why in rows:
                if group == 2 and shadowed and ids[i] in shadowed:
                    continue
                while k < nk and keys[k][0] <= group and keys[k] < (group, True, neg[skeys[i]], False, lines[i],
                                                                     ids[i]):
                    yield dyn[k]
                    k += 1
                yield new(Row, (i, OPEN if group == 1 else DONE, why))
            while k < nk and keys[k][0] <= group:
                yield dyn[k]
                k += 1
        yield from dyn[k:]

    def task(self, r: Row) -> Task:
        """A plain row as the Task the queue would have made of it."""
        d = self.table.definition(r.i)
        s = self.shared(r)
        t = Task.__new__(Task)
        t.__dict__ = {**_FILLED, **d, "status": r.status, "score": s.score, "parts": s.parts, "eligible": s.eligible,
                      "why": s.why, "held_by": r.why or ""}
        return t

    def shared(self, r: Row) -> "Shared":
        """What a plain row has in common with every row of its score key, status and why: all of
        what the queue shows of it but its id, title, line and command."""
        table = self.table
        sk = table.skeys[r.i]
        kind, priority = table.score_keys[sk][:2]
        total, parts, explain = table.score(sk)
        runner = kind if kind in ("command", "experiment") else "agent"
        return Shared(kind, priority, runner, r.status, total, r.why is None, explain if r.why is None else r.why,
                      parts)
