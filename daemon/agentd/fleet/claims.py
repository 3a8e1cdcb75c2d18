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

from agentd.config.worklogdir import FLEET_WORKLOG, is_fleet
from agentd.errors import FleetError
from agentd.escapes import safe
from agentd.fleet.layout import FETCHED, SEEN
from agentd.fleet.repo import Repo
from agentd.queue import shared
from agentd.recordtype import Record
from agentd.times import iso
from agentd.worklog import entries
from agentd.worklog.index import Index
from agentd.worklog.parse import parse_bytes
from agentd.worklog.worklog import read

ATTEMPTS = 4  # lost races for one task before this wake gives it up


class Claimed(Record):
    """A claim's outcome: ``won`` (run it), else ``why`` not (claimed by another, done, unreachable);
    ``base``: the remote's head it read (the next claim of the wake reads it again, no fetch), ``reached``:
    False when the remote gave no answer (the wake claims nothing more); ``elsewhere``: the fleet worklog
    itself says no (another host's live claim, the task done, cancelled or gone there, a file too large),
    not a fault a later wake may not meet."""
    won: bool
    why: str = ""
    claim: "object" = None
    base: str = ""
    reached: bool = True
    elsewhere: bool = False


def claim(cfg, store, task, run_id: str, now: float | None = None, base: str | None = None) -> Claimed:
    """Claim ``task`` (a ``fleet_worklog.txt`` task) for ``run_id``: it runs only if this returns won.
    ``base``: a head of the remote already fetched in this wake, read first instead of fetching (a stale
    one costs nothing but a rejected push: then it fetches)."""
    if not is_fleet(cfg.worklog_dir):
        return Claimed(False, "the worklog dir is no fleet clone")
    r = Repo(cfg)
    try:
        for _ in range(ATTEMPTS):
            if not base:
                got = r.fetch()
                if not got.ok:
                    return Claimed(False, f"the fleet's remote gave no answer ({got.said()}): a shared task runs "
                                          "only once its claim is pushed", reached=False)
                base = r.ref(FETCHED)
            data, big = _fleet_worklog(r, base)
            if big:
                return Claimed(False, big, base=base, elsewhere=True)
            taken = taken_by(cfg, store, data, task.id, time.time() if now is None else now)
            if taken:
                return Claimed(False, taken, base=base, elsewhere=True)
            line = shared.Claim(task.id, cfg.host, run_id, until(cfg, task, now), 0)
            text = data + (b"" if not data or data.endswith(b"\n") else b"\n") + line.render().encode() + b"\n"
            commit = r.commit_on(base, FLEET_WORKLOG, text, f"agentd {cfg.host}: CLAIM {task.id} run {run_id}")
            pushed = _push(r, commit)
            if pushed.status == "pushed":
                r.git("update-ref", SEEN, commit, check=False)
                if store is not None and not store.readonly:  # its lease runs from now here, even if killed soon
                    store.record_seen([(line.key(), time.time() if now is None else now, None)])
                how, what = r.merge(commit, f"agentd {cfg.host}: merge the claim of {task.id}")
                if how in ("merged", "up-to-date"):
                    return Claimed(True, claim=line, base=commit)
                return Claimed(False, f"its claim was pushed but could not be merged here ({how}: "
                                      f"{', '.join(what[:3]) or 'no reason given'}): the task is not run on this "
                                      "host; it opens again when the claim's lease ends", base=commit)
            if pushed.status != "rejected":
                return Claimed(False, f"the claim's push was {pushed.status}: {pushed.detail or 'no reason given'}",
                               base=base, reached=pushed.status != "unreachable")
            base = None  # the remote moved since: fetch, look again
        return Claimed(False, f"lost the race to claim it {ATTEMPTS} times in a row")
    except (FleetError, OSError) as e:
        return Claimed(False, f"claiming failed: {e}")


def _fleet_worklog(r: Repo, base: str) -> tuple[bytes, str]:
    """``fleet_worklog.txt`` at ``base`` whole, and "" ; or (b"", why) when it is larger than what agentd
    reads claims from (``shared.MAX_CLAIM_BYTES``): a claim never commits a cut copy of it."""
    limit = shared.MAX_CLAIM_BYTES
    size = r.git("cat-file", "-s", f"{base}:{FLEET_WORKLOG}", check=False)
    if size.ok and size.out.strip().isdigit() and int(size.out.strip()) > limit:
        return b"", shared.too_big(int(size.out.strip()))
    data = r.show(base, FLEET_WORKLOG, limit + 1) or b""
    if len(data) > limit:
        return b"", shared.too_big(len(data))
    return data, ""


