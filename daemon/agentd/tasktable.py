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
(``tasklist``).  Directives (their score grows with age) and tasks with ``after`` or ``gpu`` are
not plain (``special``).

It behaves as the read-only mapping it replaces (id -> ``Task.to_dict()``); the parser adds to it.
"""

from __future__ import annotations

import marshal
import sys
from array import array
from bisect import bisect_left

from agentd import scoring

PLAIN_KINDS = frozenset(("task", "command", "experiment", "blocker"))
_VERSION = 3
_LISTS = 9  # the columns kept as lists; the rest are arrays (``_ARRAYS``)
_ARRAYS = ("shapes", "vals", "certs", "mins", "totals")


class TaskTable:
    __slots__ = ("ids", "titles", "kinds", "priorities", "attrs", "lines", "texts", "done", "runs", "shapes",
                 "vals", "certs", "mins", "totals", "shape_keys", "plains", "special", "token", "changed",
                 "parent", "_order", "_pos", "_shapepos", "_finds")

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

    # -- the mapping it replaces -----------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self):
        return iter(self.ids)

    def keys(self):
        return list(self.ids)

    def __contains__(self, tid) -> bool:
        return self.find(tid) is not None

    def __getitem__(self, tid: str) -> dict:
        i = self.find(tid)
        if i is None:
            raise KeyError(tid)
        return self.definition(i)

    def get(self, tid: str, default=None):
        i = self.find(tid)
        return default if i is None else self.definition(i)

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
        return map(self.definition, range(len(self.ids)))

    def items(self):
        return zip(self.ids, self.values())

    def __eq__(self, other) -> bool:
        if isinstance(other, TaskTable):
            other = dict(other.items())
        return isinstance(other, dict) and dict(self.items()) == other

    __hash__ = None

    def __repr__(self) -> str:
        return f"TaskTable({len(self.ids)} tasks)"

    @property
    def pos(self) -> dict:
        if self._pos is None:
            self._pos = dict(zip(self.ids, range(len(self.ids))))
        return self._pos

    def definition(self, i: int) -> dict:
        """Row i as ``Task.to_dict()``."""
        a = self.attrs[i]
        return {"id": self.ids[i], "title": self.titles[i], "kind": self.kinds[i], "priority": self.priorities[i],
                "attrs": marshal.loads(a) if type(a) is bytes else dict(a), "line": self.lines[i],
                "source": "worklog", "text": self.texts[i], "human_done": self.done[i]}

    # -- adding -----------------------------------------------------------
    def add(self, t) -> int | None:
        """Add a worklog line's Task; a later line with the same id replaces the earlier one in its
        row.  Returns the earlier one's line, or None."""
        attrs = t.attrs
        try:
            blob = marshal.dumps(attrs)
        except ValueError:
            blob = dict(attrs)
        sh, nums = -1, (0.0, 0.0, 0.0)
        if t.kind in PLAIN_KINDS and not attrs.get("after") and not attrs.get("gpu"):
            try:  # (the schema has checked the numbers; a table made from other definitions may hold anything)
                sh = self._shape(scoring.Plain.shape(t.kind, t.priority, attrs))
                nums = self.plains[sh].numbers(attrs)
            except (TypeError, ValueError, OverflowError, KeyError):
                sh, nums = -1, (0.0, 0.0, 0.0)
        total = self.plains[sh].total(*nums) if sh >= 0 else 0.0
        run = attrs.get("run") if sh >= 0 else None
        if type(run) is str and len(run) <= 200:
            run = sys.intern(run)
        self.changed.append(t.id)
        row = (t.id, t.title, sys.intern(t.kind), sys.intern(t.priority) if type(t.priority) is str else t.priority,
               blob, t.line, t.text, bool(t.human_done), run, sh, *nums, total)
        i = self.find(t.id)
        order = self._order
        if i is None:
            i = len(self.ids)
            if self._pos is not None:
                self._pos[t.id] = i
            for col, v in zip(self._columns(), row):
                col.append(v)
            old = None
        else:
            old = self.lines[i]
            if order is not None and self.shapes[i] >= 0:
                del order[order.index(i)]
            for col, v in zip(self._columns(), row):
                col[i] = v
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
        """(total, parts, explanation) of plain row i (no failures, no age)."""
        sc = self.plains[self.shapes[i]].score(*self.numbers(i))
        return sc.total, sc.parts, sc.explain()

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
        yield (_VERSION, n, self.shape_keys, set(range(len(order), n)) if perm else self.special,
               len(order) if perm else self.order.tobytes())
        for col in self._columns():
            if perm is not None:
                col = array(col.typecode, map(col.__getitem__, perm)) if type(col) is array else \
                    list(map(col.__getitem__, perm))
            yield col.tobytes() if type(col) is array else col

    def _in_order(self) -> bool:
        """Whether the plain rows come first, in ``order``."""
        order = self.order
        return not (self.special and min(self.special) < len(order)) and order == array("L", range(len(order)))

    @classmethod
    def from_parts(cls, parts) -> "TaskTable":
        """The table ``parts`` made; ValueError when they are not one."""
        parts = iter(parts)
        head = next(parts, None)
        if not isinstance(head, tuple) or len(head) != 5 or head[0] != _VERSION:
            raise ValueError("not a task table")
        t = cls()
        _, n, keys, t.special, order = head
        cols = list(parts)
        if len(cols) != _LISTS + len(_ARRAYS) or any(not isinstance(c, list) or len(c) != n for c in cols[:_LISTS]):
            raise ValueError("not a task table")
        (t.ids, t.titles, t.kinds, t.priorities, t.attrs, t.lines, t.texts, t.done, t.runs) = cols[:_LISTS]
        for name, data in zip(_ARRAYS, cols[_LISTS:]):
            col = getattr(t, name)
            if not isinstance(data, bytes) or len(data) != n * col.itemsize:
                raise ValueError("not a task table")
            col.frombytes(data)
        try:
            for k in keys:
                t._shape(tuple(k))
        except (TypeError, KeyError) as e:
            raise ValueError("not a task table") from e
        if max(t.shapes, default=-1) >= len(t.shape_keys):
            raise ValueError("not a task table")
        if type(order) is int:  # the rows are in order
            t._order = array("L", range(order))
        else:
            t._order = array("L")
            t._order.frombytes(order)
        return t

    def to_doc(self) -> list:
        return list(self.parts())

    @classmethod
    def from_doc(cls, doc) -> "TaskTable":
        if isinstance(doc, dict):  # {id: definition}, as ``State.to_dict`` gives it
            t = cls()
            from agentd.task import Task

            for d in doc.values():
                t.add(Task(**d))
            return t
        return cls.from_parts(doc)
