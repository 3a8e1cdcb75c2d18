"""The queue worked out: each task's status, score and whether it can run now, and the order the
next wake would take them in.

Pure: no store, no clock, no I/O.  The worklog's parse, the task files' Tasks and the ``Facts``
that ``queue.load`` gathered from the store, the host and the clock go in; a ``TaskList`` comes
out.  The worklog's plain tasks (``tasktable``) keep their order in the table; the rest are worked
out here one by one: any task an entry or a DONE/CANCEL/RETRY line names, directives, tasks with
``after`` or ``gpu``, and task files' tasks.  ``TaskList`` merges the two.
"""

from __future__ import annotations

from agentd.experiments import NAMES, problem as experiment_problem
from agentd.queue import recurring
from agentd.queue.taskstate import decide
from agentd.queue.tasklist import TaskList, order_key
from agentd.recordtype import Factory, Record
from agentd.statuses import DONE, INTERRUPTED, OPEN, RUNNABLE, WAITING
from agentd.tasks import scoring
from agentd.tasks.task import Task
from agentd.times import iso
from agentd.worklog.parse import State


class Facts(Record):
    """What the queue needs besides the worklog and the settings, gathered by ``queue.load``."""
    now: float  # the time the queue is for (seconds since the epoch)
    has_gpu: bool
    agent_backend: str | None  # the provider agent tasks use, or None when they can't run now
    agent_reason: str = ""  # why agent tasks can't run now, when agent_backend is None
    passovers: dict = Factory(dict)  # critical directive id -> wakes in a row that passed it over
    first_seen: dict = Factory(dict)  # directive id -> when agentd first saw it (its age bonus)
    wake_running: bool = False  # another process's wake holds the lock: a "started" entry runs now
    cmd_seen: dict = Factory(dict)  # a DONE/CANCEL/RETRY line's key -> (when, seq) first seen (``taskstate``)
    waits: dict = Factory(dict)  # task id -> why its waiting run waits (an approval's request)
    times: dict = Factory(dict)  # ("run", run id) -> its deadline's start and length (``store.clock``)
    history: "object" = None  # this host's finished runs, counted (``store.history.History``); None: no store
    learned_cache: tuple | None = None  # the plain rows' learned (totals, order) the index kept for this history
    budget: tuple | None = None  # (dollars left of today's budget, usd_per_day, spent today, when it resets)
    claimed: dict = Factory(dict)  # a fleet_worklog.txt task's id -> why this host may not take it (``shared``)


def score_identity(key: tuple) -> tuple:
    """A score key as the keys that score and read alike: 0 and -0.0 are equal but not written
    alike (``-0 value``), so a key with a zero goes by its numbers' repr (any other, as itself)."""
    kind, priority, value, certainty, minutes = key
    if value == 0 or certainty == 0 or minutes == 0:
        return kind, priority, repr(value), repr(certainty), repr(minutes)
    return key


def _learned(history):
    """``queue.learned``, where there is history to learn from; None on a host with no finished run."""
    if history is None or not history.runs:
        return None
    # lazy: only a host with finished runs learns; a fresh host's queue and status load none of it
    from agentd.queue import learned

    return learned


def build(cfg, state: State, extra: list[Task], facts: Facts) -> TaskList:
    """Every known task, open ones first in the order the next wake would take them.  ``extra``:
    the task files' Tasks (those the worklog defines too are its own); the Tasks worked out are
    filled in (status, score, why) and kept in the answer."""
    table = state.tasks
    learned = _learned(facts.history)
    if learned is not None and learned.learns(table, facts.history):  # (a fresh host keeps the table's order)
        table = learned.LearnedTable(table, facts.history, facts.learned_cache)
    shadowed, tasks = _worked_out(state, extra, cfg["max_attempts"], facts, table)
    statuses = _Statuses({t.id: t.status for t in tasks}, table)
    after = {t.id: t.attrs.get("after") for t in tasks if t.attrs.get("after")}
    scores = _Scores(cfg["directive_age_bonus"])
    backoff = cfg.duration("retry_backoff")
    for t in tasks:
        explain = scores.fill(t, facts)
        wait, held = _holds(t, statuses, after, backoff, state, facts)
        reason = (facts.waits.get(t.id) or held) if t.status == WAITING else wait or held
        t.eligible = reason is None
        t.why = explain if reason is None else reason
        if t.recurs:
            t.why = t.recurs if t.status == DONE else f"{t.recurs} · {t.why}"
        if reason is not None:
            t.held_by = held or ""
            t.only_waits = not t.held_by
        _force(t, facts.passovers, cfg["critical_max_passovers"])
    tasks.sort(key=order_key)
    kind_waits = {k: w for k in set(table.kinds) if (w := _over_budget(None, k, facts))} if facts.budget else {}
    return TaskList(tasks, table, shadowed,
                    None if facts.agent_backend else f"needs an LLM backend: {facts.agent_reason}",
                    unknown_experiment, kind_waits)


