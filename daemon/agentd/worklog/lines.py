"""The human line grammar: tasks, directives, blockers, experiments, commands.

One line in, one ``Item`` out (or ``None`` for prose, or ``LineError`` when a
line looks like one of ours but can't be read).  See docs/worklog.md.
"""

from __future__ import annotations

from agentd.lazyre import lazy

from agentd.recordtype import Factory, Record

from agentd.tasks.task import Task
from agentd.config.schema import Field, validate
from agentd.config.yamlread import MAX_NUMBER_CHARS

ID_RE = lazy(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,79}$")
MAX_LINE = 64 * 1024
PRIORITIES = ("critical", "high", "normal", "low")
KINDS = ("task", "command", "experiment", "directive", "blocker")

# The attrs of a line (inline ``{...}``) and of a YAML task file share this schema.
ATTR_FIELDS: dict[str, Field] = {
    "id": Field("str", None, "stable id; letters, digits, . _ : -"),
    "value": Field("float", None, "how much it is worth, 0-10", lo=0, hi=10),
    "certainty": Field("float", None, "how likely it succeeds, 0-1", lo=0, hi=1),
    "run": Field("str", None, "shell command: makes it a command task"),
    "gpu": Field("bool", None, "needs a GPU"),
    "network": Field("network", None, "agent tasks: the network (true), or only these hosts (through agentd's proxy)"),
    "limit_waits": Field("int", None, "agent tasks: usage-limit windows a run may wait through", lo=0, hi=1000),
    "repo": Field("path", None, "agent tasks: work in a new git worktree of this repository, on a branch of its own"),
    "cwd": Field("path", None, "command tasks: the directory it runs in (default: the worklog's; never an agent's)"),
    "after": Field("ids", None, "id or list of ids it depends on"),
    "minutes": Field("float", None, "estimated minutes", lo=0),
    "priority": Field("enum", None, "critical, high, normal or low", choices=PRIORITIES),
    "model": Field("strs", None, "model-bench: model id, local path, or a list of them"),
    "max_new_tokens": Field("int", None, "model-bench: tokens to generate", lo=1, hi=100_000),
    "dtype": Field("enum", None, "cuda-probe: matmul dtype", choices=("bf16", "fp16", "fp32")),
    "size": Field("int", None, "cuda-probe: matrix size", lo=16, hi=65536),
    "prompt": Field("str", None, "model-bench: prompt text"),
    "device": Field("enum", None, "model-bench: auto, cuda or cpu", choices=("auto", "cuda", "cpu")),
    "trust_remote_code": Field("bool", None, "model-bench: let transformers run the model's own code"),
}
FILE_FIELDS: dict[str, Field] = {
    **ATTR_FIELDS,
    "title": Field("str", None, "what to do", required=True),
    "kind": Field("enum", "task", "task, directive, blocker or experiment",
                  choices=("task", "directive", "blocker", "experiment")),
    "done": Field("bool", False, "already done"),
}


class LineError(ValueError):
    pass


class Command(Record):
    verb: str  # done, cancel, retry
    task_id: str
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
    r"^[ \t]*(?:\*\*)?(CRITICAL DIRECTIVE|DIRECTIVE|BLOCKER|EXPERIMENT|DONE|CANCEL|RETRY|APPROVE|DENY)"
    r"(?:\*\*:|:\*\*|:)[ \t]*(.*)$")
FIRST_BYTES = frozenset(b" \t-*ACDBER")
MAX_REASON = 500  # of a DENY line's reason, what the agent is told
KEYWORDS = ("CRITICAL DIRECTIVE", "DIRECTIVE", "BLOCKER", "EXPERIMENT", "DONE", "CANCEL", "RETRY", "APPROVE", "DENY")
# A prose line that starts like a keyword line: one or two words, maybe in **bold**, then ':'.
_LIKE_KEYWORD = lazy(r"^[ \t]*(?:\*\*)?([A-Za-z]{2,12}(?: [A-Za-z]{2,12})?)(?:\*\*)?[ \t]*:")
# attrs begun but never closed: '{key: ...' with no '}' after it
_OPEN_ATTRS = lazy(r"\{[ \t]*[A-Za-z_][A-Za-z0-9_]*[ \t]*:(?:[ \t]|$)[^}]*$")
# attrs closed, with more text after them: '{key: ...} and more' (they are read only at the end of a line)
# (only with one of agentd's keys: ``render {x: 1}`` stays a title)
_INNER_ATTRS = lazy(r"\{[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*:[ \t][^}]*\}")
# a keyword line missing its ':' (``DIRECTIVE find the bug``), or a checkbox missing a space
# (``-[ ] x``, ``- [] x``, ``- [ ]x``): prose, reported by ``near_miss``
_NO_COLON = lazy(r"^[ \t]*(\*\*)?(CRITICAL DIRECTIVE|DIRECTIVE|BLOCKER|EXPERIMENT|DONE|CANCEL|RETRY|APPROVE|DENY)"
                 r"(?:\*\*)?[ \t]+(?![ \t]*(?:\*\*)?:)(\S+)")
