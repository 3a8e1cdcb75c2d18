"""The queue: every known task, its status (``taskstate``), and whether it can run now.

Open tasks are ordered the way the next wake would take them; the rest follow,
each with why it can't run (agent tasks also ask ``backends``).
"""

from __future__ import annotations

import os
import time
from itertools import islice
from pathlib import Path

from agentd.worklog import lost_entries
from agentd.tasks import scoring
from agentd.statuses import DONE, OPEN, RUNNABLE, WAITING
from agentd.agent.backends import agents_wait
from agentd.experiments import NAMES, problem as experiment_problem
from agentd.worklog.lines import FILE_FIELDS, LineError, make_task
from agentd.tasks.task import Task
from agentd.queue.tasklist import TaskList, order_key
from agentd.worklog.parse import State
from agentd.recordtype import Factory, Record
from agentd.queue.taskstate import status
from agentd.times import iso


EXPERIMENTS = NAMES


def score_identity(key: tuple) -> tuple:
    """A score key as the keys that score and read alike: 0 and -0.0 are equal but not written
    alike (``-0 value``), so a key with a zero goes by its numbers' repr (any other, as itself)."""
    kind, priority, value, certainty, minutes = key
    if value == 0 or certainty == 0 or minutes == 0:
        return kind, priority, repr(value), repr(certainty), repr(minutes)
    return key


def load_task_files(tasks_dir: Path) -> tuple[list[Task], list[str]]:
    """YAML task files: one mapping or a list of them per file, same schema as inline attrs."""
    defs: list[Task] = []
    problems: list[str] = []
    if not tasks_dir.is_dir():
        return defs, problems
    for path in sorted(tasks_dir.glob("*.y*ml")):
        more, errs = load_task_file(path)
        defs += more
        problems += errs
    return defs, problems


def load_task_file(path: Path) -> tuple[list[Task], list[str]]:
    """One task file's Tasks, and its problems as ``path:line: message``."""
    from agentd.config.schema import validate
    from agentd.config.yamlread import read_yaml_file

    defs: list[Task] = []
    problems: list[str] = []
    data, lines, errs = read_yaml_file(path, "task file")  # bounded: size, depth, aliases
    if errs:
        return defs, errs
    items = data if isinstance(data, list) else [data] if data is not None else []
    for i, item in enumerate(items):
        prefix = (str(i),) if isinstance(data, list) else ()
        sub_lines = {k[len(prefix):]: v for k, v in lines.items() if k[:len(prefix)] == prefix}
        clean, errs = validate(item, FILE_FIELDS, source=str(path), lines=sub_lines, fill_defaults=False)
        if errs:
            problems += errs
            continue
        title = clean.pop("title")
        kind = clean.pop("kind", "task") or "task"
        done = bool(clean.pop("done", False))
        line = sub_lines.get((), 1)
        try:
            defs.append(make_task(kind, str(title), clean, line=line, source=str(path), text=str(title),
                                  human_done=done))
        except LineError as e:
            problems.append(f"{path}:{line}: {e}")
    return defs, problems