def _worked_out(state: State, extra: list[Task], max_attempts: int, facts: Facts,
                table) -> tuple[set, list[Task]]:
    """(the ids of the table's plain rows that are worked out one by one, the Tasks worked out one
    by one with their status): those an entry or a DONE/CANCEL/RETRY line names, the table's
    special rows, those the history scores row by row (``LearnedTable.per_row``), and the task
    files' tasks the worklog does not define."""
    latest, commands, fails = state.latest, state.commands, state.failures
    named = set(latest).union(commands, fails)
    named = named.intersection(table.ids) if named else named  # one pass over the ids, no id -> row dict
    shadowed = named | set(table.special_ids()) | set(getattr(table, "per_row", ()))
    by_id = {tid: table.task(i) for tid, i in zip(shadowed, table.rows_of(list(shadowed)))}
    for t in extra:
        if t.id not in table:
            by_id.setdefault(t.id, t)
    tasks = list(by_id.values())
    for t in tasks:
        tid = t.id
        if tid in latest or tid in commands or tid in fails:
            t.status, t.attempts, t.latest_run, until, done_at = decide(t, state, max_attempts, facts.wake_running,
                                                                        facts.cmd_seen)
            if until and ("run", t.latest_run) in facts.times:  # its start and length, not the entry's wall time
                until = iso(facts.times[("run", t.latest_run)])
            t.defer_until = until
        else:  # no entry and no DONE/CANCEL/RETRY line: what ``status`` answers, without asking it
            t.status, done_at = DONE if t.human_done else OPEN, None
        if t.attrs.get("every"):
            recurring.fill(t, done_at, facts.now)
    return shadowed, tasks


class _Scores:
    """Each task's score; many score alike, so each distinct score is worked out once."""

    def __init__(self, age_bonus: float):
        self.age_bonus, self.known = age_bonus, {}

    def fill(self, t: Task, facts: Facts) -> str:
        """Set ``t.score`` and ``t.parts``; return the explanation."""
        now = facts.now
        age = (0.0 if t.kind != "directive" or t.priority == "critical"
               else max(0.0, (now - facts.first_seen.get(t.id, now)) / 86400))
        a = t.attrs
        learned = _learned(facts.history)
        ev = None if learned is None else learned.evidence(facts.history, t.id, t.kind)
        try:
            key = (score_identity((t.kind, t.priority, a.get("value"), a.get("certainty"), a.get("minutes"))),
                   t.attempts, age, None if ev is None else tuple(map(ev.__dict__.get, ev._fields)))
            sc = self.known.get(key)
        except TypeError:  # an unhashable attr: score it on its own
            key, sc = None, None
        if sc is None:
            s = scoring.score(t.kind, t.priority, a, failures=t.attempts, age_days=age, age_bonus=self.age_bonus,
                              evidence=ev)
            sc = (s.total, s.parts, s.explain(), s.certainty, s.evidence)
            if key is not None:
                self.known[key] = sc
        t.score, t.parts, t.certainty, t.certainty_evidence = sc[0], sc[1], sc[3], sc[4]
        return sc[2]


def _force(t: Task, passovers: dict, max_passovers: int) -> None:
    """Put ``t`` ahead of the rest when it must go first: an interrupted run, or a critical
    directive passed over too often."""
    if not t.eligible:
        return
    if t.status == INTERRUPTED:
        t.forced = "interrupted: the next wake resumes it before anything else"
    elif t.kind == "directive" and t.priority == "critical" and passovers.get(t.id, 0) >= max_passovers:
        t.forced = f"critical directive passed over {passovers.get(t.id, 0)} wakes in a row"
    else:
        return
    t.why = f"goes first: {t.forced} · {t.why}"


class _Statuses:
    """Each task's status, for ``after``: the ones worked out here, else a plain task's own
    (open, or done when checked)."""

    def __init__(self, found: dict, table):
        self.found, self.table = found, table

    def get(self, tid: str, default=None):
        st = self.found.get(tid)
        if st is None:
            i = self.table.find(tid)
            if i is None:
                return default
            st = DONE if self.table.done[i] else OPEN
        return st

    def __contains__(self, tid: str) -> bool:
        return self.get(tid) is not None

    def __getitem__(self, tid: str) -> str:
        st = self.get(tid)
        if st is None:
            raise KeyError(tid)
        return st


