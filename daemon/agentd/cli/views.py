"""Text renderings of queue, status, runs and show: what a person reads in a terminal."""

from __future__ import annotations

import json
import re
import textwrap
from itertools import islice
from json.encoder import encode_basestring_ascii as string

from agentd.cli import runlines
from agentd.escapes import safe
from agentd.tasks.task import AGENT_KINDS
from agentd.queue.tasklist import Row, Run, TaskList


def queue_text(view, show_all: bool = False) -> list[str]:
    return "\n".join(queue_text_lines(view, show_all)).split("\n")


def _not_read(r, view):
    """One block, in line order: the lines not read (or read as prose) and those the whole worklog
    shows are ignored (a DONE naming no task, a task defined again: ``view.notes``)."""
    # lazy: heapq only when there are lines to list; keeps status's start-up
    from heapq import nsmallest

    count = r.state.error_count + view.note_count
    if not count:
        return
    yield f"{count} line(s) of {r.path.name} not read as written:"
    shown = nsmallest(50, [*r.state.errors, *view.notes])
    for line, msg in shown:
        yield from wrapped(msg, f"  line {line}: ", " " * 4)
    if r.state.error_count > len(r.state.errors) or count > len(shown):
        yield f"  … and {count - len(shown)} more (`agentd check` lists them all)"


def queue_text_lines(view, show_all: bool = False):
    """``queue_text``, a line at a time, or many joined by newlines (`agentd queue` writes them as
    they come)."""
    r = view.read
    tasks = view.tasks
    table = tasks.table
    n = len(tasks)
    shared = sum(t.source == "fleet" for t in getattr(tasks, "dynamic", ()))  # (never plain rows)
    yield (f"worklog: {r.path}  ({n} task{'s' if n != 1 else ''}"
           + (f", {shared} of them from fleet_worklog.txt" if shared else "")
           + f", {r.state.entry_count} agentd entries)")
    kinds = table.kinds
    # " KIND STATUS SCORE  " and the why line are shared by many tasks: each is made once
    middles: dict = {}
    whys: dict = {}
    templates: dict = {}  # (status, why) of a run of plain rows -> its templates (``_text_lines``)
    shown = hidden = 0
    agents = False
    for x in tasks.runs():
        if not show_all and x.status in ("done", "cancelled") and not getattr(x, "next_due", None):
            hidden += len(x.rows) if type(x) is Run else 1
            continue
        if type(x) is Run:
            if not shown:
                yield f"{'':2}{'ID':<14} {'KIND':<10} {'STATUS':<11} {'SCORE':>6}  TITLE"
            yield from runlines.text_lines(x, table, not shown, templates)
            shown += len(x.rows)
            agents = agents or any(map(AGENT_KINDS.__contains__, map(kinds.__getitem__, x.rows)))
            continue
        eligible, tid, title = x.eligible, x.id, x.title
        middle, why = _shared(x, middles, whys)
        if not shown:
            yield f"{'':2}{'ID':<14} {'KIND':<10} {'STATUS':<11} {'SCORE':>6}  TITLE"
            mark = "▶ " if eligible else "✗ "
        else:
            mark = "· " if eligible else "✗ "
        shown += 1
        agents = agents or x.runner == "agent"
        if x.source == "fleet":  # a shared task, from the fleet's fleet_worklog.txt (docs/fleet.md)
            title = f"[fleet] {title}"
        yield mark + runlines.text_id(tid) + middle + runlines.text_title(title)
        yield why
    if not shown:
        yield "nothing queued." + (f" ({hidden} done or cancelled; --all shows them)" if hidden else "")
    if hidden and shown:
        yield f"({hidden} done or cancelled tasks hidden; --all shows them)"
    yield from _not_read(r, view)
    if r.state.torn:
        yield (f"{r.state.torn} torn agentd entr{'y' if r.state.torn == 1 else 'ies'} ignored "
                   f"(cut short by a crash or an editor; the next wake restores agentd's copy)")
    if view.lost:
        due = view.lost - view.lost_spent
        yield (f"{view.lost} agentd entr{'y is' if view.lost == 1 else 'ies are'} missing from {r.path.name} "
               "(an editor saved over them?); counted from agentd's copy"
               + (f"; a wake appends {'it' if due == 1 else 'them' if due == view.lost else due} again once the "
                  "file has been still a few seconds" if due else "")
               + (f"; {view.lost_spent} were saved over after 3 restores and stay in agentd's copy only"
                  if view.lost_spent else ""))
    for line, aid in view.unknown_answers[:20]:
        yield (f"line {line}: {safe(aid, 40)} answers no approval request agentd has (`agentd status` lists the "
               "open ones)")
    for p in view.problems:
        yield from wrapped(p, "fleet: " if p.startswith("fleet_worklog.txt:") else "task file: ", " " * 11)
    if view.agent_backend is None and agents:
        yield from wrapped(f"{view.agent_reason} (docs/agent.md)", "agent tasks wait: ", " " * 18)