def choose(cfg, store, log, run_id: str, choose_from, synced=None):
    """The task this wake runs: ``choose_from(skip)``'s, where a shared task is the one only once this
    host's claim of it went through; a claim lost (another host's, or no answer) skips it: choose again.
    ``synced``: the wake's first sync: a remote that gave no answer then is not asked again (every shared
    task is skipped, no fetch), one that answered is not fetched again before a claim (its head, as the
    sync saw it, is read; only a lost race fetches)."""
    lost: set = set()
    unreached = synced.warning if synced is not None and not synced.reached else ""
    base = None
    if synced is not None and synced.reached and is_fleet(cfg.worklog_dir):
        try:
            base = Repo(cfg).ref(SEEN)
        except FleetError:
            base = None
    while True:
        task = choose_from(lost)
        if task is None or getattr(task, "source", "") != "fleet":
            return task
        if unreached:
            got = Claimed(False, "the fleet's remote gave no answer this wake: a shared task runs only once its "
                                 "claim is pushed", reached=False)
        else:
            got = claim(cfg, store, task, run_id, base=base)
        if got.won:
            log.info("claimed", task=task.id, claim=got.claim.render())
            return task
        log.info("not claimed", task=task.id, why=got.why)
        print(f"{safe(task.id)}: not claimed: {safe(got.why, 300)}")
        lost.add(task.id)
        base = got.base or None
        if not got.reached:
            unreached = unreached or got.why
        if len(lost) >= 20:
            return None


def keep(cfg, store, task, run_id: str, synced=None) -> Claimed:
    """A run of a shared task that a later wake takes up (an agent run resumed, a command run again, a
    run whose answer came) goes on only under a claim of this host's that holds for the run now starting:
    the task is claimed again for ``run_id``, as any claim is (this host's own earlier claim takes nothing
    from anyone; another host's live one, or a finding that ended the task there, does).  ``synced``: the
    wake's first sync; a remote that gave no answer then is not asked again (``reached`` False: the
    caller asks ``holds`` whether this host's earlier claim still covers it)."""
    if not is_fleet(cfg.worklog_dir):
        return Claimed(True)
    if synced is not None and not synced.reached:
        return Claimed(False, f"the fleet's remote gave no answer this wake ({synced.warning or 'no reason given'})",
                       reached=False)
    base = None
    if synced is not None:
        try:
            base = Repo(cfg).ref(SEEN)
        except FleetError:
            base = None
    return claim(cfg, store, task, run_id, base=base)


def holds(cfg, store, task, now: float | None = None) -> str:
    """This host's claim of ``task`` as its clone last saw the fleet worklog, rendered, when it holds long
    enough for a run (a time limit of the task's runner, by this host's count) and no other host's live
    claim is there; else ""."""
    now = time.time() if now is None else now
    fleet = shared.read(cfg, store, now=now)
    c = fleet.live.get(task.id) if fleet is not None else None
    if c is None or c.host != cfg.host:
        return ""
    left = shared.expiry(c, cfg, store, now, task) - now
    return c.render() if left >= shared.lease_for(cfg, task) / shared.LEASE_FACTOR else ""


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
    if live is not None and live.host != cfg.host:  # this host's own earlier claim is no other host's
        return f"claimed by {live.host} (run {live.run})"
    return ""


def until(cfg, task, now: float | None = None) -> str:
    """How long this host's claim holds: the task's time limit, twice over; a Slurm task's from its
    ``slurm: {time: …}`` (``shared.lease_for``)."""
    return iso((time.time() if now is None else now) + shared.lease_for(cfg, task))


def finding(cfg, log, task, run_id: str, outcome) -> None:
    """The run's finding appended to the fleet worklog under its claim (an entry naming the host), and
    committed: the wake's next sync pushes it.  A fault is a warning, never in the wake's way."""
    if getattr(task, "source", "") != "fleet" or not is_fleet(cfg.worklog_dir):
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
