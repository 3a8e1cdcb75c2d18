"""Text renderings of queue, status, runs and show: what a person reads in a terminal."""

from __future__ import annotations

from array import array
from itertools import chain, islice, repeat, tee
from operator import mod

from agentd import scoring
from agentd.lazyre import lazy
from agentd.task import AGENT_KINDS
from agentd.tasklist import Row, Run, TaskList


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
    return "\n".join(queue_text_lines(view, show_all)).split("\n")


def queue_text_lines(view, show_all: bool = False):
    """``queue_text``, a line at a time, or many joined by newlines (`agentd queue` writes them as
    they come)."""
    r = view.read
    tasks = view.tasks
    table = tasks.table
    n = len(tasks)
    yield f"worklog: {r.path}  ({n} task{'s' if n != 1 else ''}, {r.state.entry_count} agentd entries)"
    kinds = table.kinds
    # " KIND STATUS SCORE  " and the why line are shared by many tasks: each is made once
    middles: dict = {}
    whys: dict = {}
    templates: dict = {}  # (status, why) of a run of plain rows -> its templates (``_text_lines``)
    shown = hidden = 0
    agents = False
    for x in tasks.runs():
        if not show_all and x.status in ("done", "cancelled"):
            hidden += len(x.rows) if type(x) is Run else 1
            continue
        if type(x) is Run:
            if not shown:
                yield f"{'':2}{'ID':<14} {'KIND':<10} {'STATUS':<11} {'SCORE':>6}  TITLE"
            yield from _text_lines(x, table, not shown, templates)
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
        yield mark + _text_id(tid) + middle + _text_title(title)
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
    key = (kind, t.status, repr(t.score))  # (0.0 and -0.0 are equal, but written apart)
    middle = middles.get(key)
    if middle is None:
        middle = middles[key] = f" {kind:<10} {t.status:<11} {t.score:>6.2f}  "
    why = whys.get((t.eligible, t.why))
    if why is None:
        why = whys[(t.eligible, t.why)] = f"{'':18}{'why: ' if t.eligible else 'not now: '}{safe(t.why, 200)}"
    return middle, why


# A run of plain rows (``tasklist.Run``) is written a column at a time: each line by a ``%`` template
# made once per shape (``_Templates``), status and why, from the columns' values zipped together,
# each already a string (``_values``): no Python code runs per row.  The values a template may take
# are the numbers (``scoring.Plain.slots``, each written with its format), then the id and title
# (as JSON), the line and the command (JSON); the templates of one kind take them in one order
# (``_JSON``, ``_WHY``).  Their stand-ins in the text a template is made from are private-use
# characters: no label holds one, ``safe`` keeps them, and JSON writes them as \ue00N.
_SPECS = (*scoring.Plain.SPECS, "s", "s", "d", "s", "s")
_MARKS = tuple(chr(0xE000 + n) for n in range(len(_SPECS)))
_JSON_MARKS = tuple(f"\\u{0xE000 + n:04x}" for n in range(len(_SPECS)))
V, C, M, F, T, R, ID, TITLE, LINE, RUN, WHY = range(len(_SPECS))  # WHY: why it can't run now
_JSON = (ID, TITLE, R, V, C, F, M, T, LINE, RUN, V, C, M, F)  # a JSON line: score, why, parts
_JSON_HELD = (ID, TITLE, R, WHY, LINE, RUN, V, C, M, F)  # a JSON line of a row held back
_WHY = (V, C, F, M, T)  # an explanation


def _takes(takes: tuple, table) -> tuple:
    """``takes`` less the numbers no plain task of the table gives (each shape writes the defaults it
    takes as they are): the value, the certainty, the minutes and their cost factor."""
    given = {V: any(p.has_value for p in table.plains), C: any(p.has_certainty for p in table.plains),
             M: any(p.has_minutes for p in table.plains)}
    given[F] = given[M]
    return tuple(n for n in takes if given.get(n, True))