def build(cfg, state: State, extra_defs: list[Task], *, has_gpu: bool, agent_backend: str | None,
          agent_reason: str, passovers: dict[str, int], first_seen: dict[str, float],
          now: float | None = None, wake_running: bool = False, cmd_seen: dict | None = None,
          waits: dict | None = None, times: dict | None = None) -> TaskList:
    """Every known task, open ones first in the order the next wake would take them.

    The worklog's plain tasks (``tasktable``) keep their order in the table; the rest are worked
    out here: any task an entry or a DONE/CANCEL/RETRY line names, directives, tasks with
    ``after`` or ``gpu``, and task files' tasks.  ``TaskList`` merges the two."""
    now = time.time() if now is None else now
    table = state.tasks
    latest, commands, fails = state.latest, state.commands, state.failures
    named = set(latest).union(commands, fails)
    named = named.intersection(table.ids) if named else named  # one pass over the ids, no id -> row dict
    shadowed = named | set(table.special_ids())
    defs = {tid: table[tid] for tid in shadowed}
    for d in extra_defs:
        if d.id not in table:
            defs.setdefault(d.id, d.to_dict())
    max_attempts = cfg["max_attempts"]
    backoff = cfg.duration("retry_backoff")
    age_bonus = cfg["directive_age_bonus"]
    tasks: list[Task] = []
    found: dict[str, str] = {}
    for tid, d in defs.items():
        if tid in latest or tid in commands or tid in fails:
            st, failures, run, until = status(d, state, max_attempts, wake_running, cmd_seen)
            if until and times and ("run", run) in times:  # its start and length, not the entry's wall time
                until = iso(times[("run", run)])
        else:  # no entry and no DONE/CANCEL/RETRY line: what ``status`` answers, without asking it
            st, failures, run, until = DONE if d.get("human_done") else OPEN, 0, None, None
        found[tid] = st
        tasks.append(_task(d, st, failures, run, until))
    statuses = _Statuses(found, table)
    after = {t.id: t.attrs.get("after") for t in tasks if t.attrs.get("after")}
    scores: dict = {}  # many tasks score alike: each distinct score is worked out once
    for t in tasks:
        age = (0.0 if t.kind != "directive" or t.priority == "critical"
               else max(0.0, (now - first_seen.get(t.id, now)) / 86400))
        a = t.attrs
        try:
            key = (score_identity((t.kind, t.priority, a.get("value"), a.get("certainty"), a.get("minutes"))),
                   t.attempts, age)
            sc = scores.get(key)
        except TypeError:  # an unhashable attr: score it on its own
            key, sc = None, None
        if sc is None:
            s = scoring.score(t.kind, t.priority, a, failures=t.attempts, age_days=age, age_bonus=age_bonus)
            sc = (s.total, s.parts, s.explain())
            if key is not None:
                scores[key] = sc
        t.score, t.parts = sc[0], sc[1]
        reason = _ineligible(t, statuses, now, backoff, has_gpu, agent_backend, agent_reason, state, after,
                             times=times or {})
        if t.status == WAITING:
            reason = (waits or {}).get(t.id) or reason
        t.eligible = reason is None
        t.why = sc[2] if reason is None else reason
        if reason is not None:
            t.held_by = _ineligible(t, statuses, now, backoff, has_gpu, agent_backend, agent_reason, state,
                                    after, waits=False, times=times or {}) or ""
            t.only_waits = not t.held_by
        if t.eligible and t.status == "interrupted":
            t.forced = "interrupted: the next wake resumes it before anything else"
            t.why = f"goes first: {t.forced} · {t.why}"
        elif (t.eligible and t.kind == "directive" and t.priority == "critical"
                and passovers.get(t.id, 0) >= cfg["critical_max_passovers"]):
            t.forced = f"critical directive passed over {passovers.get(t.id, 0)} wakes in a row"
            t.why = f"goes first: {t.forced} · {t.why}"
    tasks.sort(key=order_key)
    return TaskList(tasks, table, shadowed, None if agent_backend else f"needs an LLM backend: {agent_reason}",
                    _unknown_experiment)


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


def _unknown_experiment(title: str) -> str | None:
    """Why a plain experiment row can't run: an unknown name.  (``TaskTable`` keeps an experiment
    missing a required attr out of the plain rows: ``_ineligible`` sees it with its attrs.)"""
    return None if title in NAMES else experiment_problem(title, None)


# A Task's fields past its definition, as Task() fills them in (``_task`` copies this).
_FILLED = {k: v for k, v in Task._defaults.items() if k not in Task.DEFINITION and k != "parts"}
_DEFINITION = frozenset(Task.DEFINITION)


def _task(d: dict, st: str, failures: int, run, until) -> Task:
    """``Task(**d, status=st, ...)``, without the general constructor's per-field work (a queue of
    a million tasks makes a million of them).  Anything unusual in ``d`` goes the general way."""
    if d.keys() != _DEFINITION:  # a field missing, or one too many: Task() says which
        return Task(**d, status=st, attempts=failures, latest_run=run, defer_until=until)
    values = {**_FILLED, **d, "status": st, "attempts": failures, "latest_run": run, "defer_until": until,
              "parts": []}
    t = Task.__new__(Task)
    t.__dict__ = values
    return t


