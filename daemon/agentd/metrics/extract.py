"""Metrics a run leaves behind: ``METRIC`` lines on a command's stdout, the JSON file a task's ``metrics:``
attr names, and the run's own figures (duration, exit code, tokens, cost).  All ``measured``.

Every reader is bounded in time and memory whatever the input: a line is read at most ``MAX_LINE`` bytes
at a time (a 100 MB line costs one pass and no memory), at most ``MAX_METRICS`` metrics are kept per run
(the rest are counted and the cap is said), at most ``MAX_NOTES`` notes are written (the rest counted),
and a metrics file is read only up to ``MAX_FILE`` bytes.  What can't be read becomes a note, never an
exception: a bad line or file costs its own metrics and nothing else.
"""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

from agentd.escapes import safe
from agentd.redact import redact
from agentd.metrics.metric import MEASURED, UNIT, Metric, name_problem, number, value_problem
from agentd.recordtype import Factory, Record

MAX_METRICS = 1000  # per run, from every source together (a name a gate uses is kept past it)
OWN = "run."  # the prefix of agentd's own figures of a run (``from_run``)
MAX_CLAIMED = 50  # an agent's record_metric calls kept per run (agent/tools.py refuses more)
MAX_LINE = 4096  # bytes of one stdout line looked at; a longer METRIC line is refused
MAX_NOTES = 20
MAX_FILE = 1024 * 1024  # a metrics file's size
SHAPE = "METRIC <name>=<number> [<unit>]"


class Extracted(Record):
    metrics: list = Factory(list)  # Metric, one per name, in the order first seen
    notes: list = Factory(list)  # what could not be read, each line naming where
    by_name: dict = Factory(dict)  # name -> its index in metrics
    over: int = 0  # metrics past MAX_METRICS, not kept
    unsaid: int = 0  # notes past MAX_NOTES, not written
    keep: frozenset = frozenset()  # names a gate decides on: kept past MAX_METRICS

    def add(self, m: Metric, where: str = "", own: bool = False) -> None:
        """Keep ``m``; a name given again replaces the earlier value (said once per name).  ``run.*``
        names are agentd's own figures (``own``): nothing a run prints or writes may give or replace one.
        A name shaped like a key (``ghp_…``, ``sk-…``) is not kept: names reach the store and
        ``agentd metrics`` unredacted."""
        if m.name.startswith(OWN) and not own:
            self.note(f"{where}{m.name}: names starting {OWN!r} are agentd's own figures; not kept")
            return
        if redact(m.name, {}) != m.name:
            self.note(f"{where}a name shaped like a secret key: not kept")
            return
        at = self.by_name.get(m.name)
        if at is not None:
            if self.metrics[at].value != m.value:
                self.note(f"{where}{m.name} given again: the later value {m.value:g} is kept")
            self.metrics[at] = m
            return
        if len(self.metrics) >= MAX_METRICS and m.name not in self.keep:
            self.over += 1
            return
        self.by_name[m.name] = len(self.metrics)
        self.metrics.append(m)

    def note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)
        else:
            self.unsaid += 1

    def finish(self) -> "Extracted":
        """The closing notes: what the caps left out."""
        if self.over:
            self.notes.append(f"{self.over} more metric(s) past the cap of {MAX_METRICS} per run were not kept")
            self.over = 0
        if self.unsaid:
            self.notes.append(f"and {self.unsaid} more note(s) like these")
            self.unsaid = 0
        return self

    def values(self) -> dict:
        return {m.name: m.value for m in self.metrics}


# -- stdout -----------------------------------------------------------------------------------------------

def _lines(f):
    """(line number, the line's first MAX_LINE bytes, whether it was longer) for each line of ``f``."""
    n = 0
    while True:
        line = f.readline(MAX_LINE + 1)
        if not line:
            return
        n += 1
        long = len(line) > MAX_LINE and not line.endswith(b"\n")
        if long:  # skip the rest of the line a chunk at a time
            while (rest := f.readline(65536)) and not rest.endswith(b"\n"):
                pass
        yield n, line[:MAX_LINE], long


def _candidate(line: bytes) -> bool:
    """Does the line look like a METRIC line (then a bad one gets a note)?"""
    s = line.lstrip(b" \t")
    return s.startswith(b"METRIC") and (len(s) == 6 or s[6:7] in b" \t\r\n=")


def parse_line(text: str) -> tuple[Metric | None, str | None]:
    """One METRIC line as a Metric, or (None, what is wrong with it)."""
    parts = text.strip()[len("METRIC"):].split()
    if not 1 <= len(parts) <= 2 or "=" not in parts[0]:
        return None, f"not {SHAPE}"
    name, _, num = parts[0].partition("=")
    why = name_problem(name)
    if why:
        return None, why
    value, why = number(num)
    if why:
        return None, f"{name}: {why}"
    unit = parts[1] if len(parts) == 2 else ""
    if unit and not UNIT.fullmatch(unit):
        return None, f"{name}: {unit[:40]!r} is not a unit (letters, digits, % / _ . * ^ -, at most 32)"
    return Metric(name, value, unit, MEASURED), None


