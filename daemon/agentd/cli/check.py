"""`agentd check [FILE]`: every line agentd would ignore, misread or never be able to run.

It reads the worklog and the task files and runs nothing: no wake, no write to the worklog,
the parse cache or the store (approvals are looked up in the store opened read-only).  Each
problem names its file and line, and where a near miss is likely, what was probably meant.
``linenotes`` holds the problems only the whole worklog shows (a DONE line naming no task, an id
defined twice); the queue lists them too (``queue.load``).
"""

from __future__ import annotations

import sqlite3
from itertools import compress
from pathlib import Path

from agentd.config.worklogdir import FLEET_WORKLOG
from agentd.errors import UsageError
from agentd.experiments import problem
from agentd.lazyre import lazy
from agentd.queue import shared
from agentd.queue.order import after_loop
from agentd.queue.queue import load_task_file
from agentd.worklog.parse import parse_bytes
from agentd.worklog.linenotes import _did_you_mean, notes
from agentd.recordtype import Record

_LOCATED = lazy(r"^(.*?):(\d+): (.*)$")


class Problem(Record):
    path: str
    line: int
    message: str
    more: int = 0  # a summary of this many problems not listed one by one ("… and N more")

    def count(self) -> int:
        return self.more or 1

    def text(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"

    def to_json(self) -> dict:
        return {"file": self.path, "line": self.line, "message": self.message}


def _located(text: str, default: str) -> Problem:
    m = _LOCATED.match(text)
    return Problem(m.group(1), int(m.group(2)), m.group(3)) if m else Problem(default, 0, text)


def _never_runs(tasks, known: set, done: set, key_lines: dict | None = None) -> list[tuple[int, str]]:
    """(line, why) of the tasks that can never run as written: an experiment of an unknown name or
    missing an attr, an ``after`` naming no task, ``after`` links that go round in a loop.  A
    problem with ``after`` names its line where ``key_lines`` (a task file's, ``load_task_file``)
    has it: that of the id in the list, or of the ``after`` key."""
    out = []
    after = {t.id: t.attrs.get("after") for t in tasks if t.attrs.get("after")}
    statuses = {tid: "done" if tid in done else "open" for tid in known}
    for t in tasks:
        if t.id in done:
            continue
        if t.kind == "experiment":
            why = problem(t.title, t.attrs)
            if why is not None:
                out.append((t.line, f"{why}; the queue holds it back"))
        lines = (key_lines or {}).get(t.id) or {}
        for n, dep in enumerate(t.attrs.get("after") or ()):
            if dep not in known:
                line = lines.get(("after", str(n))) or lines.get(("after",)) or t.line
                out.append((line, f"after: {dep} names no task, so {t.id} waits for ever"
                                     f"{_did_you_mean(dep, sorted(known))}"))
        if t.id in after:
            loop = after_loop(t.id, after, statuses)
            if loop:
                out.append((lines.get(("after",)) or t.line,
                            f"the `after` links go round in a loop ({' → '.join(loop)}): none of them can start"))
    return out


def _done_ids(state) -> set:
    """Tasks a person checked off, marked DONE/CANCEL, or an entry recorded done."""
    table = state.tasks
    done = set(compress(table.ids, table.done))
    for tid, marks in state.commands.items():
        if marks[-1].verb in ("done", "cancel"):
            done.add(tid)
    done.update(tid for tid, e in state.latest.items() if e.get("status") == "done")
    return done


def _parse(path: Path):
    return parse_bytes(path.read_bytes())


def check_worklog(path: Path, file_tasks: list, store_path: Path | None = None, state=None) -> list[Problem]:
    """The problems of one worklog (``file_tasks``: the task files' Tasks, which its lines may name)."""
    state = _parse(path) if state is None else state
    state.resolve_suspects(lambda run, seq: None)  # without agentd's copy: reported, not read
    where = str(path)
    found = [Problem(where, line, msg) for line, msg in state.errors]
    if state.error_count > len(state.errors):
        more = state.error_count - len(state.errors)
        found.append(Problem(where, 0, f"… and {more} more unreadable lines", more))
    file_ids = [t.id for t in file_tasks]
    lines, total = notes(state, file_ids, cap=500)
    found += [Problem(where, line, msg) for line, msg in lines]
    if total > len(lines):
        found.append(Problem(where, 0, f"… and {total - len(lines)} more lines naming no task or defined again",
                             total - len(lines)))
    table = state.tasks
    known = set(table.ids).union(file_ids)
    wanted = {*table.special, *compress(range(len(table.kinds)), map("experiment".__eq__, table.kinds))}
    tasks = [table.task(i) for i in sorted(wanted)]
    found += [Problem(where, line, msg) for line, msg in _never_runs(tasks, known, _done_ids(state))]
    found += _unknown_answers(state, store_path, where)
    return sorted(found, key=lambda p: (p.more > 0, p.line))  # the summaries of those not listed last


def _unknown_answers(state, store_path: Path | None, where: str) -> list[Problem]:
    """APPROVE/DENY lines for an id no request in agentd's store has (read-only; no store: all)."""
    if not state.answers:
        return []
    ids = set()
    if store_path is not None and store_path.exists():
        try:
            db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True)
            try:
                ids = {r[0] for r in db.execute("SELECT id FROM approvals")}
            finally:
                db.close()
        except sqlite3.Error:
            return []  # can't tell; the queue says so with the store
    return [Problem(where, a[2], f"{a[0].upper()}: {aid} answers no approval request agentd has"
                    f"{_did_you_mean(aid, sorted(ids))}")
            for aid, a in state.answers.items() if aid not in ids]


