"""Text renderings of queue, status, runs and show: what a person reads in a terminal."""

from __future__ import annotations

from agentd.lazyre import lazy


_UNSAFE = lazy("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def safe(text: str, limit: int = 0) -> str:
    """Escape control characters so worklog text can't drive the terminal."""
    text = _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}",
                       str(text))
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def queue_text(view, show_all: bool = False) -> list[str]:
    out = []
    r = view.read
    tasks = view.tasks if show_all else [t for t in view.tasks if t.status not in ("done", "cancelled")]
    hidden = len(view.tasks) - len(tasks)
    n = len(view.tasks)
    out.append(f"worklog: {r.path}  ({n} task{'s' if n != 1 else ''}, {r.state.entry_count} agentd entries)")
    if not tasks:
        out.append("nothing queued." + (f" ({hidden} done or cancelled; --all shows them)" if hidden else ""))
    else:
        out.append(f"{'':2}{'ID':<14} {'KIND':<10} {'STATUS':<11} {'SCORE':>6}  TITLE")
    for i, t in enumerate(tasks):
        mark = "▶" if i == 0 and t.eligible else "·" if t.eligible else "✗"
        kind = "directive!" if t.kind == "directive" and t.priority == "critical" else t.kind
        out.append(f"{mark:<2}{safe(t.id, 14):<14} {kind:<10} {t.status:<11} {t.score:>6.2f}  {safe(t.title, 70)}")
        out.append(f"{'':18}{'why: ' if t.eligible else 'not now: '}{safe(t.why, 200)}")
    if hidden and tasks:
        out.append(f"({hidden} done or cancelled tasks hidden; --all shows them)")
    errs = r.state.errors
    if r.state.error_count:
        out.append(f"could not read {r.state.error_count} line(s) of {r.path.name}:")
        for line, msg in errs[:50]:
            out.append(f"  line {line}: {safe(msg, 200)}")
        if r.state.error_count > 50:
            out.append(f"  … and {r.state.error_count - 50} more (agentd queue --json lists up to 500)")
    if r.state.torn:
        out.append(f"{r.state.torn} torn agentd entr{'y' if r.state.torn == 1 else 'ies'} ignored "
                   f"(cut short by a crash or an editor; the next wake restores agentd's copy)")
    if view.lost:
        out.append(f"{view.lost} agentd entr{'y is' if view.lost == 1 else 'ies are'} missing from {r.path.name} "
                   "(an editor saved over them?); counted from agentd's copy, and the next wake appends "
                   f"{'it' if view.lost == 1 else 'them'} again")
    for p in view.problems:
        out.append(f"task file: {safe(p, 300)}")
    if view.agent_backend is None and any(t.runner == "agent" for t in tasks):
        out.append(f"agent tasks wait: {safe(view.agent_reason, 300)} (docs/agent.md)")
    return out


def queue_json(view) -> dict:
    r = view.read
    return {"worklog": str(r.path), "exists": r.exists,
            "tasks": [t.to_json() for t in view.tasks],
            "unreadable": [{"line": line, "message": msg} for line, msg in r.state.errors],
            "unreadable_count": r.state.error_count, "torn_entries": r.state.torn, "lost_entries": view.lost,
            "task_file_problems": view.problems, "agent_backend": view.agent_backend, "gpu": view.has_gpu}


RUN_COLS = ("run_id", "task_id", "kind", "status", "started_at", "duration_s", "exit_code", "input_tokens",
            "output_tokens", "cost_usd", "provider")


def runs_text(runs: list[dict]) -> list[str]:
    if not runs:
        return ["no runs yet."]
    out = [f"{'RUN':<24} {'TASK':<14} {'KIND':<10} {'STATUS':<11} {'STARTED':<20} {'SECS':>7} {'EXIT':>4} "
           f"{'TOK IN':>8} {'TOK OUT':>8} {'USD':>7} PROVIDER"]
    for r in runs:
        dur = f"{r['duration_s']:.1f}" if r["duration_s"] is not None else "-"
        ex = "-" if r["exit_code"] is None else str(r["exit_code"])
        out.append(f"{r['run_id']:<24} {safe(r['task_id'], 14):<14} {r['kind']:<10} {r['status']:<11} "
                   f"{r['started_at']:<20} {dur:>7} {ex:>4} {r['input_tokens']:>8} {r['output_tokens']:>8} "
                   f"{r['cost_usd']:>7.4f} {r['provider'] or '-'}")
    return out
