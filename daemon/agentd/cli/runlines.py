"""The lines `agentd queue` writes for a run of plain rows (``tasklist.Run``), text and JSON.

A run is written a column at a time: each line by a ``%`` template made once per shape
(``_Templates``) and status, from the columns' values zipped together, each already a string
(``_values``): no Python code runs per row.  The values a template may take are the numbers
(``scoring.Plain.slots``, each written with its format), then the id and title (as JSON), the line,
the command (JSON) and why the row can't run now; the templates of one kind take them in one order
(``_JSON``, ``_JSON_HELD``, ``_WHY``).  Their stand-ins in the text a template is made from are
private-use characters: no label holds one, ``safe`` keeps them, and JSON writes them as \\ue00N.
tests/queue/test_tasklist.py checks the lines are those of each task worked out one by one.
"""

from __future__ import annotations

from array import array
from itertools import chain, repeat, tee
from json.encoder import encode_basestring_ascii as string
from operator import mod

from agentd.tasks import scoring
from agentd.tasks.task import runner_of
from agentd.escapes import safe

_SPECS = (*scoring.Plain.SPECS, "s", "s", "d", "s", "s")
_MARKS = tuple(chr(0xE000 + n) for n in range(len(_SPECS)))
_JSON_MARKS = tuple(f"\\u{0xE000 + n:04x}" for n in range(len(_SPECS)))
# WHY: why it can't run now; CR: the certainty, as JSON writes it
V, C, M, F, T, R, CR, ID, TITLE, LINE, RUN, WHY = range(len(_SPECS))
_JSON = (ID, TITLE, R, CR, CR, V, C, F, M, T, LINE, RUN, V, C, M, F)  # a JSON line: score, certainty, why, parts
_JSON_HELD = (ID, TITLE, R, CR, CR, WHY, LINE, RUN, V, C, M, F)  # a JSON line of a row held back
_WHY = (V, C, F, M, T)  # an explanation


def _takes(takes: tuple, table) -> tuple:
    """``takes`` less the numbers no plain task of the table gives (each shape writes the defaults it
    takes as they are): the value, the certainty, the minutes and their cost factor."""
    given = {V: any(p.has_value for p in table.plains), C: any(p.has_certainty for p in table.plains),
             M: any(p.has_minutes for p in table.plains)}
    given[F], given[CR] = given[M], given[C]
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
    column = _column(rows, table)
    made = {WHY: lambda: whys, V: lambda: column("vals"), C: lambda: column("certs"), M: lambda: column("mins"),
            F: lambda: scoring.Plain.factors(column("mins")), T: lambda: column("totals"),
            R: lambda: column("totals"), CR: lambda: column("certs"), ID: lambda: map(string, column("ids")),
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


def text_lines(run, table, first: bool, templates: dict, chunk: int = 2048):
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
            ids = map(text_id, ids)
        if not (max(map(len, titles)) <= 70 and all(map(str.isascii, titles)) and all(map(str.isprintable, titles))):
            titles = map(text_title, titles)
        marks = chain(["▶ " if why is None else "✗ "] if first and a == 0 else [], repeat(mark))
        whys = (None if why is None else map(not_now, why[a:a + chunk]) if type(why) is list
                else repeat(not_now(why)))
        yield "\n".join(map(mod, map(made.__getitem__, shapes),
                             zip(marks, ids, totals, titles, *_values(rows, table, made.takes, whys))))


def not_now(why: str) -> str:
    """The line under a task that can't run now: its why whole (it may hold an approval's `what`), a
    run of spaces in it shown as one (``safe``'s ``spaces``)."""
    return f"{'':18}not now: {safe(why, spaces=True)}"


def text_id(tid: str) -> str:
    """A task's id in the queue's ID column, never cut (a person copies it into `DONE:`): one longer than
    the column has its line to itself, and the row goes on under it, in its columns."""
    if len(tid) <= 14 and tid.isascii() and tid.isprintable():
        return tid.ljust(14)
    tid = safe(tid)
    return tid.ljust(14) if len(tid) <= 14 else f"{tid}\n{'':16}"


def text_title(title: str) -> str:
    return title if len(title) <= 70 and title.isascii() and title.isprintable() else safe(title, 70)


def json_lines(run, table, templates: dict):
    """The JSON line of each row of a plain ``run`` (``json.dumps(Task.to_json())``)."""
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
    m = _JSON_MARKS
    explained = (string(plain.explain(_MARKS)), m) if eligible else (m[WHY], m)
    parts = ", ".join(f'{{"part": {string(label)}, "effect": {string(effect)}}}'
                      for label, effect in plain.parts(_MARKS))
    return _template([
        (f'{{"id": {m[ID]}, "title": {m[TITLE]}, "kind": {string(plain.kind)}, "status": {string(status)}, '
         f'"score": {m[R]}, {plain.certainty_json(m)}, "eligible": {"true" if eligible else "false"}, "why": ', m), explained,
        (f', "priority": {string(plain.priority)}, "runner": {string(runner_of(plain.kind))}, "attempts": 0, '
         f'"line": {m[LINE]}, "source": "worklog", "after": [], "run": {m[RUN]}, "gpu": false, '
         f'"defer_until": null, "latest_run": null, "next_due": null, "parts": [{parts}]}}', m)], takes)