def _ineligible(t: Task, statuses: dict, now: float, backoff: float, has_gpu: bool,
                agent_backend: str | None, agent_reason: str, state: State, after: dict,
                waits: bool = True, times: dict | None = None) -> str | None:
    """Why t can't run now, or None.  ``waits=False`` leaves out the waits for a time (backoff,
    deferral), which a person may skip with `wake --task`."""
    if t.kind == "experiment" and t.title in NAMES and t.status not in (DONE, "cancelled", "running"):
        why = experiment_problem(t.title, t.attrs)
        if why is not None:  # never runnable as written: no RETRY or wait would help
            return f"{why}; fix the line (it can't run as written)"
    if t.status not in RUNNABLE:
        if t.status == "running":
            return "running now: a wake holds the lock"
        if t.status == "blocked":
            if t.attempts:
                return (f"blocked after {t.attempts} failed or interrupted attempts; write RETRY: {t.id} "
                        "to try again")
            return f"blocked; write RETRY: {t.id} to try again"
        return t.status
    if t.status == "failed" and waits:
        from agentd.store.clock import backoff_left

        left = backoff_left(times or {}, t.latest_run, (state.latest.get(t.id) or {}).get("at"), now,
                            backoff * 2 ** max(0, t.attempts - 1))
        if left > 0:
            return f"retry {t.attempts + 1} waits until {iso(now + left)} (backoff)"
    if t.status == "deferred" and waits:
        from agentd.store.clock import defer_ends

        until = defer_ends(times or {}, t.latest_run, t.defer_until, now)
        if until is not None and now < until:
            return f"deferred until {iso(until)}"
    for dep in t.attrs.get("after") or []:
        if dep not in statuses:
            return f"waits for {dep}, which no line or task file defines"
        if statuses[dep] != "done":
            loop = _loop(t.id, after, statuses)
            if loop:
                return (f"waits for {dep}, but the `after` links go round in a loop ({' → '.join(loop)}), so none "
                        "of them can start; remove one `after`")
            return f"waits for {dep} ({statuses[dep]})"
    if t.attrs.get("gpu") and not has_gpu:
        return "needs a GPU and none is present"
    if t.runner == "agent" and agent_backend is None:
        return f"needs an LLM backend: {agent_reason}"
    if t.kind == "experiment":
        return _unknown_experiment(t.title)
    return None


def _loop(start: str, after: dict, statuses: dict) -> list[str] | None:
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


def pick(tasks: list[Task]) -> Task | None:
    return next((t for t in tasks if t.eligible), None)


def update_passovers(tasks: list[Task], chosen: Task | None, passovers: dict[str, int]) -> dict[str, int]:
    """Count a wake against every eligible critical directive that did not run (directives are
    never plain rows: ``tasks.dynamic`` holds them all)."""
    out = {}
    for t in getattr(tasks, "dynamic", tasks):
        if t.kind == "directive" and t.priority == "critical" and t.eligible:
            out[t.id] = 0 if chosen is not None and t.id == chosen.id else passovers.get(t.id, 0) + (chosen is not None)
    return out


class View(Record):
    read: "object"  # worklog.Read
    tasks: list[Task]
    problems: list[str]  # task-file problems
    agent_backend: str | None
    has_gpu: bool
    lost: int = 0  # agentd's entries the worklog lost, counted as if there (``settle.restore`` appends them again)
    agent_reason: str = ""  # why agent tasks can't run now, when agent_backend is None
    unknown_answers: list = Factory(list)  # (line, id) of APPROVE/DENY lines that answer no request agentd has
    lost_spent: int = 0  # of ``lost``, those restored 3 times already: they stay in agentd's copy
    notes: list = Factory(list)  # (line, message): DONE/CANCEL/RETRY naming no task, ids defined again (``check``)
    note_count: int = 0  # of which ``notes`` holds the first few


