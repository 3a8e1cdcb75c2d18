"""Reading a worklog's bytes into a small state: tasks, commands, entries, errors.

``State.feed`` takes a run of whole lines and folds them into the state, so a
first read and an incremental read (only the new bytes) give the same result.
Entries are skipped in one step using the byte count in their header; only
the human regions between entries are split into lines.  Lines inside an
entry (between its begin and end markers) are never read as human lines.
"""

from __future__ import annotations

from agentd.record import Factory, Record

from agentd import entries
from agentd.lines import FIRST_BYTES, Command, LineError, TaskDef, parse_line

PARSER_VERSION = 6
MAX_ERRORS = 500
_BEGIN = entries.BEGIN.encode()
_NL_BEGIN = b"\n" + _BEGIN
_END = entries.END.encode()
BOM = b"\xef\xbb\xbf"


def _suspects(parts: list[bytes]) -> dict[int, tuple[str, int]]:
    """Lines right above an orphan end marker's quoted lines: maybe a cut-off entry start.

    Maps the line's index to the (run, seq) of that end marker.
    """
    out = {}
    for i, raw in enumerate(parts):
        m = entries.END_RE.match(raw) if raw.startswith(_END) else None
        if m:
            j = i - 1
            while j >= 0 and parts[j].startswith(b">"):
                j -= 1
            if j >= 0:
                out[j] = (m.group(2).decode("ascii", "replace"), int(m.group(1)))
    return out