def from_stdout(source, into: Extracted | None = None) -> Extracted:
    """The METRIC lines of a command's stdout: ``source`` is its file (``stdout.txt``) or its bytes."""
    out = into if into is not None else Extracted()
    if isinstance(source, (bytes, bytearray, memoryview)):
        f = io.BytesIO(source)
    elif isinstance(source, str):
        f = io.BytesIO(source.encode("utf-8", "surrogateescape"))
    else:
        try:
            f = open(source, "rb")
        except OSError as e:
            out.note(f"stdout {source}: can't be read: {e.strerror or e}")
            return out.finish()
    with f:
        for n, raw, long in _lines(f):
            if not _candidate(raw):
                continue
            if long:
                out.note(f"stdout line {n}: a METRIC line longer than {MAX_LINE} bytes: not read")
                continue
            text = raw.decode("utf-8", "replace")
            metric, why = parse_line(text)
            if metric is None:
                out.note(f"stdout line {n}: {safe(text.strip(), 80)}: {why}")
            else:
                out.add(metric, f"stdout line {n}: ")
    return out.finish()


# -- the metrics: file ------------------------------------------------------------------------------------

class _Refused:
    """What a refused JSON number (NaN, Infinity, 1e400, 400 digits) reads as: kept out of the metrics."""

    def __init__(self, text: str):
        self.text = text


def _constant(text: str):
    return _Refused(text)


def _float(text: str):
    value = float(text)
    return _Refused(text) if value_problem(value) else value


def _int(text: str):
    return _Refused(text) if len(text.lstrip("-")) > 300 else int(text)


def attr_problem(value) -> str | None:
    """Why a task's ``metrics:`` attr can't name a file, or None (checked before any run)."""
    if not isinstance(value, str) or not value.strip():
        return "metrics: must be a path (relative to the workspace, or absolute) to a JSON file"
    if len(value) > 4096 or "\0" in value or "\n" in value:
        return "metrics: is not a usable path (too long, or holds a NUL or a newline)"
    return None


def resolve(attr: str, workspace: Path) -> Path:
    """Where a ``metrics:`` attr points: relative to the workspace, or absolute (``~`` expanded)."""
    p = Path(attr).expanduser()
    return p if p.is_absolute() else Path(workspace) / p


def _read_bounded(path: Path) -> bytes:
    """The file's bytes, or OSError/ValueError saying why not: a regular file (a FIFO would hang the
    wake, /dev/zero never ends) of at most MAX_FILE bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("is not a regular file")
        if st.st_size > MAX_FILE:
            raise ValueError(f"is {st.st_size} bytes, more than the {MAX_FILE // 1024} KiB a metrics file may be")
        chunks, size = [], 0
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_FILE:  # it grew while read
                raise ValueError(f"is more than the {MAX_FILE // 1024} KiB a metrics file may be")
        return b"".join(chunks)
    finally:
        os.close(fd)


def from_file(attr: str, workspace: Path, into: Extracted | None = None) -> Extracted:
    """The top-level numbers of the JSON object in the file a task's ``metrics:`` attr names.  Booleans,
    strings, lists and nested objects are not metrics and are passed over; NaN, Infinity and numbers
    too large for a float are refused with a note naming the file and the key."""
    out = into if into is not None else Extracted()
    path = resolve(attr, workspace)
    where = f"metrics file {safe(attr, 200)}"
    problem = None
    try:
        data = json.loads(_read_bounded(path).decode("utf-8"), parse_constant=_constant, parse_float=_float,
                          parse_int=_int)
    except FileNotFoundError:
        problem = f"not found ({safe(str(path), 200)}): did the command write it?"
    except OSError as e:
        problem = f"can't be read: {e.strerror or e}"
    except UnicodeDecodeError:  # (before ValueError, which it is)
        problem = "is not UTF-8 text"
    except RecursionError:
        problem = "is not JSON agentd reads (nested too deep)"
    except json.JSONDecodeError as e:
        problem = f"is not JSON ({e})"
    except ValueError as e:  # _read_bounded's bounds, and the numbers refused while parsing
        problem = str(e)
    if problem is not None:
        out.note(f"{where}: {problem}")
        return out.finish()
    if not isinstance(data, dict):
        out.note(f"{where}: must hold a JSON object ({{\"name\": number, ...}}), not a {type(data).__name__}")
        return out.finish()
    bad_names = []
    for key, value in data.items():
        if isinstance(value, _Refused):
            out.note(f"{where}: {safe(key, 64)}: {safe(value.text, 40)} is not a finite number: refused")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if name_problem(key):
            bad_names.append(key)
            continue
        out.add(Metric(key, float(value), "", MEASURED), f"{where}: ")
    if bad_names:
        shown = ", ".join(safe(repr(k), 40) for k in bad_names[:3])
        out.note(f"{where}: {len(bad_names)} key(s) with a number are not metric names, not kept: {shown}"
                 + (" ..." if len(bad_names) > 3 else ""))
    return out.finish()


# -- the run's own figures --------------------------------------------------------------------------------

RUN_FIGURES = (("duration_s", "run.duration_s", "s"), ("exit_code", "run.exit_code", ""),
               ("input_tokens", "run.input_tokens", "tokens"), ("output_tokens", "run.output_tokens", "tokens"),
               ("cost_usd", "run.cost_usd", "USD"))


def from_run(row: dict, into: Extracted | None = None) -> Extracted:
    """A run's own figures from its ``runs`` row (or an Outcome's fields): those it has."""
    out = into if into is not None else Extracted()
    for column, name, unit in RUN_FIGURES:
        value = row.get(column)
        if value is not None and not value_problem(value):
            out.add(Metric(name, float(value), unit, MEASURED), own=True)
    return out.finish()