def _template(pieces, takes: tuple) -> str:
    """A ``%`` template from ``pieces``, (text, stand-ins) pairs, taking the values ``takes`` names,
    in that order, as strings: each stand-in in a text becomes ``%s`` (a text a person wrote is
    given none), and a value the text does not show is taken and written as nothing (``%.0s``)."""
    out, at = [], 0
    for text, marks in pieces:
        text, pos = text.replace("%", "%%"), 0
        while True:
            hits = [(hit, n) for n, m in enumerate(marks) if (hit := text.find(m, pos)) >= 0]
            if not hits:
                break
            hit, n = min(hits)
            out.append(text[pos:hit])
            while takes[at] != n:  # (an IndexError when the text shows them in another order)
                out.append("%.0s")
                at += 1
            out.append("%s")
            at += 1
            pos = hit + len(marks[n])
        out.append(text[pos:])
    return "".join(out) + "%.0s" * (len(takes) - at)


def _values(rows, table, takes: tuple, whys=None) -> list:
    """For each value ``takes`` names, the rows' values as strings (an iterator); ``whys``, the rows'
    whys (an iterator, as the template writes them)."""
    from json.encoder import encode_basestring_ascii as string

    column = _column(rows, table)
    made = {WHY: lambda: whys, V: lambda: column("vals"), C: lambda: column("certs"), M: lambda: column("mins"),
            F: lambda: scoring.Plain.factors(column("mins")), T: lambda: column("totals"),
            R: lambda: column("totals"), ID: lambda: map(string, column("ids")),
            TITLE: lambda: map(string, column("titles")), LINE: lambda: column("lines"),
            RUN: lambda: map(_JsonRuns(), column("runs"))}
    copies = {n: iter(tee(_written(n, made[n]()), takes.count(n))) for n in set(takes)}
    return [next(copies[n]) for n in takes]


def _written(n: int, values):
    spec = _SPECS[n]
    return map(repr, values) if spec == "r" else values if spec in ("s", "d") else map(f"%{spec}".__mod__, values)


class _JsonRuns(dict):
    """command -> it as JSON (a run of tasks often shares a few)."""

    def __init__(self):
        super().__init__({None: "null"})

    def __missing__(self, run: str) -> str:
        from json.encoder import encode_basestring_ascii as string

        if len(self) > 4096:
            self.clear()
            self[None] = "null"
        j = self[run] = string(run)
        return j

    __call__ = dict.__getitem__


class _Templates(dict):
    """shape -> its template, each made when first asked for (``make(shape)``)."""

    def __init__(self, make, takes: tuple = ()):
        super().__init__()
        self.make, self.takes = make, takes

    def __missing__(self, shape: int) -> str:
        t = self[shape] = self.make(shape)
        return t


def _runner(kind: str) -> str:
    return kind if kind in ("command", "experiment") else "agent"


def _columns(rows, table, *names):
    """The values of each column ``names`` names in ``rows``."""
    column = _column(rows, table)
    return [column(name) for name in names]


def _column(rows, table):
    """A function giving the values of a column in ``rows``: a slice, when they are rows next to each
    other (most runs are, as the index keeps the table in the queue's order), else each looked up."""
    if (type(rows) is array and len(rows) > 16 and rows[-1] - rows[0] == len(rows) - 1
            and rows == array(rows.typecode, range(rows[0], rows[-1] + 1))):
        a, b = rows[0], rows[-1] + 1
        return lambda name: getattr(table, name)[a:b]
    return lambda name: map(getattr(table, name).__getitem__, rows)


