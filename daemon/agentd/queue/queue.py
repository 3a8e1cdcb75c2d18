"""The queue: every known task, its status (``taskstate``), and whether it can run now.

``load`` gathers what the queue needs from the store, the host and the clock (``order.Facts``)
and the task files; ``order.build`` works the queue out from them, with no I/O of its own.  Open
tasks are ordered the way the next wake would take them; the rest follow, each with why it can't
run (agent tasks also ask ``backends``).
"""

from __future__ import annotations

import gc
import os
import time
from itertools import islice
from pathlib import Path

from agentd.agent.backends import agents_wait
from agentd.config.schema import validate
from agentd.config.yamlread import read_yaml_file
from agentd.errors import UsageError
from agentd.queue import shared
from agentd.queue.order import Facts, build
from agentd.recordtype import Factory, Record
from agentd.tasks.task import Task
from agentd.times import next_utc_day
from agentd.worklog.attrs import FILE_FIELDS
from agentd.worklog.index import Index
from agentd.worklog.lineerror import LineError
from agentd.worklog.linenotes import notes
from agentd.worklog.maketask import make_task
from agentd.worklog.worklog import read_with_lost

__all__ = ["Facts", "View", "build", "gpu_present", "known", "load", "load_task_file", "load_task_files", "pick",
           "update_passovers"]


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


def load_task_file(path: Path, key_lines: dict | None = None) -> tuple[list[Task], list[str]]:
    """One task file's Tasks, and its problems as ``path:line: message``.  ``key_lines``, when
    given, gets each Task's id -> {key: line} of its mapping (``("after", "1")``: the second id of
    its ``after``), so a problem found later names the line it is on."""
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
            continue
        if key_lines is not None:
            key_lines[defs[-1].id] = sub_lines
    return defs, problems


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
    history: "object" = None  # this host's finished runs, counted (``store.history``); None: no store


def gpu_present() -> bool:
    """A cheap check for the queue (a GPU device node); the wake's health snapshot is the thorough one."""
    try:
        names = os.listdir("/dev")
    except OSError:
        return False
    return any(n.startswith("nvidia") and n[6:].isdigit() or n.startswith("nvgpu") for n in names)


def known(cfg, read, task_id: str) -> None:
    """Raise a UsageError unless a worklog line, a task file or the fleet's ``fleet_worklog.txt`` (in a fleet
    clone, the tasks this host may take) defines ``task_id``."""
    if task_id in read.state.tasks or any(d.id == task_id for d in load_task_files(cfg.tasks_dir)[0]):
        return
    fleet = shared.read(cfg, local_ids=read.state.tasks)
    if fleet is not None and any(t.id == task_id for t in fleet.tasks):
        return
    raise UsageError(f"no task {task_id!r}; `agentd queue` lists them")