_LIKE_BOX = lazy(r"^[ \t]*[-*][ \t]*\[[ xX]?\]")


def stable_id(kind: str, text: str) -> str:
    import hashlib

    norm = " ".join(text.lower().split())
    return "t-" + hashlib.sha1(f"{kind}\0{norm}".encode("utf-8", "replace")).hexdigest()[:8]


def split_attrs(text: str) -> tuple[str, str | None]:
    """'title {a: 1}' -> ('title', '{a: 1}'); the attrs are a trailing balanced {...}."""
    t = text.rstrip()
    if not t.endswith("}"):
        return t, None
    i = t.rfind("{")
    if i != -1 and t.find("}", i) == len(t) - 1:  # no brace inside them: the last "{" opens them (the common case)
        return t[:i].rstrip(), t[i:]
    depth = 0
    for i in range(len(t) - 1, -1, -1):
        c = t[i]
        if c == "}":
            depth += 1
        elif c == "{":
            depth -= 1
            if depth == 0:
                return t[:i].rstrip(), t[i:]
    return t, None


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
    import difflib

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


def unclosed_attrs(title: str) -> str | None:
    """The text of attrs a line begins and never closes (``{value: 1, colour: red``), or None.
    A brace in a title in any other form (``fix {foo} parsing``, ``a { in JSON``) is left alone."""
    if "{" not in title:
        return None
    m = _OPEN_ATTRS.search(title)
    return None if m is None else m.group(0)


def parse_attrs(raw: str | None, where: str) -> dict:
    if raw is None:
        return {}
    data = fast_flow_mapping(raw)
    if data is not None:
        return _check_attrs(data, where)
    from agentd.config.yamlread import yaml_limited

    data, node, problems = yaml_limited(raw, "attrs")  # bounded: depth, aliases, number length
    keys = [k.value for k, _ in node.value] if not problems and isinstance(getattr(node, "value", None), list) \
        and all(isinstance(p, tuple) for p in node.value) else []
    dup = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
    if dup is not None:  # the last would win silently; for network or gpu that changes the sandbox
        raise LineError(f"attrs: {dup!r} is given twice; keep one")
    if problems:
        what = problems[0].split(": ", 1)[1]
        if what.startswith("not valid YAML: "):
            raise LineError(f"attrs {raw[:80]!r} are not a YAML flow mapping ({what[16:]})")
        raise LineError(f"attrs {raw[:80]!r}…: {what}" if len(raw) > 80 else f"attrs {raw!r}: {what}")
    if not isinstance(data, dict):
        raise LineError(f"attrs {raw[:80]!r} are not a mapping")
    return _check_attrs(data, where)


def _check_attrs(data: dict, where: str) -> dict:
    clean, problems = validate(data, ATTR_FIELDS, source=where, fill_defaults=False)
    if problems:
        raise LineError("; ".join(p.split(": ", 1)[1] for p in problems))
    return clean


def make_task(kind: str, title: str, attrs: dict, *, line: int, source: str, text: str,
              priority: str = "normal", human_done: bool = False) -> Task:
    if "run" in attrs and not str(attrs["run"] or "").strip():
        raise LineError("'run' is empty: give the shell command, or leave run out to make it an agent task")
    if kind == "task" and attrs.get("run"):
        kind = "command"
    if attrs.get("priority"):
        priority = attrs["priority"]
    tid = attrs.get("id")
    if tid is not None:
        tid = str(tid)
        if not ID_RE.match(tid):
            raise LineError(f"id {tid!r} must be letters, digits, '.', '_', ':' or '-' (at most 80)")
    else:
        basis = text if kind == "experiment" else title
        tid = stable_id("task" if kind == "command" else kind, basis)  # adding run: keeps the id
    if kind == "experiment":
        title = title.split()[0] if title.split() else ""
        if not title:
            raise LineError("EXPERIMENT needs a name, e.g. EXPERIMENT: cuda-probe")
    if not title:
        raise LineError("the line has no title")
    return Task(id=tid, title=title, kind=kind, priority=priority, attrs=attrs, line=line, source=source,
                   text=text, human_done=human_done)


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