def _text_lines(run, table, first: bool, templates: dict, chunk: int = 2048):
    """The two lines of each row of a plain ``run``, as `agentd queue` writes them: a string of
    (at most ``chunk``) rows' lines at a time, joined by newlines."""
    status, why = run.status, run.why
    made = templates.get((status, why is None))
    if made is None:
        takes = _takes(_WHY, table) if why is None else (WHY,)

        def lines(shape: int) -> str:  # mark, id, total, title, then the why line's numbers, or the line
            p = table.plains[shape]
            kind = "directive!" if p.kind == "directive" and p.priority == "critical" else p.kind
            head = "%s%s" + f" {kind:<10} {status:<11} ".replace("%", "%%") + "%6.2f  %s\n"
            # (an explanation is under 200 characters, as ``safe`` would cut it: a number takes at most 12)
            return head + (_template([(f"{'':18}why: {safe(p.explain(_MARKS))}", _MARKS)], takes) if why is None
                           else "%s")

        made = templates[(status, why is None)] = _Templates(lines, takes)
    mark = "· " if why is None else "✗ "
    for a in range(0, len(run.rows), chunk):
        rows = run.rows[a:a + chunk]
        shapes, totals = _columns(rows, table, "shapes", "totals")
        ids, titles = ([*col] for col in _columns(rows, table, "ids", "titles"))
        # (ids and titles that need neither escaping nor cutting, as nearly all, are checked a column at a time)
        if max(map(len, ids)) <= 14 and all(map(str.isascii, ids)) and all(map(str.isprintable, ids)):
            ids = map(str.ljust, ids, repeat(14))
        else:
            ids = map(_text_id, ids)
        if not (max(map(len, titles)) <= 70 and all(map(str.isascii, titles)) and all(map(str.isprintable, titles))):
            titles = map(_text_title, titles)
        marks = chain(["▶ " if why is None else "✗ "] if first and a == 0 else [], repeat(mark))
        whys = (None if why is None else map(_not_now, why[a:a + chunk]) if type(why) is list
                else repeat(_not_now(why)))
        yield "\n".join(map(mod, map(made.__getitem__, shapes),
                             zip(marks, ids, totals, titles, *_values(rows, table, made.takes, whys))))


def _not_now(why: str) -> str:
    return f"{'':18}not now: {safe(why, 200)}"


def _text_id(tid: str) -> str:
    return tid.ljust(14) if len(tid) <= 14 and tid.isascii() and tid.isprintable() else f"{safe(tid, 14):<14}"


def _text_title(title: str) -> str:
    return title if len(title) <= 70 and title.isascii() and title.isprintable() else safe(title, 70)


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
    ``to_json`` and the encoder.  (tests/test_scale.py checks both agree.)"""
    import json
    from json.encoder import encode_basestring_ascii as string

    enc = json.JSONEncoder(default=str).encode
    shared: dict = {}
    parts_json: dict = {}
    templates: dict = {}  # (status, why) of a run of plain rows -> its templates (``_json_lines``)
    for t in items:
        if type(t) is Row:
            t = Run((t.i,), t.status, t.why)
        if type(t) is Run:
            yield _json_lines(t, tasks.table, templates)  # (an iterator of its lines)
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


def _json_lines(run, table, templates: dict):
    """The JSON line of each row of a plain ``run`` (``json.dumps(Task.to_json())``)."""
    from json.encoder import encode_basestring_ascii as string

    status, why = run.status, run.why
    made = templates.get((status, why is None))
    if made is None:
        takes = _takes(_JSON if why is None else _JSON_HELD, table)
        made = templates[(status, why is None)] = _Templates(
            lambda shape: _plain_json(table.plains[shape], status, why is None, takes), takes)
    whys = None if why is None else map(string, why) if type(why) is list else repeat(string(why))
    return map(mod, map(made.__getitem__, _columns(run.rows, table, "shapes")[0]),
               zip(*_values(run.rows, table, made.takes, whys)))


def _plain_json(plain, status: str, eligible: bool, takes: tuple) -> str:
    """The template of the JSON line of a plain row of ``plain``'s shape and ``status``, that can run
    now (``eligible``) or not (then its why is a value the template takes)."""
    from json.encoder import encode_basestring_ascii as string

    m = _JSON_MARKS
    explained = (string(plain.explain(_MARKS)), m) if eligible else (m[WHY], m)
    parts = ", ".join(f'{{"part": {string(label)}, "effect": {string(effect)}}}'
                      for label, effect in plain.parts(_MARKS))
    return _template([
        (f'{{"id": {m[ID]}, "title": {m[TITLE]}, "kind": {string(plain.kind)}, "status": {string(status)}, '
         f'"score": {m[R]}, "eligible": {"true" if eligible else "false"}, "why": ', m), explained,
        (f', "priority": {string(plain.priority)}, "runner": {string(_runner(plain.kind))}, "attempts": 0, '
         f'"line": {m[LINE]}, "source": "worklog", "after": [], "run": {m[RUN]}, "gpu": false, '
         f'"defer_until": null, "latest_run": null, "parts": [{parts}]}}', m)], takes)


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
