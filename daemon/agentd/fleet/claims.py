"""Claiming a shared task of ``fleet_worklog.txt`` before running it, and its finding written back there
(docs/fleet.md#shared-directives).

A claim is one commit on top of the remote's head as just fetched, adding ``CLAIM: ID host=… run=…
until=…`` to the fleet worklog, pushed never forced: git takes it only while the remote's branch is still
that head (its compare-and-swap on the branch is the lock).  A push that lost the race leaves nothing
behind (the commit was never on HEAD): fetch and look again.  Only a claim that went through is merged
into the clone, and only then does the host run the task.
"""

from __future__ import annotations

import time

from agentd.errors import FleetError
from agentd.escapes import safe
from agentd.fleet.repo import FETCHED, FLEET_WORKLOG, SEEN, Repo, is_fleet
from agentd.queue import shared
from agentd.recordtype import Record
from agentd.times import iso
from agentd.worklog import entries
from agentd.worklog.index import Index
from agentd.worklog.parse import parse_bytes
from agentd.worklog.worklog import read

ATTEMPTS = 4  # lost races for one task before this wake gives it up
MAX_FLEET_BYTES = 64 * 2**20


class Claimed(Record):
    """A claim's outcome: ``won`` (run it), else ``why`` not (claimed by another, done, unreachable)."""
    won: bool
    why: str = ""
    claim: "object" = None


def claim(cfg, store, task, run_id: str, now: float | None = None) -> Claimed:
    """Claim ``task`` (a ``fleet_worklog.txt`` task) for ``run_id``: it runs only if this returns won."""
    if not is_fleet(cfg):
        return Claimed(False, "the worklog dir is no fleet clone")
    r = Repo(cfg)
    try:
        for _ in range(ATTEMPTS):
            got = r.fetch()
            if not got.ok:
                return Claimed(False, f"the fleet's remote gave no answer ({got.said()}): a shared task runs only "
                                      "once its claim is pushed")
            base = r.ref(FETCHED)
            data = r.show(base, FLEET_WORKLOG, MAX_FLEET_BYTES) or b""
            taken = taken_by(cfg, store, data, task.id, time.time() if now is None else now)
            if taken:
                return Claimed(False, taken)
            line = shared.Claim(task.id, cfg.host, run_id, until(cfg, task, now), 0)
            text = data + (b"" if not data or data.endswith(b"\n") else b"\n") + line.render().encode() + b"\n"
            commit = r.commit_on(base, FLEET_WORKLOG, text, f"agentd {cfg.host}: CLAIM {task.id} run {run_id}")
            pushed = _push(r, commit)
            if pushed.status == "pushed":
                r.git("update-ref", SEEN, commit, check=False)
                r.merge(commit, f"agentd {cfg.host}: merge the claim of {task.id}")
                return Claimed(True, claim=line)
            if pushed.status != "rejected":
                return Claimed(False, f"the claim's push was {pushed.status}: {pushed.detail or 'no reason given'}")
        return Claimed(False, f"lost the race to claim it {ATTEMPTS} times in a row")
    except (FleetError, OSError) as e:
        return Claimed(False, f"claiming failed: {e}")


def choose(cfg, store, log, run_id: str, choose_from):
    """The task this wake runs: ``choose_from(skip)``'s, where a shared task is the one only once this
    host's claim of it went through; a claim lost (another host's, or no answer) skips it: choose again."""
    lost: set = set()
    while True:
        task = choose_from(lost)
        if task is None or getattr(task, "source", "") != "fleet":
            return task
        got = claim(cfg, store, task, run_id)
        if got.won:
            log.info("claimed", task=task.id, claim=got.claim.render())
            return task
        log.info("not claimed", task=task.id, why=got.why)
        print(f"{safe(task.id)}: not claimed: {safe(got.why, 300)}")
        lost.add(task.id)
        if len(lost) >= 20:
            return None


def _push(r: Repo, commit: str):
    """The push of a claim (a seam: the lock's protection-off test replaces it)."""
    return r.push(commit)


def taken_by(cfg, store, data: bytes, tid: str, now: float) -> str:
    """Why ``tid`` can't be claimed in this version of the fleet worklog ("" when it can)."""
    state = parse_bytes(data)  # the remote's copy: parsed whole, with the parse's limits
    if tid not in state.tasks:
        return f"{FLEET_WORKLOG} on the remote no longer defines {tid}"
    done = shared.finished(state, tid)
    if done:
        return f"{done} in {FLEET_WORKLOG}"
    claims, _ = shared.claims_in(data)
    live = shared.live_claims(cfg, state, claims, [], store, now).get(tid)
    if live is not None:
        return f"claimed by {live.host} (run {live.run})"
    return ""


def until(cfg, task, now: float | None = None) -> str:
    """How long this host's claim holds: the task's time limit, twice over (``shared.bound``)."""
    limit = cfg.duration("run_timeout" if task.runner in ("agent", "cli_agent") else "command_timeout")
    return iso((time.time() if now is None else now) + shared.LEASE_FACTOR * limit)


def finding(cfg, log, task, run_id: str, outcome) -> None:
    """The run's finding appended to the fleet worklog under its claim (an entry naming the host), and
    committed: the wake's next sync pushes it.  A fault is a warning, never in the wake's way."""
    if getattr(task, "source", "") != "fleet" or not is_fleet(cfg):
        return
    body = (f"{safe(' '.join(outcome.summary.split()), 2000)}\n"
            f"host: {cfg.host} · full record there: agentd show {run_id}")
    seq = read(cfg.worklog_dir / FLEET_WORKLOG, Index(cfg.index_path)).state.max_seq + 1
    e = entries.Entry(seq, run_id, task.id, outcome.status, iso(), {"host": cfg.host}, body=body)
    try:
        p = cfg.worklog_dir / FLEET_WORKLOG
        with open(p, "ab") as f:
            f.write(e.render().encode("utf-8"))
        Repo(cfg).commit_paths([FLEET_WORKLOG], f"agentd {cfg.host}: {task.id}'s finding, run {run_id}")
    except (FleetError, OSError) as err:
        log.warning("fleet finding", task=task.id, warning=str(err))
