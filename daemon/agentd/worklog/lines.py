"""The human line grammar: tasks, directives, blockers, experiments, commands.

One line in, one ``Item`` out (or ``None`` for prose, or ``LineError`` when a
line looks like one of ours but can't be read), and why a prose line that nearly
is one is not (``near_keyword``, ``near_miss``).  A line's ``{...}`` attrs are read by
``attrs``; the ``Task`` is made by ``maketask``.  See docs/worklog.md.
"""

from __future__ import annotations

from agentd.lazyre import lazy

from agentd.recordtype import Record

from agentd.tasks.task import Task
from agentd.worklog.attrs import ATTR_FIELDS, parse_attrs, split_attrs, unclosed_attrs
from agentd.worklog.lineerror import LineError
from agentd.worklog.maketask import ID_RE, make_task, rule_id
# not used here: kept for queue/queue.py and cli/commands.py until they import them from worklog.attrs

MAX_LINE = 64 * 1024


class Command(Record):
    verb: str  # done, cancel, retry
    task_id: str
    line: int


class Rule(Record):
    """A person's ``RULE: <text>``: a constraint in force until a DONE/CANCEL line names its id; never a task."""
    id: str
    text: str
    line: int


class Answer(Record):
    """A person's APPROVE: <id> [in <dir>] or DENY: <id> <reason>, answering an agent's request_approval."""
    verb: str  # approve | deny
    approval_id: str
    reason: str
    line: int
    dir: str = ""  # APPROVE: <id> in /abs/dir: where an approved command runs (else a fresh empty dir)


_TASK = lazy(r"^[ \t]*[-*] \[([ xX])\][ \t]+(.*)$")
_KEYWORD = lazy(
    r"^[ \t]*(?:\*\*)?(CRITICAL DIRECTIVE|DIRECTIVE|BLOCKER|EXPERIMENT|RULE|DONE|CANCEL|RETRY|APPROVE|DENY)"
    r"(?:\*\*:|:\*\*|:)[ \t]*(.*)$")
FIRST_BYTES = frozenset(b" \t-*ACDBER")
MAX_REASON = 500  # of a DENY line's reason, what the agent is told
KEYWORDS = ("CRITICAL DIRECTIVE", "DIRECTIVE", "BLOCKER", "EXPERIMENT", "RULE", "DONE", "CANCEL", "RETRY", "APPROVE", "DENY")
# A prose line that starts like a keyword line: one or two words, maybe in **bold**, then ':'.
_LIKE_KEYWORD = lazy(r"^[ \t]*(?:\*\*)?([A-Za-z]{2,12}(?: [A-Za-z]{2,12})?)(?:\*\*)?[ \t]*:")
# attrs closed, with more text after them: '{key: ...} and more' (they are read only at the end of a line)
# (only with one of agentd's keys: ``render {x: 1}`` stays a title)
_INNER_ATTRS = lazy(r"\{[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*:[ \t][^}]*\}")
# a keyword line missing its ':' (``DIRECTIVE find the bug``), or a checkbox missing a space
# (``-[ ] x``, ``- [] x``, ``- [ ]x``): prose, reported by ``near_miss``
_NO_COLON = lazy(r"^[ \t]*(\*\*)?(CRITICAL DIRECTIVE|DIRECTIVE|BLOCKER|EXPERIMENT|RULE|DONE|CANCEL|RETRY|APPROVE|DENY)"
                 r"(?:\*\*)?[ \t]+(?![ \t]*(?:\*\*)?:)(\S+)")
_LIKE_BOX = lazy(r"^[ \t]*[-*][ \t]*\[[ xX]?\]")


def near_keyword(text: str) -> str | None:
    """Why a prose line that starts like a keyword line (``EXPRIMENT: health``, ``Done: t-1``) is not
    one, with the keyword it was probably meant to be; None for any other line.  The line stays prose
    (never guessed into a command): this only says so.  Cheap for lines that don't start with a
    word and ':' (a regex match); difflib runs only on an upper-case word that is no keyword."""
    m = _LIKE_KEYWORD.match(text)
    if m is None:
        return None
    word = " ".join(m.group(1).split())
    upper = word.upper()
    if upper in KEYWORDS:
        if word == upper:
            return None  # a keyword (its line was read, or was unreadable on its own account)
        return (f"'{word}:' is not a keyword (keywords are upper case), so this line is prose and ignored; "
                f"did you mean {upper}:?")
    if word != upper or len(word) < 3:
        return None  # ordinary prose: "Note: ...", "Plan: ..."
    import difflib  # lazy: difflib only for a line that nearly is a keyword; keeps queue's start-up

    close = difflib.get_close_matches(word, KEYWORDS, 1, 0.75)
    if not close:
        return None
    return f"'{word}:' is not a keyword, so this line is prose and ignored; did you mean {close[0]}:?"


