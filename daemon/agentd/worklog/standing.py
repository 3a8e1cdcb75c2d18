"""The standing directives in force: a person's RULE lines and critical directives, each until a
DONE: or CANCEL: line below it names its id (a RETRY: below those brings it back).

A rule is never queued or run; a critical directive is also a task, and stays in force after its
run is done.  The wake gives them to every agent run (``Job.rules``; ``agent/agentrun.rules_text`` puts them in its
prompt, bounded), and ``status`` lists them.
"""

from __future__ import annotations

from agentd.recordtype import Record


class Standing(Record):
    id: str
    line: int
    kind: str  # rule | directive (a critical directive)
    text: str


def in_force(state, skip: str | None = None) -> list[Standing]:
    """The rules and critical directives in force, by line (``skip``: a task's own id, left out)."""
    out = []
    for sid, (line, kind, text) in state.standing.items():
        if sid == skip:
            continue
        marks = [m for m in state.commands.get(sid, ()) if m.line > line]
        if marks and max(marks, key=lambda m: m.line).verb in ("done", "cancel"):
            continue
        out.append(Standing(sid, line, kind, text))
    out.sort(key=lambda r: r.line)
    return out


def ids_line(rules: list) -> str:
    """The "started" entry's line naming the rules a run was given ("" for none)."""
    return f"\nrules: {', '.join(r.id for r in rules)}" if rules else ""