WIDTH = 100  # a reason's lines, at most (a longer clause is wrapped at its spaces)
MOST = 4000  # a reason past this many characters (a hostile line's) ends at a clause: --json has it whole


def wrapped(reason: str, first: str, indent: str, width: int = WIDTH) -> list[str]:
    """``first`` and ``reason`` on lines of at most ``width`` characters, the next ones starting with
    ``indent``: broken after a clause (``; `` or a sentence's end), never in one, unless a clause is
    longer than a line (then at a space).  Never cut, but past ``MOST`` characters, at a clause's end."""
    text = safe(" ".join(str(reason).split()))
    if len(first) + len(text) <= width:
        return [first + text]
    clauses = re.split(r"(?<=[;.])\s+", text)
    if len(text) > MOST:
        kept, n = [], 0
        for c in clauses:
            if n + len(c) > MOST:
                if not kept:  # one clause past it all (a hostile line's): at its last space before
                    kept.append(c[:MOST].rsplit(" ", 1)[0])
                    n = len(kept[0]) + 1
                break
            kept.append(c)
            n += len(c) + 1
        clauses = kept + [f"… and {len(text) - n + 1} more characters (`agentd queue --json` has them whole)"]
    lines, line, fresh = [], first, True
    for c in clauses:
        sep = "" if fresh else " "
        if len(line) + len(sep) + len(c) > width and not fresh:
            lines.append(line)
            line, sep, fresh = indent, "", True
        if len(line) + len(sep) + len(c) <= width:
            line, fresh = line + sep + c, False
            continue
        *done, line = textwrap.wrap(c, width, initial_indent=line, subsequent_indent=indent,
                                    break_on_hyphens=False) or [line]
        lines += done
        fresh = False
    lines.append(line)
    return lines


def _shared(t, middles: dict, whys: dict) -> tuple[str, str]:
    """A task's " KIND STATUS SCORE  " and its why line, each made once for the tasks that share it."""
    kind = "directive!" if t.kind == "directive" and t.priority == "critical" else t.kind
    key = (kind, t.status, repr(t.score))  # (0.0 and -0.0 are equal, but written apart)
    middle = middles.get(key)
    if middle is None:
        middle = middles[key] = f" {kind:<10} {t.status:<11} {t.score:>6.2f}  "
    why = whys.get((t.eligible, t.why))
    if why is None:
        # (never cut: a why of a task that waits holds its approval's `what`, whole)
        why = whys[(t.eligible, t.why)] = (f"{'':18}why: {safe(t.why)}" if t.eligible else runlines.not_now(t.why))
    return middle, why


def queue_json(view, tasks: bool = True) -> dict:
    r = view.read
    return {"worklog": str(r.path), "exists": r.exists,
            **({"tasks": [t.to_json() for t in view.tasks]} if tasks else {}),
            "unreadable": [{"line": line, "message": msg} for line, msg in r.state.errors],
            "unreadable_count": r.state.error_count, "torn_entries": r.state.torn, "lost_entries": view.lost,
            "lost_entries_past_restores": view.lost_spent,
            "task_file_problems": view.problems, "agent_backend": view.agent_backend, "gpu": view.has_gpu,
            "unknown_answers": [{"line": line, "id": aid} for line, aid in view.unknown_answers],
            "notes": [{"line": line, "message": msg} for line, msg in view.notes], "note_count": view.note_count}


def queue_json_text(view) -> str:
    return "".join(queue_json_chunks(view))


def queue_json_chunks(view, batch: int = 4096):
    """``queue_json`` as the text `agentd queue --json` writes, in pieces: indented, with one line
    per task (and per item of the other lists).  The whole document through ``json.dumps(indent=2)``
    takes Python's pure-Python encoder, ~1 s for 10,000 tasks; each line here is one call to the C
    one, or is written directly (``task_lines``), and a long queue is never held as one string."""
    enc = json.JSONEncoder(default=str).encode
    items = list(queue_json(view, tasks=False).items())
    items.insert(2, ("tasks", view.tasks or []))  # after "worklog" and "exists", as in queue_json
    yield "{\n"
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if not (isinstance(value, (list, TaskList)) and value):
            yield f"  {enc(key)}: {enc(value)}{comma}\n"
            continue
        yield f"  {enc(key)}: [\n"
        sep = "    "
        # (a run of plain rows comes as an iterator of its lines: joined as it gives them, each line
        # is not passed through a Python generator of its own)
        for lines in (task_pieces(value.runs(), value) if key == "tasks" else [map(enc, value)]):
            lines = iter([lines]) if type(lines) is str else lines
            while part := ",\n    ".join(islice(lines, batch)):
                yield sep + part
                sep = ",\n    "
        yield f"\n  ]{comma}\n"
    yield "}\n"


def task_lines(items, tasks=None):
    """``task_pieces``, a line at a time."""
    for x in task_pieces(items, tasks):
        if type(x) is str:
            yield x
        else:
            yield from x


