"""Approval requests: an agent asks a person, through the worklog, for what its sandbox denies.

The agent's ``request_approval`` tool takes ``kind`` (``network``: its shell may reach the
network; ``write``: a path outside the workspace becomes writable; ``command``: a command runs
once outside the sandbox, as the person would run it), ``what`` and ``why``.  The run stops as
``waiting``, its checkpoint kept, and its entry says what is asked and how to answer: a line
``APPROVE: <id>`` or ``DENY: <id> <reason>`` in the worklog (``agentd approve ID`` and
``agentd deny ID REASON`` write the same lines).  The next wake resumes the run from its
checkpoint with the answer; an approval widens the sandbox for that run only.  A request nobody
answers within ``approval_expiry`` ends the run ``blocked``.  While a run waits it makes no
model call, and other tasks run.
"""

from __future__ import annotations

from agentd.times import iso, parse

KINDS = ("network", "write", "command")


def request(cfg, store, run_id: str, task_id: str, call_id: str, args: dict, now: float | None = None) -> dict:
    """Record the request; returns its row (``id`` is what a person answers)."""
    import secrets
    import time

    now = time.time() if now is None else now
    row = {"id": "ap-" + secrets.token_hex(3), "run_id": run_id, "task_id": task_id, "call_id": call_id,
           "kind": args["kind"], "what": args.get("what") or "", "why": args.get("why") or "",
           "asked_at": iso(now), "expires_at": iso(now + cfg.duration("approval_expiry"))}
    store.add_approval(**row)
    return row


def describe(row: dict) -> str:
    what = {"network": "network access for its shell", "write": f"write access to {row['what']}",
            "command": f"to run, outside its sandbox: {row['what']}"}.get(row["kind"], row["what"])
    return f"{row['id']}: {what}"


def entry_lines(row: dict) -> list[str]:
    """What the "waiting" entry says: what is asked, why, and how to answer."""
    return [f"asks for approval {describe(row)}",
            f"why: {row['why'] or '(no reason given)'}",
            f"to answer, add a line to this worklog: APPROVE: {row['id']}   or   DENY: {row['id']} <reason>",
            f"(or run `agentd approve {row['id']}` / `agentd deny {row['id']} REASON`); "
            f"unanswered, it expires at {row['expires_at']}"]


def check_args(args: dict) -> str | None:
    """The model's mistake in a request_approval call, or None."""
    if args.get("kind") not in KINDS:
        return f"request_approval: kind must be one of {', '.join(KINDS)}"
    if args["kind"] in ("write", "command") and not str(args.get("what") or "").strip():
        return f"request_approval: `what` must name the {'path' if args['kind'] == 'write' else 'command'}"
    if args["kind"] == "write" and not str(args["what"]).startswith("/"):
        return "request_approval: a path to write must be absolute"
    return None


def settle(store, answers: dict, row: dict, now: float) -> str | None:
    """Take a person's answer from the worklog (``State.answers``) into the store; then the request's
    state: "answered", "expired", or None while it waits."""
    if row["answer"] is None and row["id"] in answers:
        verb, reason, _line = answers[row["id"]]
        store.answer_approval(row["id"], verb, reason)
        row = store.approval(row["id"])
    if row["answer"] is not None:
        return "answered"
    expires = parse(row["expires_at"])
    return "expired" if expires is not None and now >= expires else None


def grants(store, run_id: str) -> tuple[bool, list[str]]:
    """What the run's approved requests allow: (network, extra writable paths)."""
    import os

    rows = [r for r in store.approvals(run_id) if r["answer"] == "approve"]
    return (any(r["kind"] == "network" for r in rows),
            [r["what"] for r in rows if r["kind"] == "write" and os.path.lexists(r["what"])])


def result_text(row: dict) -> str:
    """What the model is told, as the result of its request_approval call."""
    import os

    if row["answer"] == "approve":
        writable = (f"{row['what']} is writable now" if os.path.lexists(row["what"]) else
                    f"{row['what']} does not exist, so nothing was made writable: ask for a directory that exists")
        grant = {"network": "your shell can reach the network now", "write": writable,
                 "command": "agentd ran it outside the sandbox; its output follows"}[row["kind"]]
        return f"approved by a person at {row['answered_at']}: {grant}"
    return f"denied by a person at {row['answered_at']}: {row['reason'] or '(no reason given)'}"


def answered_line(verb: str, approval_id: str, reason: str = "") -> str:
    """The worklog line ``agentd approve``/``deny`` appends."""
    return f"{verb.upper()}: {approval_id}" + (f" {' '.join(reason.split())}" if reason else "") + "\n"



def why_waiting(store, host: str | None, answers: dict | None = None) -> dict[str, str]:
    """For each task with a parked run: what it waits for, and how to answer (for queue and status).
    ``answers``: the worklog's APPROVE/DENY lines a wake has not taken in yet."""
    out = {}
    for run in store.waiting_runs(host=host):
        pending = store.approvals(run["run_id"], pending=True)
        if pending and pending[-1]["id"] in (answers or {}):
            verb, _, line = answers[pending[-1]["id"]]
            out[run["task_id"]] = (f"{pending[-1]['id']} answered {verb.upper()} on line {line} of the worklog: "
                                   "the next wake resumes its run")
        elif pending:
            row = pending[-1]
            out[run["task_id"]] = (f"waiting for a person: {describe(row)} (write APPROVE: {row['id']} or "
                                   f"DENY: {row['id']} REASON; expires {row['expires_at']})")
        elif store.approvals(run["run_id"]):
            out[run["task_id"]] = "answered: the next wake resumes its run"
        else:
            out[run["task_id"]] = f"waiting for usage reset at {run['defer_until']} (run {run['run_id']})"
    return out
