"""The lines only the whole worklog shows are ignored: a DONE/CANCEL/RETRY naming no task, a task
line a later one with the same id replaces.  The queue lists the first few, `agentd check` all;
each with the defined id most like the one written (a typo), found in a bounded number of ids.
"""

from __future__ import annotations

from itertools import islice

MAX_NOTES = 20  # of each kind the queue keeps: a few lines, never one per task of a long list
_MAX_CANDIDATES = 2000  # the ids difflib compares an unknown id with


def closest_id(tid: str, ids) -> str | None:
    """The defined id most like ``tid`` (a typo), or None; bounded for a list of a million ids."""
    import difflib  # lazy: difflib only for a 'did you mean'; keeps queue's start-up

    ids = list(ids) if not isinstance(ids, list) else ids
    if len(ids) > _MAX_CANDIDATES:  # those sharing its first characters, then any
        head = tid[:3]
        near = [i for i in ids if i.startswith(head)][:_MAX_CANDIDATES]
        ids = near or ids[:_MAX_CANDIDATES]
    best = difflib.get_close_matches(tid, ids, 1, 0.6)
    return best[0] if best else None


def _did_you_mean(tid: str, ids) -> str:
    near = closest_id(tid, ids)
    return f"; did you mean {near}?" if near else ""


def notes(state, file_ids=(), cap: int = MAX_NOTES) -> tuple[list[tuple[int, str]], int]:
    """(the first notes by line, how many in all): DONE/CANCEL/RETRY lines naming no task a line or
    task file (``file_ids``) defines (a DONE/CANCEL may name a RULE; a RETRY of one is noted), and lines whose task a later line with the same id replaces."""
    out: list = []
    total = 0
    table = state.tasks
    if state.commands:
        rules = {sid for sid, (_, kind, _) in state.standing.items() if kind == "rule"}
        unknown = set(state.commands).difference(table.ids).difference(file_ids).difference(rules)
        for tid in rules.intersection(state.commands).difference(table.ids):
            for mark in state.commands[tid]:
                if mark.verb == "retry":
                    total += 1
                    if len(out) < cap:
                        out.append((mark.line, f"RETRY: {tid} names a rule, which is never run (DONE: or "
                                               f"CANCEL: {tid} ends it); this line is ignored"))
        if unknown:
            candidates = None
            for tid in sorted(unknown, key=lambda t: state.commands[t][0].line):
                for mark in state.commands[tid]:
                    total += 1
                    if len(out) < cap:
                        if candidates is None:
                            candidates = [*table.ids, *file_ids, *sorted(rules)]
                        out.append((mark.line, f"{mark.verb.upper()}: {tid} names no task"
                                    f"{_did_you_mean(tid, candidates)} (this line is ignored)"))
    for tid, olds in islice(state.dup_lines.items(), 10 * cap) if state.dup_lines else ():
        i = table.find(tid) if len(out) < 2 * cap else None
        for old in olds:
            total += 1
            if i is not None and len(out) < 2 * cap:
                out.append((old, f"task {tid} is defined again on line {table.lines[i]}: the later line wins, "
                                 "this one is ignored"))
    if state.dup_lines and len(state.dup_lines) > 10 * cap:
        total += sum(map(len, islice(state.dup_lines.values(), 10 * cap, None)))
    out.sort()
    return out, total


