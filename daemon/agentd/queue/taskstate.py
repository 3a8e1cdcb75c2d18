"""A task's state from the worklog: its latest agentd entry, and a person's DONE / CANCEL /
RETRY lines, whichever is newer.

Entries are ordered by sequence number.  A person's line is ordered by its place in the file,
or, when agentd first saw it after entries were written above or below it, by the worklog's
highest seq at that moment: ``first_sight`` decides what to record, ``status`` reads it.
"""

from __future__ import annotations

import os

from agentd.statuses import ATTEMPTS, BLOCKED, CANCELLED, DONE, INTERRUPTED, OPEN, RUNNING
from agentd.tasks.task import Task, runner_of
from agentd.times import parse as parse_time
from agentd.worklog.parse import Mark, State


def worklog_scope(path) -> str:
    """A short name for a worklog path, so that lines of two worklogs sharing a store stay apart."""
    # lazy: hashlib loads OpenSSL (~5 ms); most runs of queue and status never hash
    import hashlib

    real = os.path.realpath(path)  # the same file through a symlinked directory is the same worklog
    return hashlib.sha1(real.encode("utf-8", "surrogateescape")).hexdigest()[:10]


def command_ids(state: State, scope: str) -> dict[tuple, str]:
    """A stable name for each DONE/CANCEL/RETRY line: its worklog, verb, task and which one of its
    kind it is (``cmd:SCOPE:retry:job:2``)."""
    out = {}
    for tid, cmds in state.commands.items():
        counts: dict = {}
        for m in cmds:
            n = counts[m.verb] = counts.get(m.verb, 0) + 1
            out[(tid, *m)] = f"cmd:{scope}:{m.verb}:{tid}:{n}"
    return out




def first_sight(names: dict, before: dict, fresh: bool, max_seq: int, now: float,
                 seq_by=None) -> tuple[dict, dict]:
    """When and at which seq to record lines agentd sees for the first time.

    A line met on this store's first read of the worklog, or together with its task, predates
    what agentd can know: it is ordered by its place in the file (time 0, no seq).  Any other new
    line is newer than every entry there is now: now, at the worklog's highest seq.  A line recorded
    before names carried the worklog (``cmd:retry:job:1``) keeps what was recorded; one recorded
    with a time only gets the seq of the last entry written by then (``seq_by(time)``).  ``fresh``:
    this store has not read the worklog before (it has no ``wl:`` row for it, and no such old names).
    ``before``: what the store has for these names, their old names and their tasks.
    """
    when, seqs = {}, {}
    for key, name in names.items():
        legacy = before.get("cmd:" + name.split(":", 2)[2])
        if legacy is not None:
            at, seq = legacy
            if seq is None and at and seq_by is not None:
                seq = seq_by(at)
            when[name], seqs[name] = at, seq
        elif fresh or key[0] not in before:
            when[name], seqs[name] = 0.0, None
        else:
            when[name], seqs[name] = now, max_seq
    return when, seqs


def status(t: Task, state: State, max_attempts: int, live: bool = False,
           cmd_seen: dict | None = None) -> tuple[str, int, str | None, str | None]:
    """(status, failed attempts since the last RETRY or done run, latest run id, defer until)."""
    return decide(t, state, max_attempts, live, cmd_seen)[:4]


def decide(t: Task, state: State, max_attempts: int, live: bool = False,
           cmd_seen: dict | None = None) -> tuple[str, int, str | None, str | None, float | None]:
    """``status``'s answer, and when the task was last done (seconds since the epoch) where that
    decided it: its latest entry's time, or when agentd first saw a person's DONE line (0 when that
    line predates agentd's first read of the worklog); None when it is not done or has no time.

    A person's DONE/CANCEL/RETRY counts as newer than the task's latest entry when it sits below
    that entry in the file, or when agentd first saw it after the entry was written (for people
    who add lines at the top).
    """
    tid = t.id
    latest = state.latest.get(tid)
    cmds = state.commands.get(tid, [])
    seen = cmd_seen or {}
    latest_at = parse_time(latest.get("at")) if latest else None

    def boundary(m: Mark) -> float:
        """Where the line stands among the entries (as a seq): its place in the file, or later when
        agentd first saw it after entries below or above it were written."""
        at, seq = seen.get((tid, *m)) or (None, None)
        if seq is not None:  # the worklog's highest seq when the line was first seen: entries up to it are older
            return max(m.order, seq + 0.5)
        # seen before agentd kept that seq: by time; `at=` is whole seconds, so only a later second counts
        if at and latest is not None and latest_at is not None and at >= latest_at + 1:
            return max(m.order, latest["seq"] + 0.5)
        return m.order

    def when(m: Mark) -> tuple:  # the last of equals is the one lower in the file
        return boundary(m), (seen.get((tid, *m)) or (0,))[0] or 0, m.order, m.line

    newer = [m for m in cmds if latest is None or boundary(m) > latest["seq"]]
    last_cmd = max(newer, key=when) if newer else None
    # failures before the last RETRY, or before a done run (a recurring task's earlier rounds), don't count
    retry_key = max((boundary(m) for m in cmds if m.verb == "retry"), default=0)
    retry_key = max(retry_key, state.last_done.get(tid, 0))
    failures = sum(1 for s in state.failures.get(tid, []) if s > retry_key)
    run = latest["run"] if latest else None
    if t.human_done:
        return DONE, failures, run, None, None
    if last_cmd:
        done_at = ((seen.get((tid, *last_cmd)) or (0.0,))[0] or 0.0) if last_cmd.verb == "done" else None
        return {"done": DONE, "cancel": CANCELLED, "retry": OPEN}[last_cmd.verb], failures, run, None, done_at
    if latest is None:
        return OPEN, failures, run, None, None
    st = latest["status"]
    if st == RUNNING:  # a "started" entry with no finding: running now, or its wake was killed
        if live:
            return RUNNING, failures, run, None, None
        # killed: the next wake records a command's or experiment's run as an interrupted attempt
        # (settle) before it runs it again, so the score shown now counts it as that wake's entry will
        return INTERRUPTED, failures + (runner_of(t.kind) != "agent"), run, None, None
    if st in ATTEMPTS and failures >= max_attempts:
        return BLOCKED, failures, run, None, None
    return st, failures, run, latest.get("until"), latest_at if st == DONE else None
