"""Recurring tasks, ``{every: 6h}``: a done task opens again once its interval has passed since it
was last done.

When it was last done is its latest entry's time (agentd's copy of a lost entry is folded into the
read, so the store's row stands in where the worklog lost it), or when agentd first saw a person's
``DONE:`` line for it.  A time ahead of this clock (the clock was set back) makes the task due now,
so a recurring task never waits more than one interval.  ``CANCEL:`` and a checked box end it for good.
"""

from __future__ import annotations

from agentd.statuses import DONE, OPEN
from agentd.tasks.task import Task
from agentd.times import iso


def fill(t: Task, done_at: float | None, now: float) -> None:
    """Set a recurring task's status (a done one due again is ``open``), ``next_due`` and ``recurs``,
    the note its why begins with.  ``done_at``: when it was last done (``taskstate.decide``)."""
    every = t.attrs["every"]
    if t.status == OPEN and t.latest_run is None and not done_at:
        t.recurs = f"recurs every {every}: first run"
        return
    if t.status != DONE or t.human_done:
        return
    # lazy: only a recurring task needs the interval grammar; keeps the queue's start-up free of it
    from agentd.metrics.every import seconds

    interval = seconds(every)
    if not done_at:  # a DONE line agentd met on its first read of the worklog: when is not known
        t.status, t.recurs = OPEN, f"recurs every {every}: due again (when it was last done is not known)"
        return
    due = done_at + interval
    if due - now > interval:  # last done ahead of this clock: it was set back
        t.status, t.recurs = OPEN, (f"recurs every {every}: due again (its last run, {iso(done_at)}, "
                                    "is ahead of this clock)")
        return
    t.next_due = iso(due)
    if now >= due:
        t.status, t.recurs = OPEN, f"recurs every {every}: due again since {t.next_due}"
    else:
        t.recurs = f"recurs every {every}: next due {t.next_due}"
