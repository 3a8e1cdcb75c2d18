"""Reading a worklog's bytes into a small state: tasks, commands, entries, errors.

``State.feed`` takes a run of whole lines and folds them into the state, so a
first read and an incremental read (only the new bytes) give the same result.
Entries are skipped in one step using the byte count in their header; only
the human regions between entries are split into lines.  Lines inside an
entry (between its begin and end markers) are never read as human lines.
"""

from __future__ import annotations

from itertools import accumulate, compress, islice
from collections import namedtuple
from operator import lt

from agentd import statuses
from agentd.worklog import entries
from agentd.recordtype import Factory, Record
from agentd.worklog.lineerror import LineError
from agentd.worklog.lines import FIRST_BYTES, Answer, Command, Rule, near_keyword, near_miss, parse_line
from agentd.worklog.markers import (ATTEMPTS as _ATTEMPTS, AT as _AT, BEGIN as _BEGIN, BLEN as _BLEN, BOM, END as _END,
                                    FIELDS as _FIELDS, NL_BEGIN as _NL_BEGIN, RUN as _RUN, SEQ as _SEQ,
                                    STATUS as _STATUS, TASK as _TASK, damaged as _damaged, hold_back as _hold_back,
                                    scan as _scan, suspects as _suspects)
from agentd.tasks.task import Task
from agentd.worklog.tasktable import TaskTable

_DONE = statuses.DONE.encode()