def unknown_experiment(title: str) -> str | None:
    """Why a plain experiment row can't run: an unknown name.  (``TaskTable`` keeps an experiment
    missing a required attr out of the plain rows: ``_holds`` sees it with its attrs.)"""
    return None if title in NAMES else experiment_problem(title, None)


def _holds(t: Task, statuses, after: dict, backoff: float, state: State,
           facts: Facts) -> tuple[str | None, str | None]:
    """(why ``t`` waits for a time: a backoff or a deferral, which a person may skip with
    `wake --task`; what else keeps it from running), each None when nothing does."""
    if t.kind == "experiment" and t.title in NAMES and t.status not in (DONE, "cancelled", "running"):
        why = experiment_problem(t.title, t.attrs)
        if why is not None:  # never runnable as written: no RETRY or wait would help
            why = f"{why}; fix the line (it can't run as written)"
            return None, why
    if t.status not in RUNNABLE:
        return None, _not_runnable(t)
    return _waits(t, backoff, state, facts), _held(t, statuses, after, facts)


def _not_runnable(t: Task) -> str:
    if t.status == "running":
        return "running now: a wake holds the lock"
    if t.status == "blocked":
        if t.attempts:
            return f"blocked after {t.attempts} failed or interrupted attempts; write RETRY: {t.id} to try again"
        return f"blocked; write RETRY: {t.id} to try again"
    return t.status


def _waits(t: Task, backoff: float, state: State, facts: Facts) -> str | None:
    now, times = facts.now, facts.times
    if t.status == "failed":
        # lazy: the store only where a task failed; keeps queue's start-up without a store
        from agentd.store.clock import backoff_left

        left = backoff_left(times, t.latest_run, (state.latest.get(t.id) or {}).get("at"), now,
                            backoff * 2 ** max(0, t.attempts - 1))
        if left > 0:
            return f"retry {t.attempts + 1} waits until {iso(now + left)} (backoff)"
    if t.status == "deferred":
        # lazy: the store only where a task is deferred; keeps queue's start-up without a store
        from agentd.store.clock import defer_ends

        until = defer_ends(times, t.latest_run, t.defer_until, now)
        if until is not None and now < until:
            return f"deferred until {iso(until)}"
    return None


def _held(t: Task, statuses, after: dict, facts: Facts) -> str | None:
    if facts.claimed and (why := facts.claimed.get(t.id)):
        return why
    for dep in t.attrs.get("after") or []:
        if dep not in statuses:
            return f"waits for {dep}, which no line or task file defines"
        if statuses[dep] != "done":
            loop = after_loop(t.id, after, statuses)
            if loop:
                return (f"waits for {dep}, but the `after` links go round in a loop ({' → '.join(loop)}), so none "
                        "of them can start; remove one `after`")
            return f"waits for {dep} ({facts.waits.get(dep) or statuses[dep]})"
    if t.attrs.get("gpu") and not facts.has_gpu:
        return "needs a GPU and none is present"
    if t.runner == "agent" and facts.agent_backend is None:
        return f"needs an LLM backend: {facts.agent_reason}"
    if facts.budget and (over := _over_budget(t.id, t.kind, facts)):
        return over
    if t.kind == "experiment":
        return unknown_experiment(t.title)
    return None


def _over_budget(tid: str | None, kind: str, facts: Facts) -> str | None:
    """Why an agent task waits for tomorrow's budget: its expected cost is more than what is left of
    today's, naming both; None when it isn't (or nothing says what it costs)."""
    learned = _learned(facts.history)
    cost = None if learned is None else learned.expected_cost(facts.history, tid, kind)
    left, per_day, spent, resets = facts.budget
    if cost is None or cost[0] <= left:
        return None
    return (f"expected cost ${cost[0]:.2f} ({cost[1]}) is more than the ${max(left, 0):.2f} left of today's "
            f"budget (usd_per_day {per_day:g}, ${spent:.2f} spent today, UTC); waits until {resets}")


def after_loop(start: str, after: dict, statuses) -> list[str] | None:
    """The shortest chain of `after` links from ``start`` back to itself through tasks not yet done."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for x in frontier:
            for dep in after.get(x) or ():
                if dep == start:
                    return paths[x] + [start]
                if dep not in paths and statuses.get(dep) != "done":
                    paths[dep] = paths[x] + [dep]
                    nxt.append(dep)
        frontier = nxt
    return None
