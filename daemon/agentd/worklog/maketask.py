"""Making a ``Task`` from what a line (or a task file) says: its kind, id and priority."""

from __future__ import annotations


from agentd.lazyre import lazy
from agentd.tasks.task import Task
from agentd.worklog.lineerror import LineError

ID_RE = lazy(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,79}$")
KINDS = ("task", "command", "experiment", "directive", "blocker")


def stable_id(kind: str, text: str) -> str:
    # lazy: hashlib loads OpenSSL (~5 ms); most runs of queue and status never hash
    import hashlib

    norm = " ".join(text.lower().split())
    return "t-" + hashlib.sha1(f"{kind}\0{norm}".encode("utf-8", "replace")).hexdigest()[:8]


def rule_id(text: str, attrs: dict) -> str:
    """A RULE line's id: its ``{id: ...}``, else a stable one from its text (as a task's from its title).
    A rule takes no other attr: it is never queued or run."""
    if not text:
        raise LineError("RULE: needs the rule's text, e.g. RULE: never delete anything under /data")
    other = sorted(k for k in attrs if k != "id")
    if other:
        raise LineError(f"a RULE takes only an id attr, not {', '.join(other)}: a rule is never run as a task")
    tid = attrs.get("id")
    if tid is None:
        return stable_id("rule", text)
    tid = str(tid)
    if not ID_RE.match(tid):
        raise LineError(f"id {tid!r} must be letters, digits, '.', '_', ':' or '-' (at most 80)")
    return tid


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
