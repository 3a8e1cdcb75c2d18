"""The task definitions a worklog holds, as columns (``parse.State.tasks``).

A worklog may define a million tasks.  Kept as a dict per task (``Task.to_dict()``) they took
~1.8 KiB each and the index decoded them all on every `queue`; as columns (a list per field,
attrs as a small ``marshal`` document each) they take ~450 bytes, and ``marshal`` decodes them
in ~0.4 s per million.

Most tasks in a long list are *plain*: their place in the queue depends only on their own line
(kind, priority, value, certainty, minutes, line, id, checked or not), never on the time, the
store or other tasks, as long as no agentd entry or DONE/CANCEL/RETRY line names them.  The table
keeps the plain tasks sorted that way (``order``), worked out once when the definitions change,
so the queue merges them with the few it works out one by one instead of sorting them all
(``tasklist``).  Directives (their score grows with age), tasks with ``after``, ``gpu`` or ``every``
(a recurring task's status depends on the time), and experiments missing an attr they need (the queue says which) are not plain (``special``).

The columns are the tasks' storage, not a second model of them: the table is a typed view that
gives each row as a ``Task`` (``task(i)``, made by ``Task.defined``), and it behaves as a
read-only mapping id -> Task; the parser adds to it.  ``definition(i)`` is a row as the parse
index serializes it (``Task.to_dict()``).
"""

from __future__ import annotations

import marshal
import sys
from array import array
from bisect import bisect_left
from itertools import compress

from agentd.tasks import scoring
from agentd.tasks.task import Task
from agentd.experiments import NAMES as EXPERIMENT_NAMES, problem as experiment_problem

PLAIN_KINDS = frozenset(("task", "command", "experiment", "blocker"))  # (directives' scores grow with age)
_VERSION = 4
CHUNK_ROWS = 131072  # the rows of a list column the index keeps in one piece (``parts``)
_LISTS = 9  # the columns kept as lists; the rest are arrays (``_ARRAYS``)
_ARRAYS = ("shapes", "vals", "certs", "mins", "totals")


