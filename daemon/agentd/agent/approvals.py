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

What a person approves is what is done (docs/security.md#approvals):

* ids carry 64 random bits, and an answer counts only when it stands below the request's waiting
  entry in the worklog (``counts``): a line written before the request existed answers nothing;
* a ``write`` is bound to the real path the person was shown (``bound_path``): resolved when asked,
  refused at once if it lies in or passes through a place an agent can write (``agent_writable``) or
  reaches a hidden secret through a link, and resolved again when bound (``grants``);
* a ``network`` request names hosts (``what``: ``pypi.org files.pythonhosted.org``, checked like the
  ``network`` attr; approved, they join the run's egress allowlist) or, ``what`` empty, the whole network;
* an approved ``command`` runs in a fresh empty directory, or in the one the answer names
  (``APPROVE: <id> in <dir>``, refused if an agent can write there);
* ``what`` is shown whole, its runs of blanks marked (``shown``), its controls escaped where printed.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path

from agentd.config.config import read_env_file
from agentd.config.schema import _network
from agentd.escapes import safe
from agentd.redact import LLM_KEYS, scrubbed_env
from agentd.sandbox import sandbox
from agentd.times import iso, parse
from agentd.workspace.worktrees import records

KINDS = ("network", "write", "command")
ID_BYTES = 8  # 64 random bits: an id can't be guessed, nor drawn again by chance
MAX_WHAT = 2000  # characters of a request's ``what``: it is always shown whole


def new_id() -> str:
    return "ap-" + secrets.token_hex(ID_BYTES)


def request(cfg, store, run_id: str, task_id: str, call_id: str, args: dict, now: float | None = None,
            what: str | None = None) -> dict:
    """Record the request; returns its row (``id`` is what a person answers).  ``what``: the resolved
    path of a ``write`` (what the person is shown and what is bound)."""
    now = time.time() if now is None else now
    row = {"id": new_id(), "run_id": run_id, "task_id": task_id, "call_id": call_id,
           "kind": args["kind"], "what": what if what is not None else args.get("what") or "",
           "why": args.get("why") or "", "asked_at": iso(now),
           "expires_at": iso(now + cfg.duration("approval_expiry"))}
    store.add_approval(**row)
    return row


def shown(text: str) -> str:
    """A request's ``what`` as a person reads it: whole, in backquotes, made visible by the one escaping
    function with its spaces mode (``escapes.safe(spaces=True)``): controls, bidi and zero-width
    characters escaped, and each run of 4 or more spaces written ``\\x20{N}`` so no padding pushes the
    rest out of sight.  Escaping is idempotent, so the views that escape it again show the same."""
    return f"`{safe(text, spaces=True)}`"


def network_hosts(what: str) -> tuple[list[str] | None, str | None]:
    """The hosts a ``network`` request's ``what`` names (separated by blanks or commas; checked like the
    ``network`` attr), and None; ``[]`` for an empty ``what``: the whole network; or None and why not."""
    names = str(what or "").replace(",", " ").split()
    if not names:
        return [], None
    hosts, why = _network(names)
    return (hosts, None) if why is None else (None, why)


def describe(row: dict) -> str:
    network = "network access for its shell"
    if row["kind"] == "network" and str(row["what"] or "").strip():
        network += f", through agentd's proxy, to these hosts and their subdomains only: {shown(row['what'])}"
    what = {"network": network, "write": f"write access to {shown(row['what'])}",
            "command": f"to run, outside its sandbox: {shown(row['what'])}"}.get(row["kind"], shown(row["what"]))
    if row["kind"] == "command":
        what += f" (in {shown(row['dir'])})" if row.get("dir") else " (in a new empty directory)"
    return f"{row['id']}: {what}"


def entry_lines(row: dict) -> list[str]:
    """What the "waiting" entry says: what is asked, why, and how to answer."""
    return [f"asks for approval {describe(row)}",
            f"why: {row['why'] or '(no reason given)'}",
            f"to answer, add a line to this worklog: APPROVE: {row['id']}   or   DENY: {row['id']} <reason>",
            f"(or run `agentd approve {row['id']}` / `agentd deny {row['id']} REASON`); "
            f"unanswered, it expires at {row['expires_at']}"] + (
        [f"it runs in a new empty directory; to run it in one of yours: APPROVE: {row['id']} in /abs/dir"]
        if row["kind"] == "command" else [])


def check_args(args: dict) -> str | None:
    """The model's mistake in a request_approval call, or None."""
    if args.get("kind") not in KINDS:
        return f"request_approval: kind must be one of {', '.join(KINDS)}"
    if args["kind"] in ("write", "command") and not str(args.get("what") or "").strip():
        return f"request_approval: `what` must name the {'path' if args['kind'] == 'write' else 'command'}"
    if args["kind"] == "write" and not str(args["what"]).startswith("/"):
        return "request_approval: a path to write must be absolute"
    if args["kind"] == "network" and (why := network_hosts(args.get("what") or "")[1]):
        return ("request_approval: for kind network, `what` is host names separated by spaces "
                f"(`pypi.org files.pythonhosted.org`), or empty for the whole network: `what` {why}")
    if len(str(args.get("what") or "")) > MAX_WHAT:
        return f"request_approval: `what` may have at most {MAX_WHAT} characters (a person reads it whole)"
    return None


def counts(store, row: dict, answer) -> bool:
    """Whether a worklog answer (``State.answers``'s value) answers the request ``row``: only one that
    stands below the waiting entry that showed the request to a person (its order, the highest seq
    above it plus 0.5, is past that entry's seq)."""
    seq = store.asked_in(row["run_id"], row["id"])
    return seq is not None and answer[3] > seq


def answer_to(store, answers: dict, row: dict):
    """The worklog's answer to ``row`` that counts, or None."""
    answer = answers.get(row["id"])
    return answer if answer is not None and counts(store, row, answer) else None


def settle(store, answers: dict, row: dict, now: float) -> str | None:
    """Take a person's answer from the worklog (``State.answers``) into the store; then the request's
    state: "answered", "expired", or None while it waits."""
    if row["answer"] is None and (answer := answer_to(store, answers, row)) is not None:
        verb, reason, _line, _order, where = answer
        store.answer_approval(row["id"], verb, reason, where if verb == "approve" else None)
        row = store.approval(row["id"])
    if row["answer"] is not None:
        return "answered"
    expires = parse(row["expires_at"])
    return "expired" if expires is not None and now >= expires else None


def grants(cfg, store, run_id: str, workspace) -> tuple[bool | list[str], list[str], dict[str, str]]:
    """What the run's approved requests allow: (network, extra writable paths, {id: why a write
    approval binds nothing}).  ``network`` is True (a request with an empty ``what``: the whole
    network), the hosts the approved requests named, or False.  A path is bound only if it still
    resolves to the real path the person approved, through no place an agent can write."""
    rows = [r for r in store.approvals(run_id) if r["answer"] == "approve"]
    paths, refused = [], {}
    for r in rows:
        if r["kind"] != "write" or not os.path.lexists(r["what"]):
            continue
        real, why = bound_path(cfg, store, workspace, r["what"], own=r["what"])
        if why is None and real != r["what"]:
            why = f"{r['what']} now resolves to {real}, not the path a person approved"
        if why is None:
            paths.append(real)
        else:
            refused[r["id"]] = why
    named = [network_hosts(r["what"])[0] for r in rows if r["kind"] == "network"]
    if any(not h for h in named):  # empty (or, asked before hosts could be named, not hosts): the network
        return True, paths, refused
    return list(dict.fromkeys(h for hosts in named for h in hosts)) or False, paths, refused


def result_text(row: dict, refused: str | None = None) -> str:
    """What the model is told, as the result of its request_approval call (``refused``: why an
    approved write binds nothing)."""
    if row["answer"] == "approve":
        writable = (f"{row['what']} is writable now" if os.path.lexists(row["what"]) else
                    f"{row['what']} does not exist, so nothing was made writable: ask for a directory that exists")
        if refused:
            writable = f"nothing was made writable: {refused}"
        hosts = network_hosts(row["what"])[0] if row["kind"] == "network" else None
        reach = f"{', '.join(hosts)} (and their subdomains), through agentd's proxy" if hosts else "the network"
        grant = {"network": f"your shell can reach {reach} now", "write": writable,
                 "command": "agentd ran it outside the sandbox; its output follows"}[row["kind"]]
        return f"approved by a person at {row['answered_at']}: {grant}"
    return f"denied by a person at {row['answered_at']}: {row['reason'] or '(no reason given)'}"


def answered_line(verb: str, approval_id: str, reason: str = "", where: str = "") -> str:
    """The worklog line ``agentd approve [--dir DIR]``/``deny`` appends."""
    if where:
        return f"APPROVE: {approval_id} in {where}\n"
    return f"{verb.upper()}: {approval_id}" + (f" {' '.join(reason.split())}" if reason else "") + "\n"


# -- where and how an approved command runs --------------------------------------------
def empty_dir(cfg) -> str:
    """A new empty directory for an approved command (in the state dir, which no sandbox shows): never
    one where an agent could have left code (a ``.git/config`` with ``core.fsmonitor``, a ``Makefile``)."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix="approved-", dir=cfg.state_dir)


def command_env(cfg) -> dict[str, str]:
    """An approved command's environment: agentd's, without a secret-looking name, an LLM key, or any
    name the env file sets."""
    drop = set(LLM_KEYS) | set(read_env_file(cfg.config_dir / "env"))
    return {k: v for k, v in scrubbed_env(cfg.env).items() if k not in drop}


# -- places an agent can write ---------------------------------------------------------
def agent_writable(cfg, store, workspace) -> list:
    """Every place an agent could have written: the workspaces, every path a person ever approved
    for writing, and the CLI agents' own login dirs.  (Its ``/tmp`` is its own; the host's, like
    every directory anyone may write, is checked by ``_walk``: a link there is refused.)"""
    home = sandbox._home(cfg)
    places = [Path(os_real(p)) for p in (workspace, cfg.workspace, *(home / rel for rels in sandbox.CLI_OWN.values()
                                                                      for rel in rels)) if p]
    # (approved paths as approved: resolved already, and one that became a link since is no place)
    places += [Path(r["what"]) for r in store.approvals() if r["kind"] == "write" and r["answer"] == "approve"]
    return list(dict.fromkeys(places))


def os_real(p) -> str:
    return os.path.realpath(os.path.expanduser(str(p)))


def _walk(path: str, unsafe: list, links: list) -> str:
    """``path`` resolved one component at a time (each link followed likewise); raises ValueError
    when a component lies in a place of ``unsafe``, where an agent could have made or swapped it, or
    is a link in a directory anyone can write (``/tmp``)."""
    cur = "/"
    for name in path.split("/"):
        if name in ("", "."):
            continue
        if name == "..":
            cur = os.path.dirname(cur)
            continue
        if inside := next((u for u in unsafe if Path(cur) == u or u in Path(cur).parents), None):
            raise ValueError(f"{os.path.join(cur, name)} lies in {inside}, which an agent can write")
        nxt = os.path.join(cur, name)
        if os.path.islink(nxt):
            if os.stat(cur).st_mode & 0o002:
                raise ValueError(f"{nxt} is a link in {cur}, which anyone can write")
            links.append(nxt)
            if len(links) > 40:
                raise ValueError(f"{path}: too many symbolic links")
            target = os.readlink(nxt)
            cur = _walk(target if target.startswith("/") else os.path.join(cur, target), unsafe, links)
        else:
            cur = nxt
    return cur


def bound_path(cfg, store, workspace, what: str, own: str | None = None) -> tuple[str | None, str | None]:
    """The real path a ``write`` of ``what`` binds, and None; or None and why it can't be asked for
    or bound: it lies in or passes through a place an agent can write (``own``, the path being
    bound, excepted), or it is (or is inside) a hidden secret reached other than by its own name."""
    unsafe = [u for u in agent_writable(cfg, store, workspace) if str(u) != own]
    links: list = []
    try:
        real = _walk(what, unsafe, links)
    except ValueError as e:
        return None, str(e)
    if inside := next((u for u in unsafe if Path(real) == u or u in Path(real).parents), None):
        return None, f"{real} lies in {inside}, which an agent can write (a path in the workspace is writable already)"
    for rec in (r for r in records(cfg) if not r.get("removed_at")):  # a `repo:` task's repository: agentd runs git there
        for repo in (Path(os_real(rec["repo"])), Path(os_real(rec["common_dir"]))):
            if Path(real) == repo or repo in Path(real).parents or Path(real) in repo.parents:
                return None, f"{real} covers {rec['repo']}, the repository task {rec['task']} works on: agentd runs git there"
    for h in sandbox.policy_for(cfg, {}, workspace).hidden:
        if Path(real) != h and h in Path(real).parents:
            return None, f"{real} lies in {h}, which the sandbox hides: ask for {h} itself, by that name"
        if Path(real) == h and os.path.normpath(what) != real:
            return None, f"{what} leads to {h}, which the sandbox hides: ask for it by its own name"
    return real, None



def why_waiting(store, host: str | None, answers: dict | None = None) -> dict[str, str]:
    """For each task with a parked run: what it waits for, and how to answer (for queue and status).
    ``answers``: the worklog's APPROVE/DENY lines a wake has not taken in yet."""
    out = {}
    for run in store.waiting_runs(host=host):
        pending = store.approvals(run["run_id"], pending=True)
        if pending and (answer := answer_to(store, answers or {}, pending[-1])) is not None:
            verb, _, line, *_ = answer
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