def near_miss(text: str) -> str | None:
    """Why a prose line that starts like a keyword or task line, short of a ':' or a space, is not one
    (``DIRECTIVE find the bug``, ``-[ ] x``, ``- [] x``); None for any other line.  It stays prose.
    DONE/CANCEL/RETRY/APPROVE/DENY count only before an id-like word (``DONE t-1``, not ``DONE with``)."""
    head = text.lstrip(" \t")[:2]
    if head[:1] in ("-", "*") and head != "**":
        if _LIKE_BOX.match(text) is None:
            return None
        return ("this looks like a task line but is not one, so it is prose and ignored: "
                "a task line starts `- [ ] ` (a dash, a space, a box with a space or x in it, a space)")
    m = _NO_COLON.match(text)
    if m is None:
        return None
    word, nxt = m.group(2), m.group(3)
    if word in ("DONE", "CANCEL", "RETRY", "APPROVE", "DENY") and not any(ch.isdigit() or ch == "-" for ch in nxt):
        return None
    meant = f"**{word}**:" if m.group(1) else f"{word}:"
    return f"'{word}' without its ':' is not a keyword, so this line is prose and ignored; did you mean {meant}?"


def _split(text: str) -> tuple[str, str | None]:
    """``split_attrs``, refusing attrs begun and never closed (the brace text would be the title)."""
    title, raw = split_attrs(text)
    if raw is None and "{" in title:
        opened = unclosed_attrs(title)
        if opened is not None:
            shown = opened if len(opened) <= 80 else opened[:80] + "…"
            raise LineError(f"attrs {shown!r} have no closing '}}': close them (the line is not read until then)")
    if "{" in title:
        m = next((m for m in _INNER_ATTRS.finditer(title) if m.group(1) in ATTR_FIELDS), None)
        if m is not None:
            shown = m.group(0) if len(m.group(0)) <= 80 else m.group(0)[:79] + "…}"
            raise LineError(f"attrs {shown!r} must end the line: put them last (the line is not read until then)")
    return title, raw


def parse_line(text: str, line: int, source: str = "worklog") -> Task | Command | Answer | Rule | None:
    """Parse one human line (without its newline).  Prose gives None."""
    m = _TASK.match(text)
    if m:
        if len(text) > MAX_LINE:
            raise LineError(f"line is {len(text)} characters long; a task line may have at most {MAX_LINE}")
        title, raw = _split(m.group(2))
        attrs = parse_attrs(raw, f"{source}:{line}")
        return make_task("task", title.strip(), attrs, line=line, source=source, text=text.strip(),
                         human_done=m.group(1) != " ")
    m = _KEYWORD.match(text)
    if not m:
        return None
    if len(text) > MAX_LINE:
        raise LineError(f"line is {len(text)} characters long; a {m.group(1)} line may have at most {MAX_LINE}")
    word, rest = m.group(1), m.group(2).strip()
    if word in ("DONE", "CANCEL", "RETRY"):
        tid = rest.split()[0] if rest.split() else ""
        if not ID_RE.match(tid):
            raise LineError(f"{word}: needs a task id, e.g. {word}: t-1a2b3c4d")
        return Command(word.lower(), tid, line)
    if word in ("APPROVE", "DENY"):
        aid, _, reason = rest.partition(" ")
        aid = aid.rstrip(",;.:").lower()  # "APPROVE: AP-1A2B3C, go ahead" (agentd's ids are lower case)
        if not ID_RE.match(aid):
            raise LineError(f"{word}: needs an approval id, e.g. {word}: ap-1a2b3c4d5e6f7a8b")
        reason = reason.strip()
        if word == "APPROVE" and reason.split(None, 1)[0:1] == ["in"]:
            where = reason[2:].strip()
            if not where.startswith("/"):
                raise LineError(f"APPROVE: {aid} in DIR: the directory must be an absolute path, not {where[:80]!r}")
            return Answer("approve", aid, "", line, where)
        return Answer(word.lower(), aid, reason[:MAX_REASON], line)
    title, raw = _split(rest)
    attrs = parse_attrs(raw, f"{source}:{line}")
    if word == "RULE":
        return Rule(rule_id(title.strip(), attrs), title.strip(), line)
    kind = {"CRITICAL DIRECTIVE": "directive", "DIRECTIVE": "directive", "BLOCKER": "blocker",
            "EXPERIMENT": "experiment"}[word]
    return make_task(kind, title.strip(), attrs, line=line, source=source, text=text.strip(),
                     priority="critical" if word == "CRITICAL DIRECTIVE" else "normal")


