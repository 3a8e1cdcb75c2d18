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
_VERSION = 2


def score_identity(key: tuple) -> tuple:
    """A score key as the keys that score and read alike: 0 and -0.0 are equal but not written
    alike (``-0 value``), so a key with a zero goes by its numbers' repr (any other, as itself)."""
    kind, priority, value, certainty, minutes = key
    if value == 0 or certainty == 0 or minutes == 0:
        return kind, priority, repr(value), repr(certainty), repr(minutes)
    return key


class TaskTable:
    __slots__ = ("ids", "titles", "kinds", "priorities", "attrs", "lines", "texts", "done", "runs", "skeys",
                 "score_keys", "totals", "special", "token", "changed", "parent", "_order", "_pos", "_keypos", "_scores",
                 "_finds")

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
        self.skeys: list = []  # a plain task's score key (an index into ``score_keys``); -1 for a special one
        self.score_keys: list = []  # the distinct (kind, priority, value, certainty, minutes) of plain tasks
        self.totals: list = []  # the score of each of them (``score`` explains it, when asked)
        self.special: set = set()  # rows of tasks that are not plain
        self._order: array | None = None  # the plain rows, sorted (see ``order``)
        self._pos: dict | None = None  # id -> row, made when first needed
        self._keypos: dict | None = None
        self._scores: dict = {}
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
        key = None
        if t.kind in PLAIN_KINDS and not attrs.get("after") and not attrs.get("gpu"):
            key = (t.kind, t.priority, attrs.get("value"), attrs.get("certainty"), attrs.get("minutes"))
            try:
                hash(key)
            except TypeError:
                key = None
        sk = -1 if key is None else self._key(key)
        run = attrs.get("run") if sk >= 0 else None
        if type(run) is str and len(run) <= 200:
            run = sys.intern(run)
        self.changed.append(t.id)
        row = (t.id, t.title, sys.intern(t.kind), sys.intern(t.priority) if type(t.priority) is str else t.priority,
               blob, t.line, t.text, bool(t.human_done), run, sk)
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
            if order is not None and self.skeys[i] >= 0:
                del order[order.index(i)]
            for col, v in zip(self._columns(), row):
                col[i] = v
        if sk < 0:
            self.special.add(i)
        else:
            self.special.discard(i)
            if order is not None:  # kept in order: a line added to a long worklog does not sort it again
                order.insert(bisect_left(order, self._sort_key(i), key=self._sort_key), i)
        return old

    def _columns(self) -> tuple:
        return (self.ids, self.titles, self.kinds, self.priorities, self.attrs, self.lines, self.texts, self.done,
                self.runs, self.skeys)

    def _key(self, key: tuple) -> int:
        if self._keypos is None:
            self._keypos = {score_identity(k): n for n, k in enumerate(self.score_keys)}
        n = self._keypos.get(score_identity(key))
        if n is None:
            n = self._keypos[score_identity(key)] = len(self.score_keys)
            self.score_keys.append(key)
            kind, priority, value, certainty, minutes = key
            self.totals.append(scoring.score(kind, priority, {"value": value, "certainty": certainty,
                                                              "minutes": minutes}).total)
        return n

    # -- what the queue uses ------------------------------------------------
    def score(self, sk: int) -> tuple:
        """(total, parts, explanation) of a plain task with score key ``sk`` (no failures, no age).
        Kept for the last few thousand keys asked: a million tasks may all score differently."""
        s = self._scores.get(sk)
        if s is None:
            if len(self._scores) >= 4096:
                self._scores.clear()
            s = self._scores[sk] = self._explained(sk)
        return s

    def _explained(self, sk: int) -> tuple:
        kind, priority, value, certainty, minutes = self.score_keys[sk]
        sc = scoring.score(kind, priority, {"value": value, "certainty": certainty, "minutes": minutes})
        return sc.total, sc.parts, sc.explain()

    @property
    def order(self) -> array:
        """The plain rows in the order the queue lists them among themselves: open before checked,
        then by score (highest first), line and id."""
        if self._order is None:
            neg = [-x for x in self.totals]
            skeys, lines, ids, done = self.skeys, self.lines, self.ids, self.done
            rows = [i for i in range(len(ids)) if skeys[i] >= 0]
            # the order of (done, -score, line, id), as stable sorts from the last key to the first: a
            # list of keys per sort instead of a tuple per row (~90 MiB for a million)
            for key in (ids.__getitem__, lines.__getitem__, lambda i: neg[skeys[i]], done.__getitem__):
                rows.sort(key=key)
            self._order = array("L", rows)
        return self._order

    def _sort_key(self, i: int) -> tuple:
        return self.done[i], -self.totals[self.skeys[i]], self.lines[i], self.ids[i]

    def special_ids(self) -> list[str]:
        return [self.ids[i] for i in self.special]

    # -- what the index keeps -------------------------------------------------
    def parts(self):
        """The table as a few builtin documents (``marshal``), made one at a time so that encoding a
        million tasks never holds more than one column's bytes: a head (the score keys, the special
        rows, the order worked out), then each column."""
        yield (_VERSION, len(self.ids), self.score_keys, self.totals, self.special, self.order.tobytes())
        yield from self._columns()

    @classmethod
    def from_parts(cls, parts) -> "TaskTable":
        """The table ``parts`` made; ValueError when they are not one."""
        parts = iter(parts)
        head = next(parts, None)
        if not isinstance(head, tuple) or len(head) != 6 or head[0] != _VERSION:
            raise ValueError("not a task table")
        t = cls()
        _, n, keys, t.totals, t.special, order = head
        t.score_keys = [tuple(k) for k in keys]
        if len(t.totals) != len(t.score_keys):
            raise ValueError("not a task table")
        cols = list(parts)
        if len(cols) != 10 or any(not isinstance(c, list) or len(c) != n for c in cols):
            raise ValueError("not a task table")
        (t.ids, t.titles, t.kinds, t.priorities, t.attrs, t.lines, t.texts, t.done, t.runs, t.skeys) = cols
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