PARSER_VERSION = 20  # 20: the hosts and slurm attrs (a line with one, cached as unreadable before, is read again); 19: RULE lines, and the rules and critical directives a person wrote (``State.standing``); 18: the issue-20 attrs (expect, metrics, baseline_window, every, accept_claimed), a recurring task is not plain, the seq of each task's last done entry; 17: attrs with text after them, a keyword without its ':' and a box without its spaces are reported; 16: attrs never closed make a bad line; a prose line like a keyword (EXPRIMENT:) is reported; an experiment missing its required attrs is not plain; 15: an answer keeps its order among the entries and its dir; 13, 14: plain scores as per-row numbers, the rows kept in the queue's order, a checksum per task table document; 11, 12: tasks as a TaskTable kept apart, the tail kept as bytes and as its folded state; 10: APPROVE/DENY lines, status=waiting; 8: the network attr; 9: seqs from 10**15 up are bad lines
MAX_ERRORS = 500
# the first byte of a line that may start like a keyword (``near_keyword``): a letter, a space or '*'
_WORD_BYTES = frozenset(b" \t*ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
# A person's DONE / CANCEL / RETRY line for a task, as the state keeps it: ``order``, where it stands
# among the entries (the highest seq above it, plus 0.5); ``verb`` (done | cancel | retry); ``line``.
# (A namedtuple: typing.NamedTuple costs ~10 ms to import on the CLI's start-up path.)
Mark = namedtuple("Mark", "order verb line")


def present_key(run: str, seq: int) -> bytes:
    """How the index names an entry it has seen: its seq and run id."""
    return f"{seq} {run}".encode("ascii", "replace")


class State(Record):
    tasks: TaskTable = Factory(TaskTable)  # id -> Task, kept as columns
    dup_lines: dict = Factory(dict)  # id -> [lines]
    commands: dict = Factory(dict)  # task id -> [Mark]
    # approval id -> [verb, reason, line, order, dir]: a person's APPROVE/DENY (``order`` as a Mark's: it
    # counts only for a request whose waiting entry's seq is below it; ``dir``: APPROVE: <id> in <dir>)
    answers: dict = Factory(dict)
    latest: dict = Factory(dict)  # task id -> its entry of the highest seq, as ``entries.latest_entry``
    failures: dict = Factory(dict)  # task id -> [seq of failed entries]
    last_done: dict = Factory(dict)  # task id -> the highest seq of its `done` entries (a recurring task's failures count after it)
    # id -> [line, kind, text]: the standing directives a person wrote, ``rule`` (a RULE line) or ``directive``
    # (a critical directive), in force until a DONE/CANCEL line names them (``worklog.standing``)
    standing: dict = Factory(dict)
    errors: list = Factory(list)  # [(line, message)]
    error_count: int = 0
    torn: int = 0
    entry_count: int = 0
    max_seq: int = 0
    lines: int = 0  # lines consumed so far
    present: list = Factory(list)  # keys (see present_key) of the entries read since the last flush
    suspects: list = Factory(list)  # [(line, text, run, seq)] see resolve_suspects

    def to_dict(self, plain: bool = False, tasks: bool = True) -> dict:
        """The state as builtins: the tasks as {id: definition}; ``plain``: with only the types
        ``marshal`` keeps (the Marks as tuples, the tasks as ``TaskTable.to_doc``).  ``tasks=False``
        leaves the tasks out (the index keeps them apart, see ``TaskTable.parts``)."""
        d = dict(self.__dict__)
        d.pop("present")
        if plain:
            d["commands"] = {tid: [tuple(m) for m in marks] for tid, marks in self.commands.items()}
        d["tasks"] = None if not tasks else self.tasks.to_doc() if plain else self.tasks.definitions()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "State":
        s = cls(**d)
        s.present = []
        s.tasks = TaskTable() if s.tasks is None else TaskTable.from_doc(s.tasks)
        s.commands = {tid: [Mark(*m) for m in marks] for tid, marks in s.commands.items()}  # JSON lists
        return s

    def fork(self) -> "State":
        """A copy to fold more entries into; it shares the task definitions (entries don't change them)."""
        import copy  # lazy: copy only when a wake forks the state; keeps queue's start-up

        tasks, self.tasks = self.tasks, TaskTable()
        try:
            s = copy.deepcopy(self)
        finally:
            self.tasks = tasks
        s.tasks = tasks
        return s

    # -- folding --------------------------------------------------------
    def _error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append((line, message))

    def resolve_suspects(self, entry_text) -> None:
        """Read each suspect line as a person's line unless it is a remnant of agentd's entry.

        ``entry_text(run, seq)`` gives agentd's own copy of the entry, or None.  A suspect
        that is the tail of one of that entry's lines is a remnant: reported, never read.
        Without agentd's copy there is no telling, so the line is reported and not read.
        """
        pending, self.suspects = self.suspects, []
        for line, text, run, seq in pending:
            copy = entry_text(run, seq)
            if copy is not None and not any(x.endswith(text) for x in copy.split("\n")):
                self._person(parse_line(text, line), line, seq + 0.5)
                continue
            why = ("is the remnant of agentd entry" if copy is not None else "may be the cut-off start of agentd entry")
            self._error(line, f"{why} {run}#{seq} (its start was cut off); not read")

    def _human(self, raw: bytes, line: int, suspect: tuple | None = None) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        while raw.startswith(BOM):  # the file's own, or those left where files were joined with cat
            raw = raw[3:]
        if not raw:
            return
        if raw[0] not in FIRST_BYTES:
            if raw[0] in _WORD_BYTES and not suspect and b":" in raw[:48]:
                self._near(raw, line)
            return
        bad = None
        if b"\0" in raw:
            bad, text = "contains NUL bytes", raw.replace(b"\0", b"").decode("utf-8", "replace")
        else:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad, text = f"is not valid UTF-8 (byte {e.start + 1})", raw.decode("utf-8", "replace")
        try:
            item = parse_line(text, line)
        except LineError as e:
            why = str(e)
            self._error(line, f"{bad}; not read" if bad else why if "not read" in why else f"the line is not read: {why}")
            return
        if item is None:
            if not bad and not suspect:
                why = near_keyword(text) if ":" in text[:48] else None
                why = near_miss(text) if why is None else why
                if why is not None:
                    self._error(line, why)
            return
        if bad:
            self._error(line, f"{bad}; not read")
            return
        if item is not None and suspect:
            # Either a person's line, or the remnant of a body line whose start an editor cut off.
            # ``resolve_suspects`` decides with agentd's own copy of that entry.
            self.suspects.append((line, text, suspect[0], suspect[1]))
            return
        self._person(item, line, self.max_seq + 0.5)

    def _near(self, raw: bytes, line: int) -> None:
        """Report a prose line that starts like a keyword line (``EXPRIMENT: health``); it stays prose."""
        try:
            why = near_keyword(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return
        if why is not None:
            self._error(line, why)

    def _person(self, item, line: int, order: float) -> None:
        """Fold in a person's line: a task, a RULE, a DONE/CANCEL/RETRY (ordered among the entries by
        ``order``), or an APPROVE/DENY (the last answer to an id counts until agentd acts on it)."""
        if isinstance(item, Task):
            old = self.tasks.add(item)
            if old is not None:
                self.dup_lines.setdefault(item.id, []).append(old)
            if item.priority == "critical" and item.kind == "directive":
                self.standing[item.id] = [line, "directive", item.title]
            elif item.id in self.standing:  # the later line wins
                del self.standing[item.id]
        elif isinstance(item, Rule):  # (the same rule written again: the later line counts)
            self.standing[item.id] = [line, "rule", item.text]
        elif isinstance(item, Command):
            self.commands.setdefault(item.task_id, []).append(Mark(order, item.verb, line))
        elif isinstance(item, Answer):
            self.answers[item.approval_id] = [item.verb, item.reason, line, order, item.dir]

    def _entry(self, h) -> None:
        """Fold in an entry read the careful way (an ``entries.Header``)."""
        self.entry_count += 1
        self.present.append(present_key(h.run_id, h.seq))
        if h.seq > self.max_seq:
            self.max_seq = h.seq
        task = h.task_id
        if task == "-":
            return
        if h.status in statuses.ATTEMPTS:  # attempts that did not finish
            self.failures.setdefault(task, []).append(h.seq)
        elif h.status == statuses.DONE and h.seq > self.last_done.get(task, -1):
            self.last_done[task] = h.seq
        cur = self.latest.get(task)
        if cur is None or h.seq > cur["seq"]:
            self.latest[task] = h.as_latest()

    def add_entry(self, e) -> None:
        """Fold in an entry agentd has just appended (an ``entries.Entry``), as a read of it would."""
        self._entry(e)

    def feed(self, data: bytes, final: bool = True, end: int | None = None) -> int:
        """Fold ``data[:end]`` (starting at a line start) in.  Returns the bytes consumed.

        With ``final=False`` an entry still open at the end of ``data`` (its end
        marker not written yet) is left unconsumed, so the next read sees it whole.

        Runs of whole entries exactly as agentd writes them are taken by ``_scan``
        and folded together (``_fold``); anything else (an entry with extra fields,
        an edited, torn or damaged one) goes through ``_careful_entry``.
        """
        pos, n = 0, len(data) if end is None else end
        if not final:
            n = _hold_back(data, n)
        line = self.lines
        while pos < n:
            heads: list = []
            regions: list = []
            stop = _scan(data, pos, n, heads, regions)
            line = self._fold(data, pos, stop, heads, regions, line)
            pos = stop
            if pos >= n:
                break
            pos, line, more = self._careful_entry(data, pos, n, line, final)
            if not more:
                break
        self.lines = line
        return min(pos, n)

    def _human_region(self, data: bytes, pos: int, nxt: int, line: int) -> int:
        region = data[pos:nxt]
        parts = region.split(b"\n")
        if parts and parts[-1] == b"":
            parts.pop()
        suspects = _suspects(parts) if _END in region else {}
        for i, raw in enumerate(parts):
            line += 1
            self._human(raw, line, suspects.get(i))
        return line

    def _fold(self, data: bytes, start: int, stop: int, heads: list, regions: list, line: int) -> int:
        """Fold data[start:stop] as ``_scan`` took it: its entries, and the human regions
        between them, in file order.  Lines are counted, not taken from ``lines=``: a
        person may have edited a body without changing its size."""
        n = len(heads) // _FIELDS
        if n:
            seq_col, run_col, task_col, status_col, at_col = (heads[i::_FIELDS] for i in (_SEQ, _RUN, _TASK, _STATUS, _AT))
            seqs = list(map(int, seq_col))
            tops = list(accumulate(seqs, max))
        count = data.count
        for k, a, b in regions:
            k //= _FIELDS
            if k:
                self.max_seq = max(self.max_seq, tops[k - 1])
            line = self._human_region(data, a, b, line + count(b"\n", start, a))
            start = b
        line += count(b"\n", start, stop)
        if not n:
            return line
        self.max_seq = max(self.max_seq, tops[-1])
        self.entry_count += n
        self.present.extend(map(b" ".join, zip(seq_col, run_col)))
        failed: dict = {}
        attempts = list(map(_ATTEMPTS.__contains__, status_col))
        for t, q in zip(compress(task_col, attempts), compress(seqs, attempts)):
            failed.setdefault(t, []).append(q)
        failed.pop(b"-", None)
        for t, qs in failed.items():
            self.failures.setdefault(t.decode("ascii"), []).extend(qs)
        last_done = self.last_done
        dones = list(map(_DONE.__eq__, status_col))
        for t, q in zip(compress(task_col, dones), compress(seqs, dones)):
            if t != b"-":
                t = t.decode("ascii")
                if q > last_done.get(t, -1):
                    last_done[t] = q
        if all(map(lt, seqs, islice(seqs, 1, None))):  # in seq order, as agentd writes them
            last = dict(zip(task_col, range(n)))
        else:
            order = sorted(range(n), key=lambda i: (seqs[i], -i))  # of equal seqs, the first in the file wins
            last = dict(zip(map(task_col.__getitem__, order), order))
        last.pop(b"-", None)
        latest, entry = self.latest, entries.latest_entry
        for t, i in last.items():
            task = t.decode("ascii")
            cur = latest.get(task)
            if cur is None or seqs[i] > cur["seq"]:
                latest[task] = entry(seqs[i], status_col[i].decode("ascii"), run_col[i].decode("ascii"),
                                     at_col[i].decode("ascii"))
        return line

    def _careful(self, data: bytes, pos: int, n: int, line: int) -> int:
        """Read data[pos:n] (whole lines and entries) one entry at a time."""
        while pos < n:
            if data[pos:pos + _BLEN] != _BEGIN:
                j = data.find(_NL_BEGIN, pos, n)
                nxt = n if j == -1 else j + 1
                line = self._human_region(data, pos, nxt, line)
                pos = nxt
                continue
            pos, line, _ = self._careful_entry(data, pos, n, line, True)
        return line

    def _careful_entry(self, data: bytes, pos: int, n: int, line: int, final: bool) -> tuple[int, int, bool]:
        """Read the entry that begins at pos.  Returns (pos, line, more); more is False
        when ``final`` is off and the entry is not finished yet."""
        eol = data.find(b"\n", pos, n)
        if eol == -1:
            if not final:
                return pos, line, False
            eol = n
        h = entries.parse_header(data[pos:eol])
        line += 1
        if h is None:
            self._error(line, _damaged(data[pos:eol]))
            return eol + 1, line, True
        body_start = eol + 1
        end = entries.end_marker(h.seq, h.run_id)
        stop = body_start + h.bytes
        if h.bytes > 0 and stop <= n and data[stop - 1:stop] == b"\n" and data[stop - len(end) - 1:stop - 1] == end:
            self._entry(h)
            line += data[body_start:stop].count(b"\n")  # not lines=: a person may have edited the body
            return stop, line, True
        # edited or torn: walk the lines up to the matching end marker or the next entry
        q = body_start
        first_unquoted = None
        k = line
        whole = False
        while q < n:
            e = data.find(b"\n", q, n)
            if e == -1:
                e = n
            raw = data[q:e].rstrip(b"\r")
            if raw.startswith(_BEGIN):
                break
            k += 1
            if raw == end:
                whole = True
                q = e + 1
                break
            if first_unquoted is None and not raw.startswith(b">"):
                first_unquoted = (q, k - 1)
            q = e + 1
        if whole:
            self._entry(h)
            return q, k, True
        if q >= n and not final:
            return pos, line - 1, False
        self.torn += 1
        if first_unquoted is not None:
            pos, line = first_unquoted
        else:
            line, pos = k, q
        return pos, line, pos < n


def parse_bytes(data: bytes) -> State:
    s = State()
    s.feed(data)
    return s