def check_task_file(path: Path, worklog_ids=()) -> tuple[list[Problem], list]:
    """(problems, Tasks) of one YAML task file."""
    key_lines: dict = {}
    tasks, problems = load_task_file(path, key_lines)
    found = [_located(p, str(path)) for p in problems]
    known = {*worklog_ids, *(t.id for t in tasks)}
    done = {t.id for t in tasks if t.human_done}
    found += [Problem(str(path), line, msg) for line, msg in _never_runs(tasks, known, done, key_lines)]
    return found, tasks


def is_task_file(path: Path) -> bool:
    return path.suffix.lower() in (".yml", ".yaml")


def check(worklog: Path | None, tasks_dir: Path | None, store_path: Path | None = None,
          only: Path | None = None) -> list[Problem]:
    """Every problem of the worklog and the task files (or of ``only``, a worklog or a task file)."""
    if only is not None:
        if not only.is_file():
            raise UsageError(f"no file {only}")
        if is_task_file(only):
            return check_task_file(only)[0]
        files = [p for p in sorted(tasks_dir.glob("*.y*ml"))] if tasks_dir and tasks_dir.is_dir() else []
        file_tasks = [t for p in files for t in check_task_file(p)[1]]
        if only.name == FLEET_WORKLOG:  # and what only a fleet worklog can get wrong
            data = only.read_bytes()
            state = parse_bytes(data)
            found = check_worklog(only, file_tasks, store_path, state)
            found += [Problem(str(only), line, msg) for line, msg in shared.check_lines(only, state, data)]
            return sorted(found, key=lambda p: (p.more > 0, p.line))
        return check_worklog(only, file_tasks, store_path)
    found: list[Problem] = []
    file_tasks: list = []
    files = sorted(tasks_dir.glob("*.y*ml")) if tasks_dir is not None and tasks_dir.is_dir() else []
    state = _parse(worklog) if worklog is not None and worklog.exists() else None
    for p in files:
        problems, tasks = check_task_file(p, state.tasks.ids if state is not None else ())
        found += problems
        file_tasks += tasks
    if state is not None:
        found = check_worklog(worklog, file_tasks, store_path, state) + found
    return found