class TaskTable:
    __slots__ = ("ids", "titles", "kinds", "priorities", "attrs", "lines", "texts", "done", "runs", "shapes",
                 "vals", "certs", "mins", "totals", "shape_keys", "plains", "special", "token", "changed",
                 "parent", "base", "delta", "_order", "_pos", "_shapepos", "_finds")

    def __init__(self):
        self.ids: list = []
        self.titles: list = []
        self.kinds: list = []
        self.priorities: list = []
        self.attrs: list = []  # marshal documents (a dict where marshal can't keep a value)
        self.lines: list = []
        self.texts: list = []
        self.done: list = []  # a checked box
        self.runs: list = []  # attrs["run"] of a plain task, else None (the queue shows it)
        # a plain task's score: its shape (an index into ``shape_keys``, -1 for a task that is not
        # plain), its numbers (``scoring.Plain.numbers``) and the total they make
        self.shapes = array("h")
        self.vals = array("d")
        self.certs = array("d")
        self.mins = array("d")
        self.totals = array("d")
        self.shape_keys: list = []  # the distinct ``scoring.Plain.shape``s of plain tasks (at most 128)
        self.plains: list = []  # a scoring.Plain for each of them
        self.special: set = set()  # rows of tasks that are not plain
        self._order: array | None = None  # the plain rows, sorted (see ``order``)
        self._pos: dict | None = None  # id -> row, made when first needed
        self._shapepos: dict = {}
        self._finds = 0  # lookups without ``pos``: a few are cheaper as list scans than making it
        self.token: str | None = None  # names the copy the index keeps (``Index.put``)
        self.changed: list = []  # ids added or redefined since that copy
        self.parent: tuple | None = None  # (the copy before it, the ids added since that one), as ``Index.put`` left it
        # the index keeps a copy as a whole table (``base``, a token) and the definitions changed since
        # (``delta``, their ids): a few lines added to a long worklog do not write it all again
        self.base: str | None = None
        self.delta: list = []

    # -- the mapping it replaces -----------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self):
        return iter(self.ids)

    def keys(self):
        return list(self.ids)

    def __contains__(self, tid) -> bool:
        return self.find(tid) is not None

    def __getitem__(self, tid: str) -> Task:
        i = self.find(tid)
        if i is None:
            raise KeyError(tid)
        return self.task(i)

    def get(self, tid: str, default=None):
        i = self.find(tid)
        return default if i is None else self.task(i)

    def find(self, tid: str) -> int | None:
        """The row of task ``tid``, or None.  The first few lookups scan the ids (~15 ms for a
        million); after that, an id -> row dict is made (~0.2 s and ~100 MiB for a million)."""
        if self._pos is None and self._finds < 16:
            self._finds += 1
            try:
                return self.ids.index(tid)
            except ValueError:
                return None
        return self.pos.get(tid)

    def values(self):
        return map(self.task, range(len(self.ids)))

    def items(self):
        return zip(self.ids, self.values())

    def definitions(self) -> dict:
        """{id: definition}, as ``State.to_dict`` gives the tasks (builtins, which ``from_doc`` takes)."""
        return dict(zip(self.ids, map(self.definition, range(len(self.ids)))))

    def __eq__(self, other) -> bool:
        """Equal to a table, or to {id: definition}, holding the same definitions."""
        if isinstance(other, TaskTable):
            other = other.definitions()
        return isinstance(other, dict) and self.definitions() == other

    __hash__ = None

    def __repr__(self) -> str:
        return f"TaskTable({len(self.ids)} tasks)"

    @property
    def pos(self) -> dict:
        if self._pos is None:
            self._pos = dict(zip(self.ids, range(len(self.ids))))
        return self._pos

    def task(self, i: int) -> Task:
        """Row i as a Task, with what the queue finds at its defaults (each call makes a new one)."""
        a = self.attrs[i]
        return Task.defined(self.ids[i], self.titles[i], self.kinds[i], self.priorities[i],
                            marshal.loads(a) if type(a) is bytes else dict(a), self.lines[i], "worklog",
                            self.texts[i], self.done[i])

    def definition(self, i: int) -> dict:
        """Row i as the parse index serializes it (``Task.to_dict()``)."""
        return self.task(i).to_dict()

    # -- adding -----------------------------------------------------------
    def add(self, t, row=-1) -> int | None:
        """Add a worklog line's Task; a later line with the same id replaces the earlier one in its
        row (``row``, when the caller knows it: None for a new id).  Returns the earlier one's line,
        or None."""
        attrs = t.attrs
        try:
            blob = marshal.dumps(attrs)
        except ValueError:
            blob = dict(attrs)
        sh, v, c, m, total, run = -1, 0.0, 0.0, 0.0, 0.0, None
        # (an experiment of a known name missing an attr goes one by one; an unknown name stays a
        # plain row, held back by its title alone)
        if (t.kind in PLAIN_KINDS and not attrs.get("after") and not attrs.get("gpu") and not attrs.get("every")
                and not (t.kind == "experiment" and t.title in EXPERIMENT_NAMES
                         and experiment_problem(t.title, attrs) is not None)):
            v, c, m = attrs.get("value"), attrs.get("certainty"), attrs.get("minutes")
            try:  # (the schema has checked the numbers; a table made from other definitions may hold anything)
                key = scoring.Plain.shape(t.kind, t.priority, attrs)
                sh = self._shapepos.get(key)
                if sh is None:
                    sh = self._shape(key)
                plain = self.plains[sh]
                v, c, m = plain.numbers(attrs)
                total = plain.total(v, c, m)
            except (TypeError, ValueError, OverflowError, KeyError):
                sh, v, c, m, total = -1, 0.0, 0.0, 0.0, 0.0
            run = attrs.get("run") if sh >= 0 else None
            if type(run) is str and len(run) <= 200:
                run = sys.intern(run)
        tid = t.id
        self.changed.append(tid)
        kind, priority = sys.intern(t.kind), sys.intern(t.priority) if type(t.priority) is str else t.priority
        i = self.find(tid) if row == -1 else row
        order = self._order
        if i is None:
            i = len(self.ids)
            if self._pos is not None:
                self._pos[tid] = i
            self.ids.append(tid), self.titles.append(t.title), self.kinds.append(kind)
            self.priorities.append(priority), self.attrs.append(blob), self.lines.append(t.line)
            self.texts.append(t.text), self.done.append(bool(t.human_done)), self.runs.append(run)
            self.shapes.append(sh), self.vals.append(v), self.certs.append(c), self.mins.append(m)
            self.totals.append(total)
            old = None
        else:
            old = self.lines[i]
            if order is not None and self.shapes[i] >= 0:
                del order[order.index(i)]
            values = (tid, t.title, kind, priority, blob, t.line, t.text, bool(t.human_done), run, sh, v, c, m, total)
            for col, x in zip(self._columns(), values):
                col[i] = x
        if sh < 0:
            self.special.add(i)
        else:
            self.special.discard(i)
            if order is not None:  # kept in order: a line added to a long worklog does not sort it again
                order.insert(bisect_left(order, self._sort_key(i), key=self._sort_key), i)
        return old

    def _columns(self) -> tuple:
        return (self.ids, self.titles, self.kinds, self.priorities, self.attrs, self.lines, self.texts, self.done,
                self.runs, self.shapes, self.vals, self.certs, self.mins, self.totals)

    def _shape(self, key: tuple) -> int:
        n = self._shapepos.get(key)
        if n is None:
            plain = scoring.Plain(*key)
            if len(self.shape_keys) >= 32767:  # (kinds × priorities × 8 make 128)
                raise ValueError("too many shapes")
            n = self._shapepos[key] = len(self.shape_keys)
            self.shape_keys.append(key)
            self.plains.append(plain)
        return n

    # -- what the queue uses ------------------------------------------------
    def numbers(self, i: int) -> tuple:
        """Plain row i's (value, certainty, minutes), as ``scoring.Plain`` takes them."""
        return self.vals[i], self.certs[i], self.mins[i]

    def score(self, i: int) -> tuple:
        """(total, parts, explanation, certainty, its evidence) of plain row i (no failures, no age)."""
        sc = self.plains[self.shapes[i]].score(*self.numbers(i))
        return sc.total, sc.parts, sc.explain(), sc.certainty, sc.evidence

    @property
    def order(self) -> array:
        """The plain rows in the order the queue lists them among themselves: open before checked,
        then by score (highest first), line and id."""
        if self._order is None:
            shapes, lines, ids, done = self.shapes, self.lines, self.ids, self.done
            rows = [i for i in range(len(ids)) if shapes[i] >= 0]
            # the order of (done, -score, line, id), as stable sorts from the last key to the first: a
            # list of keys per sort instead of a tuple per row (~90 MiB for a million)
            rows.sort(key=ids.__getitem__)
            rows.sort(key=lines.__getitem__)
            rows.sort(key=self.totals.__getitem__, reverse=True)  # (reverse keeps equal rows in order)
            rows.sort(key=done.__getitem__)
            self._order = array("L", rows)
        return self._order

    def _sort_key(self, i: int) -> tuple:
        return self.done[i], -self.totals[i], self.lines[i], self.ids[i]

    def special_ids(self) -> list[str]:
        return [self.ids[i] for i in self.special]

    # -- what the index keeps -------------------------------------------------
    def parts(self):
        """The table as a few builtin documents (``marshal``), made one at a time so that encoding a
        million tasks never holds more than one column's bytes: a head (the shapes, the special
        rows, the order worked out), then each column (the arrays as their bytes).

        The rows are written in the queue's order (the plain rows as ``order`` has them, then the
        rest), so the table read back lists its queue from rows next to each other in memory: a
        million tasks that each score differently, listed in the order of their rows in the file,
        took ~2x longer (the processor's caches miss on nearly every row)."""
        order, n = self.order, len(self.ids)
        perm = None if self._in_order() else array("L", [*order, *sorted(self.special)])
        yield (_VERSION, n, self.shape_keys, set(range(len(order), n)) if perm else self.special, len(order),
               CHUNK_ROWS)  # (the order: the plain rows first, in order)
        for col in self._columns():
            if type(col) is array:
                yield (col if perm is None else array(col.typecode, map(col.__getitem__, perm))).tobytes()
                continue
            for a in range(0, max(n, 1), CHUNK_ROWS):  # (a list column in pieces: its bytes held a piece at a time)
                yield col[a:a + CHUNK_ROWS] if perm is None else list(map(col.__getitem__, perm[a:a + CHUNK_ROWS]))

    def _in_order(self) -> bool:
        """Whether the plain rows come first, in ``order``."""
        order = self.order
        return not (self.special and min(self.special) < len(order)) and order == array("L", range(len(order)))

    @classmethod
    def from_parts(cls, parts) -> "TaskTable":
        """The table ``parts`` made; ValueError when they are not one."""
        parts = iter(parts)
        head = next(parts, None)
        if not isinstance(head, tuple) or len(head) != 6 or head[0] != _VERSION:
            raise ValueError("not a task table")
        t = cls()
        _, n, keys, t.special, order, chunk = head
        if not (type(n) is int and type(order) is int and type(chunk) is int and 0 <= order <= n and chunk > 0
                and isinstance(t.special, set) and all(type(k) is tuple and len(k) == 5 for k in keys)):
            raise ValueError("not a task table")
        pieces = -(-n // chunk) if n else 1
        for col in t._columns()[:_LISTS]:
            for _ in range(pieces):
                piece = next(parts, None)
                if not isinstance(piece, list):
                    raise ValueError("not a task table")
                col.extend(piece)
            if len(col) != n:
                raise ValueError("not a task table")
        for name in _ARRAYS:
            col, data = getattr(t, name), next(parts, None)
            if not isinstance(data, bytes) or len(data) != n * col.itemsize:
                raise ValueError("not a task table")
            col.frombytes(data)
        if next(parts, None) is not None:
            raise ValueError("not a task table")
        try:
            for k in keys:
                t._shape(tuple(k))
        except (TypeError, KeyError) as e:
            raise ValueError("not a task table") from e
        if (max(t.shapes, default=-1) >= len(t.shape_keys) or min(t.shapes[:order], default=0) < 0
                or t.special != set(range(order, n)) or any(x != -1 for x in set(t.shapes[order:]))):
            raise ValueError("not a task table")  # (the plain rows first, the rest not plain)
        t._order = array("L", range(order))
        return t

    def rows_of(self, ids: list) -> list:
        """The rows of ``ids`` (each in the table), found in one pass over the ids, not with an id ->
        row dict (~100 MiB for a million)."""
        rows = self._rows_of(set(ids))
        return [rows[tid] for tid in ids]

    def _rows_of(self, wanted: set) -> dict:
        if self._pos is not None:
            return {tid: self._pos[tid] for tid in wanted if tid in self._pos}
        return {self.ids[i]: i for i in compress(range(len(self.ids)), map(wanted.__contains__, self.ids))}

    def apply(self, definitions: list) -> None:
        """Add ``definitions`` (``Task.to_dict()``s of distinct ids, as the index keeps them), as
        ``add`` each, finding their rows in one pass over the ids."""
        rows = self._rows_of({d["id"] for d in definitions})
        for d in definitions:
            i = rows.get(d["id"])
            self.add(Task(**d), i)
            if i is None:
                rows[d["id"]] = len(self.ids) - 1

    def to_doc(self) -> list:
        return list(self.parts())

    @classmethod
    def from_doc(cls, doc) -> "TaskTable":
        if isinstance(doc, dict):  # {id: definition}, as ``State.to_dict`` gives it
            t = cls()
            for d in doc.values():
                t.add(Task(**d))
            return t
        return cls.from_parts(doc)