def gpu_present() -> bool:
    """A cheap check for the queue (a GPU device node); the wake's health snapshot is the thorough one."""
    try:
        names = os.listdir("/dev")
    except OSError:
        return False
    return any(n.startswith("nvidia") and n[6:].isdigit() or n.startswith("nvgpu") for n in names)


def read(cfg, store=None):
    """The worklog, read once (incrementally through the index): (read, lost), where ``lost`` are
    agentd's entries the worklog lost, counted in the read as if they were there."""
    from agentd.worklog import worklog
    from agentd.worklog.index import Index

    r = worklog.read(cfg.worklog_path, Index(cfg.index_path))
    if r.state.suspects:
        r.state.resolve_suspects(store.entry_text if store is not None else (lambda run, seq: None))
    lost: list = []
    if store is not None and r.exists:
        r, lost = lost_entries.folded_in(cfg, store, r)
    return r, lost


def known(cfg, read, task_id: str) -> None:
    """Raise a UsageError unless a worklog line or a task file defines ``task_id``."""
    if task_id in read.state.tasks or any(d.id == task_id for d in load_task_files(cfg.tasks_dir)[0]):
        return
    from agentd.errors import UsageError

    raise UsageError(f"no task {task_id!r}; `agentd queue` lists them")


def load(cfg, store=None, has_gpu: bool | None = None, now: float | None = None, in_wake: bool = False,
         read_and_lost: tuple | None = None, wake_running: bool = False) -> View:
    """Everything the queue, status and the wake need.  ``in_wake``: the caller holds the lock and
    passes the read it has settled (``read_and_lost``); anyone else gets a fresh read.
    ``wake_running``: whether another process's wake holds the lock (``lock.wake_running``, asked by
    the caller: the queue sits below the wake).

    The cyclic garbage collector is off meanwhile: reading and building make a few objects per
    task and no cycles, and its passes over them all cost ~40 % of building 100,000 tasks."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(cfg, store, has_gpu, now, in_wake, read_and_lost, wake_running)
    finally:
        if enabled:
            gc.enable()


def _load(cfg, store, has_gpu, now, in_wake, read_and_lost, wake_running) -> View:
    defs, problems = load_task_files(cfg.tasks_dir)
    gpu = gpu_present() if has_gpu is None else has_gpu
    passovers: dict = {}
    seen: dict = {}
    cmd_seen: dict = {}
    now = time.time() if now is None else now
    if store is None and cfg.store_path.exists():
        from agentd.store.store import Store

        store = Store(cfg.store_path)
    r, lost = read_and_lost or read(cfg, store)
    if store is not None:
        from agentd.queue.seen import sight

        passovers = store.passovers()
        seen, cmd_seen = sight(cfg, store, r.state, defs, now)
    live = not in_wake and wake_running
    times = {}
    if store is not None and not store.readonly:
        from agentd.store import clock

        if not in_wake:  # (a wake re-based them while settling)
            with store.tx():
                clock.rebase(store.db)
        times = clock.for_queue(store.db)
    backend, reason = agents_wait(cfg, store, now)
    waits = {}
    unknown = []  # APPROVE/DENY lines for no request agentd has (a typo?): the first 20 of the last 1,000
    for aid, (_, _, line, *_) in islice(reversed(r.state.answers.items()), 1000):
        if len(unknown) < 20 and (store is None or store.approval(aid) is None):
            unknown.append((line, aid))
    unknown.sort()
    if store is not None:
        from agentd.agent.approvals import why_waiting

        waits = why_waiting(store, cfg.host, r.state.answers)
    tasks = build(cfg, r.state, defs, has_gpu=gpu, agent_backend=backend, agent_reason=reason,
                  passovers=passovers, first_seen=seen, now=now, wake_running=live, cmd_seen=cmd_seen,
                  waits=waits, times=times)
    spent = len(lost) - len(store.restorable(lost)) if lost else 0
    from agentd.worklog.linenotes import notes

    found, count = notes(r.state, [d.id for d in defs])
    return View(r, tasks, problems, backend, gpu, len(lost), "" if backend else reason, unknown, spent,
                found, count)