class State(Record):
    tasks: dict = Factory(dict)  # id -> TaskDef dict
    dup_lines: dict = Factory(dict)  # id -> [lines]
    commands: dict = Factory(dict)  # task id -> [(key, verb, line)]
    latest: dict = Factory(dict)  # task id -> entry summary of the highest seq
    failures: dict = Factory(dict)  # task id -> [seq of failed entries]
    errors: list = Factory(list)  # [(line, message)]
    error_count: int = 0
    torn: int = 0
    entry_count: int = 0
    max_seq: int = 0
    lines: int = 0  # lines consumed so far
    present: list = Factory(list)  # [(run, seq)] seen since the last flush
    suspects: list = Factory(list)  # [(line, text, run, seq)] see resolve_suspects

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d.pop("present")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "State":
        s = cls(**d)
        s.present = []
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
                item = parse_line(text, line)
                if isinstance(item, TaskDef):
                    self.tasks[item.id] = item.to_dict()
                elif isinstance(item, Command):
                    key = seq + 0.5
                    self.commands.setdefault(item.task_id, []).append((key, item.verb, line))
                continue
            why = ("is the remnant of agentd entry" if copy is not None else "may be the cut-off start of agentd entry")
            self._error(line, f"{why} {run}#{seq} (its start was cut off); not read")

    def _human(self, raw: bytes, line: int, suspect: tuple | None = None) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if line == 1 and raw.startswith(BOM):
            raw = raw[3:]
        if not raw or raw[0] not in FIRST_BYTES:
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
            self._error(line, f"{bad}; not read" if bad else str(e))
            return
        if item is not None and bad:
            self._error(line, f"{bad}; not read")
            return
        if item is not None and suspect:
            # Either a person's line, or the remnant of a body line whose start an editor cut off.
            # ``resolve_suspects`` decides with agentd's own copy of that entry.
            self.suspects.append((line, text, suspect[0], suspect[1]))
            return
        if isinstance(item, TaskDef):
            if item.id in self.tasks:
                self.dup_lines.setdefault(item.id, []).append(self.tasks[item.id]["line"])
            self.tasks[item.id] = item.to_dict()
        elif isinstance(item, Command):
            key = self.max_seq + 0.5
            self.commands.setdefault(item.task_id, []).append((key, item.verb, line))

    def _entry_fast(self, seq: int, run: str, task: str, status: str, at: str, until: str | None = None) -> None:
        self.entry_count += 1
        self.present.append((run, seq))
        if seq > self.max_seq:
            self.max_seq = seq
        if task == "-":
            return
        if status == "failed" or status == "interrupted":  # both are attempts that did not finish
            self.failures.setdefault(task, []).append(seq)
        cur = self.latest.get(task)
        if cur is None or seq > cur["seq"]:
            self.latest[task] = {"seq": seq, "status": status, "run": run, "at": at, "until": until}

    def _entry(self, h: dict) -> None:
        self._entry_fast(h["seq"], h["run"], h["task"], h["status"], h["at"], h["extra"].get("until"))

    def feed(self, data: bytes, final: bool = True) -> int:
        """Fold ``data`` (starting at a line start) in.  Returns the bytes consumed.

        With ``final=False`` an entry still open at the end of ``data`` (its end
        marker not written yet) is left unconsumed, so the next read sees it whole.
        """
        pos, n = 0, len(data)
        line = self.lines
        while pos < n:
            nxt = 0 if data.startswith(_BEGIN, pos) and pos == 0 else -1
            if nxt != 0:
                j = data.find(_NL_BEGIN, pos - 1 if pos else 0)
                nxt = n if j == -1 else j + 1
                if pos == 0 and data.startswith(_BEGIN):
                    nxt = 0
            # the human region [pos, nxt)
            if nxt > pos:
                region = data[pos:nxt]
                parts = region.split(b"\n")
                if parts and parts[-1] == b"":
                    parts.pop()
                suspects = _suspects(parts) if _END in region else {}
                for i, raw in enumerate(parts):
                    line += 1
                    self._human(raw, line, suspects.get(i))
                pos = nxt
                if pos >= n:
                    break
            # an entry begins at pos
            eol = data.find(b"\n", pos)
            if eol == -1:
                if not final:
                    break
                eol = n
            hdr = data[pos:eol]
            f = hdr.split(b" ")
            # the fast path: a whole entry exactly as agentd writes it (no extra fields), skipped in one step
            if (len(f) == 11 and f[2] == b"entry" and f[10] == b"===" and f[9][:6] == b"bytes="
                    and f[3][:4] == b"seq=" and f[4][:4] == b"run=" and f[5][:5] == b"task="
                    and f[6][:7] == b"status=" and f[7][:3] == b"at=" and f[8][:6] == b"lines="
                    and f[0] == b"===" and f[1] == b"agentd"):
                stop = eol + 1 + int(f[9][6:]) if f[9][6:].isdigit() else -1
                endm = b"=== agentd end " + f[3] + b" " + f[4] + b" ==="
                if stop > eol + 1 and data[stop - 1:stop] == b"\n" and data[stop - 1 - len(endm):stop - 1] == endm:
                    status = f[6][7:].decode("ascii", "replace")
                    seq = int(f[3][4:]) if f[3][4:].isdigit() else 0
                    if status in entries.STATUSES and 0 < seq < entries.MAX_SEQ:
                        self._entry_fast(seq, f[4][4:].decode("ascii", "replace"), f[5][5:].decode("ascii", "replace"),
                                         status, f[7][3:].decode("ascii", "replace"))
                        line += 1 + data.count(b"\n", eol + 1, stop)
                        pos = stop
                        continue
            h = entries.parse_header(hdr)
            line += 1
            if h is None:
                self._error(line, "damaged agentd entry marker; the entry is ignored")
                pos = eol + 1
                continue
            body_start = eol + 1
            end = entries.end_marker(h["seq"], h["run"])
            stop = body_start + h["bytes"]
            if h["bytes"] > 0 and data[stop - 1:stop] == b"\n" and data[stop - len(end) - 1:stop - 1] == end:
                self._entry(h)
                line += data.count(b"\n", body_start, stop)  # not lines=: a person may have edited the body
                pos = stop
                continue
            # edited or torn: walk the lines up to the matching end marker or the next entry
            q = body_start
            first_unquoted = None
            k = line
            whole = False
            while q < n:
                e = data.find(b"\n", q)
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
                line, pos = k, q
                continue
            if q >= n and not final:
                line -= 1
                break
            self.torn += 1
            if first_unquoted is not None:
                pos, line = first_unquoted
            else:
                line, pos = k, q
            if pos >= n:
                break
        self.lines = line
        return min(pos, n)


def parse_bytes(data: bytes) -> State:
    s = State()
    s.feed(data)
    return s
