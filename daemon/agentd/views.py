"""Text renderings of queue, status, runs and show: what a person reads in a terminal."""

from __future__ import annotations

from agentd.lazyre import lazy
from agentd.tasklist import Row, TaskList


_UNSAFE = lazy("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(m) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 256 else f"\\u{c:04x}"


def safe(text: str, limit: int = 0) -> str:
    """Escape control characters so worklog text can't drive the terminal."""
    text = text if type(text) is str else str(text)
    if not (text.isascii() and text.isprintable()):  # printable ASCII holds nothing to escape
        text = _UNSAFE.sub(_escape, text)
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def queue_text(view, show_all: bool = False) -> list[str]:
    return list(queue_text_lines(view, show_all))


def queue_text_lines(view, show_all: bool = False):
    """``queue_text``, a line at a time (`agentd queue` writes them in chunks as they come)."""
    r = view.read
    tasks = view.tasks
    table = tasks.table
    n = len(tasks)
    yield f"worklog: {r.path}  ({n} task{'s' if n != 1 else ''}, {r.state.entry_count} agentd entries)"
    ids, titles, skeys = table.ids, table.titles, table.skeys
    # " KIND STATUS SCORE  " and the why line are shared by many tasks: each is made once
    plain: dict = {}  # (score key, status, why) of a plain row -> (eligible, middle, why line, agent?)
    middles: dict = {}
    whys: dict = {}
    shown = hidden = 0
    agents = False
    for x in tasks.rows():
        if not show_all and x.status in ("done", "cancelled"):
            hidden += 1
            continue
        if type(x) is Row:
            i = x[0]
            c = plain.get((skeys[i], x[1], x[2]))
            if c is None:
                if len(plain) >= 4096:  # a million tasks may all score differently
                    plain.clear(), middles.clear(), whys.clear()
                t = tasks.shared(x)
                c = plain[(skeys[i], x[1], x[2])] = (t.eligible, *_shared(t, middles, whys), t.runner == "agent")
            eligible, middle, why, agent = c
            tid, title = ids[i], titles[i]
        else:
            eligible, tid, title = x.eligible, x.id, x.title
            middle, why = _shared(x, middles, whys)
            agent = x.runner == "agent"
        if not shown:
            yield f"{'':2}{'ID':<14} {'KIND':<10} {'STATUS':<11} {'SCORE':>6}  TITLE"
            mark = "▶ " if eligible else "✗ "
        else:
            mark = "· " if eligible else "✗ "
        shown += 1
        agents = agents or agent
        tid = tid.ljust(14) if len(tid) <= 14 and tid.isascii() and tid.isprintable() else f"{safe(tid, 14):<14}"
        if not (len(title) <= 70 and title.isascii() and title.isprintable()):
            title = safe(title, 70)
        yield mark + tid + middle + title
        yield why
    if not shown:
        yield "nothing queued." + (f" ({hidden} done or cancelled; --all shows them)" if hidden else "")
    if hidden and shown:
        yield f"({hidden} done or cancelled tasks hidden; --all shows them)"
    errs = r.state.errors
    if r.state.error_count:
        yield f"could not read {r.state.error_count} line(s) of {r.path.name}:"
        for line, msg in errs[:50]:
            yield f"  line {line}: {safe(msg, 200)}"
        if r.state.error_count > 50:
            yield f"  … and {r.state.error_count - 50} more (agentd queue --json lists up to 500)"
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
        yield f"task file: {safe(p, 300)}"
    if view.agent_backend is None and agents:
        yield f"agent tasks wait: {safe(view.agent_reason, 300)} (docs/agent.md)"


def _shared(t, middles: dict, whys: dict) -> tuple[str, str]:
    """A task's " KIND STATUS SCORE  " and its why line, each made once for the tasks that share it."""
    kind = "directive!" if t.kind == "directive" and t.priority == "critical" else t.kind  # (t: a Task or Shared)
    middle = middles.get((kind, t.status, t.score))
    if middle is None:
        middle = middles[(kind, t.status, t.score)] = f" {kind:<10} {t.status:<11} {t.score:>6.2f}  "
    why = whys.get((t.eligible, t.why))
    if why is None:
        why = whys[(t.eligible, t.why)] = f"{'':18}{'why: ' if t.eligible else 'not now: '}{safe(t.why, 200)}"
    return middle, why


def queue_json(view, tasks: bool = True) -> dict:
    r = view.read
    return {"worklog": str(r.path), "exists": r.exists,
            **({"tasks": [t.to_json() for t in view.tasks]} if tasks else {}),
            "unreadable": [{"line": line, "message": msg} for line, msg in r.state.errors],
            "unreadable_count": r.state.error_count, "torn_entries": r.state.torn, "lost_entries": view.lost,
            "lost_entries_past_restores": view.lost_spent,
            "task_file_problems": view.problems, "agent_backend": view.agent_backend, "gpu": view.has_gpu,
            "unknown_answers": [{"line": line, "id": aid} for line, aid in view.unknown_answers]}


def queue_json_text(view) -> str:
    return "".join(queue_json_chunks(view))


def queue_json_chunks(view, batch: int = 4096):
    """``queue_json`` as the text `agentd queue --json` writes, in pieces: indented, with one line
    per task (and per item of the other lists).  The whole document through ``json.dumps(indent=2)``
    takes Python's pure-Python encoder, ~1 s for 10,000 tasks; each line here is one call to the C
    one, or is written directly (``task_lines``), and a long queue is never held as one string."""
    import json

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
        lines = task_lines(value.rows(), value) if key == "tasks" else map(enc, value)
        sep = ""
        while True:
            part = [x for _, x in zip(range(batch), lines)]
            if not part:
                break
            yield sep + "    " + ",\n    ".join(part)
            sep = ",\n"
        yield f"\n  ]{comma}\n"
    yield "}\n"


def task_lines(items, tasks=None):
    """``json.dumps(t.to_json())`` for each task, written directly: the fields many tasks share (kind,
    status, the score's parts and explanation) are encoded once.  ``items`` are Tasks, or a
    TaskList's ``rows()`` (``tasks``), whose plain rows are written from the table's columns.
    A value of a type the fast way does not expect goes through ``to_json`` and the encoder.
    (tests/test_scale.py checks both agree.)"""
    import json
    from json.encoder import encode_basestring_ascii as string

    enc = json.JSONEncoder(default=str).encode
    shared: dict = {}
    parts_json: dict = {}
    if tasks is not None:
        table = tasks.table
        ids, titles, runs, skeys, lines = table.ids, table.titles, table.runs, table.skeys, table.lines
    can_run: dict = {}  # score key -> the shared part of a plain task's line that can run
    for t in items:
        if type(t) is Row:
            i, st, why = t
            tid, title, run = ids[i], titles[i], runs[i]
            if not (type(tid) is str and type(title) is str and (run is None or type(run) is str)):
                yield enc(tasks.task(t).to_json())
                continue
            sk = skeys[i]
            c = can_run.get(sk) if why is None else shared.get((sk, st, why))
            if c is None:
                if len(can_run) + len(shared) >= 4096:  # a million tasks may all score differently
                    can_run.clear(), shared.clear()
                p = tasks.shared(t)
                c = (can_run if why is None else shared)[sk if why is None else (sk, st, why)] = (
                    f'"kind": {string(p.kind)}, "status": {string(p.status)}, "score": {p.score!r}, '
                    f'"eligible": {"true" if p.eligible else "false"}, "why": {string(p.why)}, '
                    f'"priority": {string(p.priority)}, "runner": {string(p.runner)}, "attempts": 0, ',
                    '"parts": [' + ", ".join(f'{{"part": {string(label)}, "effect": {string(effect)}}}'
                                             for label, effect in p.parts) + ']}')
            yield (f'{{"id": {string(tid)}, "title": {string(title)}, {c[0]}"line": {lines[i]}, '
                   f'"source": "worklog", "after": [], "run": {"null" if run is None else string(run)}, '
                   f'"gpu": false, "defer_until": null, "latest_run": null, {c[1]}')
            continue
        a = t.attrs
        after, run, parts, score = a.get("after") or [], a.get("run"), t.parts, t.score
        if not (type(t.id) is str and type(t.title) is str and type(t.why) is str and type(score) is float
                and score - score == 0.0 and type(t.attempts) is int and type(t.line) is int
                and type(t.source) is str and type(t.kind) is str and type(t.status) is str
                and type(t.priority) is str and type(t.eligible) is bool
                and (run is None or type(run) is str) and type(after) is list
                and (t.defer_until is None or type(t.defer_until) is str)
                and (t.latest_run is None or type(t.latest_run) is str)):
            yield enc(t.to_json())
            continue
        p = parts_json.get(id(parts))
        if p is None or p[0] is not parts:
            p = parts_json[id(parts)] = (parts, enc([{"part": label, "effect": effect} for label, effect in parts]))
        why = shared.get(t.why)
        if why is None:
            why = shared[t.why] = string(t.why)
        common = (t.kind, t.status, t.priority, t.source, t.eligible)
        c = shared.get(common)
        if c is None:
            c = shared[common] = (string(t.kind), string(t.status), string(t.priority), string(t.runner),
                                  string(t.source), "true" if t.eligible else "false")
        yield (f'{{"id": {string(t.id)}, "title": {string(t.title)}, "kind": {c[0]}, "status": {c[1]}, '
               f'"score": {score!r}, "eligible": {c[5]}, "why": {why}, "priority": {c[2]}, "runner": {c[3]}, '
               f'"attempts": {t.attempts}, "line": {t.line}, "source": {c[4]}, '
               f'"after": {enc(after) if after else "[]"}, "run": {"null" if run is None else string(run)}, '
               f'"gpu": {"true" if a.get("gpu") else "false"}, '
               f'"defer_until": {"null" if t.defer_until is None else string(t.defer_until)}, '
               f'"latest_run": {"null" if t.latest_run is None else string(t.latest_run)}, "parts": {p[1]}}}')


RUN_COLS = ("run_id", "task_id", "kind", "status", "started_at", "duration_s", "exit_code", "input_tokens",
            "output_tokens", "cost_usd", "provider")


def runs_text(runs: list[dict]) -> list[str]:
    if not runs:
        return ["no runs yet."]
    out = [f"{'RUN':<24} {'TASK':<14} {'KIND':<10} {'STATUS':<11} {'STARTED':<20} {'SECS':>7} {'EXIT':>4} "
           f"{'TOK IN':>8} {'TOK OUT':>8} {'USD':>7} PROVIDER"]
    for r in runs:
        dur = f"{r['duration_s']:.1f}" if r["duration_s"] is not None else "-"
        ex = "-" if r["exit_code"] is None else str(r["exit_code"])
        out.append(f"{r['run_id']:<24} {safe(r['task_id'], 14):<14} {r['kind']:<10} {r['status']:<11} "
                   f"{r['started_at']:<20} {dur:>7} {ex:>4} {r['input_tokens']:>8} {r['output_tokens']:>8} "
                   f"{r['cost_usd']:>7.4f} {r['provider'] or '-'}")
    return out