def task_pieces(items, tasks=None):
    """``json.dumps(t.to_json())`` for each task, written directly: the fields many tasks share (kind,
    status, the score's parts and explanation) are encoded once.  ``items`` are Tasks, or a
    TaskList's ``runs()`` or ``rows()`` (``tasks``), whose plain rows are written from the table's
    columns (``_json_lines``), a run of them as an iterator of its lines.  A task's value of a type the fast way does not expect goes through
    ``to_json`` and the encoder.  (tests/queue/test_scale.py checks both agree.)"""
    enc = json.JSONEncoder(default=str).encode
    shared: dict = {}
    parts_json: dict = {}
    templates: dict = {}  # (status, why) of a run of plain rows -> its templates (``_json_lines``)
    for t in items:
        if type(t) is Row:
            t = Run((t.i,), t.status, t.why)
        if type(t) is Run:
            yield runlines.json_lines(t, tasks.table, templates)  # (an iterator of its lines)
            continue
        a = t.attrs
        after, run, parts, score = a.get("after") or [], a.get("run"), t.parts, t.score
        if not (type(t.id) is str and type(t.title) is str and type(t.why) is str and type(score) is float
                and score - score == 0.0 and type(t.attempts) is int and type(t.line) is int
                and type(t.source) is str and type(t.kind) is str and type(t.status) is str
                and type(t.priority) is str and type(t.eligible) is bool
                and (run is None or type(run) is str) and type(after) is list
                and (t.defer_until is None or type(t.defer_until) is str)
                and (t.latest_run is None or type(t.latest_run) is str)
                and (t.next_due is None or type(t.next_due) is str)
                and type(t.certainty) is float and type(t.certainty_evidence) is dict):
            yield enc(t.to_json())
            continue
        p = parts_json.get(id(parts))
        if p is None or p[0] is not parts:
            p = parts_json[id(parts)] = (parts, enc([{"part": label, "effect": effect} for label, effect in parts]))
        ce = t.certainty_evidence
        ev = parts_json.get(id(ce))
        if ev is None or ev[0] is not ce:
            ev = parts_json[id(ce)] = (ce, enc(ce))
        why = shared.get(t.why)
        if why is None:
            why = shared[t.why] = string(t.why)
        common = (t.kind, t.status, t.priority, t.source, t.eligible)
        c = shared.get(common)
        if c is None:
            c = shared[common] = (string(t.kind), string(t.status), string(t.priority), string(t.runner),
                                  string(t.source), "true" if t.eligible else "false")
        yield (f'{{"id": {string(t.id)}, "title": {string(t.title)}, "kind": {c[0]}, "status": {c[1]}, '
               f'"score": {score!r}, "certainty": {t.certainty!r}, "certainty_evidence": {ev[1]}, '
               f'"eligible": {c[5]}, "why": {why}, "priority": {c[2]}, "runner": {c[3]}, '
               f'"attempts": {t.attempts}, "line": {t.line}, "source": {c[4]}, '
               f'"after": {enc(after) if after else "[]"}, "run": {"null" if run is None else string(run)}, '
               f'"gpu": {"true" if a.get("gpu") else "false"}, '
               f'"defer_until": {"null" if t.defer_until is None else string(t.defer_until)}, '
               f'"latest_run": {"null" if t.latest_run is None else string(t.latest_run)}, '
               f'"next_due": {"null" if t.next_due is None else string(t.next_due)}, "parts": {p[1]}}}')


RUN_COLS = ("run_id", "task_id", "kind", "status", "started_at", "duration_s", "exit_code", "input_tokens",
            "output_tokens", "cost_usd", "provider")


def runs_text(runs: list[dict]) -> list[str]:
    if not runs:
        return ["no runs yet."]
    ids = [safe(r["task_id"]) for r in runs]  # never cut (a person copies one into `DONE:`): the column widens
    w, rw = max(14, *map(len, ids)), max(24, *(len(r["run_id"]) for r in runs))
    out = [f"{'RUN':<{rw}} {'TASK':<{w}} {'KIND':<10} {'STATUS':<11} {'STARTED':<20} {'SECS':>7} {'EXIT':>4} "
           f"{'TOK IN':>8} {'TOK OUT':>8} {'USD':>7} PROVIDER"]
    for r, tid in zip(runs, ids):
        dur = f"{r['duration_s']:.1f}" if r["duration_s"] is not None else "-"
        ex = "-" if r["exit_code"] is None else str(r["exit_code"])
        out.append(f"{r['run_id']:<{rw}} {tid:<{w}} {r['kind']:<10} {r['status']:<11} "
                   f"{r['started_at']:<20} {dur:>7} {ex:>4} {r['input_tokens']:>8} {r['output_tokens']:>8} "
                   f"{r['cost_usd']:>7.4f} {r['provider'] or '-'}")
    return out