def parse_line(text: str, line: int, source: str = "worklog") -> Task | Command | Answer | None:
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
    kind = {"CRITICAL DIRECTIVE": "directive", "DIRECTIVE": "directive", "BLOCKER": "blocker",
            "EXPERIMENT": "experiment"}[word]
    return make_task(kind, title.strip(), attrs, line=line, source=source, text=text.strip(),
                     priority="critical" if word == "CRITICAL DIRECTIVE" else "normal")


_SIMPLE_KEY = lazy(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NOT_SIMPLE = lazy(r"['\"\[\]{}#&*!|>%@`?]")


def _lift_quoted(inner: str) -> tuple[str, list[str]] | None:
    """``inner`` with each quoted value ('…' or "…", the whole value after ``key: ``) replaced by a
    placeholder (NUL and its number), and the values; None when a quote stands anywhere else,
    or a value is not one YAML reads literally (a backslash escape, a character that is not
    printable).  ``'it''s'`` is ``it's``, as in YAML."""
    if "\0" in inner:
        return None
    out: list = []
    values: list = []
    i, n = 0, len(inner)
    while i < n:
        q1, q2 = inner.find("'", i), inner.find('"', i)
        j = q1 if q2 == -1 or (q1 != -1 and q1 < q2) else q2
        if j == -1:
            out.append(inner[i:])
            break
        before = inner[i:j]
        key_end = before.rstrip(" ")
        if not key_end.endswith(":") or key_end == before:  # not the value of a key
            return None
        q = inner[j]
        if q == "'":
            pieces, k = [], j + 1
            while True:
                e = inner.find("'", k)
                if e == -1:
                    return None
                if inner.startswith("'", e + 1):  # '' is one quote
                    pieces.append(inner[k:e + 1])
                    k = e + 2
                    continue
                pieces.append(inner[k:e])
                break
            value = "".join(pieces)
        else:
            e = inner.find('"', j + 1)
            if e == -1:
                return None
            value = inner[j + 1:e]
            if "\\" in value:
                return None
        if value and not value.isprintable():
            return None
        after = inner[e + 1:].lstrip(" ")
        if after and after[0] != ",":
            return None
        out.append(f"{before}\0{len(values)}")
        values.append(value)
        i = e + 1
    return "".join(out), values


def fast_flow_mapping(raw: str) -> dict | None:
    """Parse '{a: 1, b: x y, c: 'quoted, anything'}' without yaml when it only holds plain
    scalars and quoted values without escapes.

    Returns None when the text needs the real YAML parser.  For the text it
    accepts, the result equals ``yaml.safe_load`` (checked by a property test).
    """
    inner = raw[1:-1]
    quoted: list = []
    if "'" in inner or '"' in inner:  # a quoted command is common: {run: "make test && make bench"}
        lifted = _lift_quoted(inner)
        if lifted is None:
            return None
        inner, quoted = lifted
    if _NOT_SIMPLE.search(inner) or "\t" in inner:
        return None
    out: dict = {}
    parts = inner.split(",")
    if len(parts) > 1 and not parts[-1].strip():
        parts.pop()  # one trailing comma is fine
    for part in parts:
        if not part.strip():
            return None
        key, sep, value = part.partition(":")
        key = key.strip()
        if (not sep or not _SIMPLE_KEY.match(key) or key in out or key.lower() in _YAML_SPECIAL
                or (value and not value[0].isspace())):
            return None
        value = value.strip()
        if value.startswith("\0"):
            if not value[1:].isdigit():
                return None
            out[key] = quoted[int(value[1:])]
            continue
        if ": " in value or value.endswith(":") or value.startswith(("-", "?")) and len(value) > 1 and value[1] == " ":
            return None
        if not value:
            out[key] = None
        elif len(value) > MAX_NUMBER_CHARS and value[-1:].isdigit():
            return None  # maybe a number too long to convert: the careful parser says so
        elif _PLAIN_INT.match(value):
            out[key] = int(value)
        elif _PLAIN_FLOAT.match(value):
            out[key] = float(value)
        elif value in _WORDS:
            out[key] = _WORDS[value]
        elif value[0] in "0123456789+-~=<:,?" or value.lower() in _YAML_SPECIAL or _DOT_NUM.match(value):
            return None
        else:
            out[key] = value
    return out


_YAML_SPECIAL = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
_DOT_NUM = lazy(r"^\.(?:[0-9]|inf|Inf|INF|nan|NaN|NAN)")
_PLAIN_INT = lazy(r"^-?(?:0|[1-9][0-9]*)$")
_PLAIN_FLOAT = lazy(r"^-?(?:0|[1-9][0-9]*)\.[0-9]+$")
_WORDS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False,
          "yes": True, "Yes": True, "YES": True, "no": False, "No": False, "NO": False,
          "on": True, "On": True, "ON": True, "off": False, "Off": False, "OFF": False,
          "null": None, "Null": None, "NULL": None}