def load(cfg, store=None, has_gpu: bool | None = None, now: float | None = None, in_wake: bool = False,
         read_and_lost: tuple | None = None, wake_running: bool = False) -> View:
    """Everything the queue, status and the wake need.  ``in_wake``: the caller holds the lock and
    passes the read it has settled (``read_and_lost``); anyone else gets a fresh read.
    ``wake_running``: whether another process's wake holds the lock (``lock.wake_running``, asked by
    the caller: the queue sits below the wake).

    The cyclic garbage collector is off meanwhile: reading and building make a few objects per
    task and no cycles, and its passes over them all cost ~40 % of building 100,000 tasks."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(cfg, store, has_gpu, now, in_wake, read_and_lost, wake_running)
    finally:
        if enabled:
            gc.enable()


def _load(cfg, store, has_gpu, now, in_wake, read_and_lost, wake_running) -> View:
    defs, problems = load_task_files(cfg.tasks_dir)
    if store is None and cfg.store_path.exists():
        from agentd.store.store import Store  # lazy: the store (sqlite3) only when the state dir has one

        store = Store(cfg.store_path)
    if read_and_lost is None:
        read_and_lost = read_with_lost(cfg, store)
    r, lost = read_and_lost
    now = time.time() if now is None else now
    fleet = shared.read(cfg, store, local_ids=r.state.tasks, now=now)  # fleet_worklog.txt's tasks, and claims
    if fleet is not None:
        defs += [t for t in fleet.tasks if not any(d.id == t.id for d in defs)]
        problems += fleet.problems
    facts = _facts(cfg, store, r.state, defs, has_gpu, now, not in_wake and wake_running, in_wake)
    facts.claimed = fleet.held if fleet is not None else {}
    sig = _learned_cache(cfg, r.state.tasks, facts)
    tasks = build(cfg, r.state, defs, facts)
    if sig is not None and facts.learned_cache is None and getattr(tasks.table, "from_cache", True) is False:
        Index(cfg.index_path).keep_learned(cfg.worklog_path, sig, *tasks.table.kept())
    spent = len(lost) - len(store.restorable(lost)) if lost else 0
    found, count = notes(r.state, [d.id for d in defs])
    return View(r, tasks, problems, facts.agent_backend, facts.has_gpu, len(lost),
                "" if facts.agent_backend else facts.agent_reason, _unknown_answers(store, r.state), spent,
                found, count, facts.history)


def _facts(cfg, store, state, defs: list[Task], has_gpu: bool | None, now: float, live: bool,
           in_wake: bool) -> Facts:
    """What ``order.build`` needs besides the worklog, from the store (recording what is seen for
    the first time), the host and the clock."""
    facts = Facts(now=now, has_gpu=gpu_present() if has_gpu is None else has_gpu, agent_backend=None,
                  wake_running=live)
    if store is not None:
        from agentd.agent.approvals import why_waiting  # lazy: approvals (and what they import) only with a store
        from agentd.queue.seen import sight  # lazy: only with a store

        facts.passovers = store.passovers()
        facts.first_seen, facts.cmd_seen = sight(cfg, store, state, defs, now)
        if not store.readonly:
            from agentd.store import clock  # lazy: only with a store

            if not in_wake:  # (a wake re-based them while settling)
                with store.tx():
                    clock.rebase(store.db)
            facts.times = clock.for_queue(store.db)
    facts.agent_backend, facts.agent_reason = agents_wait(cfg, store, now)
    if store is not None:
        from agentd.agent.budget import utc_day  # lazy: only with a store
        from agentd.store.history import gather  # lazy: only with a store

        from agentd.store import slurm  # lazy: only with a store

        facts.waits = {**why_waiting(store, cfg.host, state.answers), **slurm.waits(store, cfg.host)}
        facts.history = gather(store, cfg.host)  # this host's finished runs, counted once per load
        per_day = float(cfg["budget"]["usd_per_day"])
        spent = store.ledger_day(utc_day(now))[1]
        facts.budget = (per_day - spent, per_day, spent, next_utc_day(now))
    return facts


def _learned_cache(cfg, table, facts) -> str | None:
    """Where this host has history, the learned order the index kept for it (into ``facts``); returns
    the signature it is kept under, or None (no history, or a table the index has no copy of)."""
    history = facts.history
    if history is None or not history.runs:
        return None
    # lazy: only a host with finished runs learns; a fresh host's queue and status load none of it
    from agentd.queue.learned import signature

    sig = signature(table, history)
    if sig is not None:
        facts.learned_cache = Index(cfg.index_path).learned(cfg.worklog_path, sig)
    return sig


def _unknown_answers(store, state) -> list:
    """APPROVE/DENY lines for no request agentd has (a typo?): (line, id) of the first 20 of the
    last 1,000."""
    unknown = []
    for aid, (_, _, line, *_) in islice(reversed(state.answers.items()), 1000):
        if len(unknown) < 20 and (store is None or store.approval(aid) is None):
            unknown.append((line, aid))
    unknown.sort()
    return unknown
