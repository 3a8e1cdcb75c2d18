"""The fleet's shared tasks: ``fleet_worklog.txt`` in a fleet clone's worklog dir, the tasks and directives
any host may take, and the ``CLAIM:`` lines that say which host took one (docs/fleet.md#shared-directives).

The file is a worklog: read with the same parser, cache and limits as this host's own (``worklog.read``),
so a hostile line there gets the error it would get here.  Its tasks join the queue as ``source="fleet"``
(``{hosts: [...]}`` limits who may take one).  A claim is ``CLAIM: ID host=H run=R until=T``; what counts:

- only well-formed lines, naming a task of the file and a host of the fleet (one with a worklog in the
  clone); the first live claim of a task in the file's line order wins (a claim is pushed only on top of a
  remote head that holds no live claim of the task: ``fleet/claims.py``);
- its lease is ``until`` less the time in its run id (``rYYYYMMDD-HHMMSS-…``: both the claimer's clock, so
  a host whose clock is wrong still writes a true length), at most ``LEASE_FACTOR`` × the longer of
  ``command_timeout`` and ``run_timeout`` (a forged ``until`` in 2099, or no time in the run id, gets
  that); it runs from when *this* host first saw the claim (the store's first sight, its own clock), so
  no host's wrong clock ends or stretches another's claim;
- a finding (an entry of the task) or a DONE/CANCEL line in the file after it ends it.

Pure reading: no git (``fleet/claims.py`` makes the claims).
"""

from __future__ import annotations

import os
import time

from agentd.config.worklogdir import FLEET_WORKLOG, WORKLOG_SUFFIX, is_fleet
from agentd.lazyre import lazy
from agentd.recordtype import Factory, Record
from agentd.statuses import DONE
from agentd.times import iso, parse
from agentd.worklog.index import Index
from agentd.worklog.linenotes import notes
from agentd.worklog.worklog import read as read_worklog

LEASE_FACTOR = 2  # a claim's lease: at most this many times the longest a run may take
SLURM_WAIT = 86400.0  # a Slurm task's claim: this long for its job to wait in Slurm's queue, on top of its time
MAX_SLURM_LEASE = 7 * 86400.0  # and never longer than this
MAX_CLAIM_BYTES = 32 * 2**20  # the largest file whose claims are read: over it, no task of it is taken
MAX_CLAIMS = 10_000
CLAIM_RE = lazy(r"CLAIM:[ \t]+(\S{1,80})[ \t]+host=(\S{1,64})[ \t]+run=(\S{1,120})[ \t]+until=(\S{1,40})[ \t]*")
HOST_RE = lazy(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RUN_TIME_RE = lazy(r"r(\d{8}-\d{6})-")
SLURM_TIME_RE = lazy(r"(?:(\d{1,4})-)?(\d{1,7})(?::(\d{1,2}))?(?::(\d{1,2}))?")


class Claim(Record):
    """One CLAIM line as written (``line``: its line in the file)."""
    task: str
    host: str
    run: str
    until: str
    line: int

    def render(self) -> str:
        return f"CLAIM: {self.task} host={self.host} run={self.run} until={self.until}"

    def key(self) -> str:
        """Its first sight's key: a claim renewed for the same run (a new ``until``) is a new claim."""
        return f"claim:{self.task}:{self.host}:{self.run}:{self.until}"

    def lease(self, bound: float) -> float:
        """How long it holds (seconds): ``until`` less the claimer's time in its run id, in [0, bound]."""
        until = parse(self.until)
        m = RUN_TIME_RE.match(self.run)
        at = parse(f"{m.group(1)[:4]}-{m.group(1)[4:6]}-{m.group(1)[6:8]}T{m.group(1)[9:11]}:{m.group(1)[11:13]}:"
                   f"{m.group(1)[13:15]}Z") if m else None
        if until is None:
            return 0.0
        if at is None:
            return bound
        return max(0.0, min(bound, until - at))


class Shared(Record):
    """What the fleet worklog says to this host: the tasks it may take (``tasks``), why others are held
    (``held``: id -> why: claimed by another host, done or cancelled there), the live claims (id -> Claim),
    and its problems as ``fleet_worklog.txt:LINE: message`` (the parse's errors, bad claims, id clashes)."""
    tasks: list = Factory(list)
    held: dict = Factory(dict)
    live: dict = Factory(dict)
    problems: list = Factory(list)
    state: "object" = None


def path(cfg):
    return cfg.worklog_dir / FLEET_WORKLOG


def fleet_hosts(cfg) -> set[str]:
    """The hosts of the fleet: those with a worklog in the clone (this one included)."""
    return {cfg.host} | hosts_in(cfg.worklog_dir)


def hosts_in(d) -> set[str]:
    """The hosts with a worklog in directory ``d``."""
    out = set()
    try:
        names = os.listdir(d)
    except OSError:
        return out
    for n in names:
        if n.endswith(WORKLOG_SUFFIX) and n != FLEET_WORKLOG and HOST_RE.fullmatch(n[:-len(WORKLOG_SUFFIX)]):
            out.add(n[:-len(WORKLOG_SUFFIX)])
    return out


def unknown_hosts(state, hosts: set) -> list[tuple[int, str]]:
    """(line, why) of each task whose ``hosts:`` names a host with no worklog in the fleet (a typo there
    would keep the task from every host, unseen)."""
    out = []
    table = state.tasks
    for tid in table.ids:
        t = table[tid]
        named = t.attrs.get("hosts")
        if isinstance(named, list) and (bad := [h for h in named if h not in hosts]):
            out.append((t.line, f"hosts: {', '.join(repr(str(h)[:64]) for h in bad[:5])} "
                                f"{'names no host' if len(bad) == 1 else 'name no hosts'} with a worklog in the fleet"
                                f" ({', '.join(sorted(hosts)[:10])}): no such host takes {tid}"))
    return out


def check_lines(path, state, data: bytes) -> list[tuple[int, str]]:
    """(line, why) of what only a fleet worklog can get wrong, for `agentd check` of ``path``: malformed
    CLAIM lines, claims naming no host of the fleet or no task of the file, ``hosts:`` naming no host."""
    hosts = hosts_in(path.parent)
    claims, out = claims_in(data)
    for c in claims:
        if c.host not in hosts:
            out.append((c.line, f"CLAIM names host {c.host!r}, which has no worklog in the fleet: it claims nothing"))
        elif c.task not in state.tasks:
            out.append((c.line, f"CLAIM names task {c.task!r}, which {FLEET_WORKLOG} does not define: it claims "
                                "nothing"))
    return out + unknown_hosts(state, hosts)


def bound(cfg, task=None) -> float:
    """The longest lease a claim of ``task`` gets: twice the longer of the time limits; a Slurm task's
    ``lease_for`` when longer."""
    base = LEASE_FACTOR * max(cfg.duration("command_timeout"), cfg.duration("run_timeout"))
    slurm = slurm_lease(task)
    return max(base, slurm) if slurm else base


def lease_for(cfg, task) -> float:
    """How long this host's claim of ``task`` holds (its ``until``): twice its runner's time limit; a task
    with ``slurm: {time: …}``: twice that time plus ``SLURM_WAIT`` for the queue, at most ``MAX_SLURM_LEASE``
    (its run parks on the Slurm job and renews nothing meanwhile)."""
    limit = cfg.duration("run_timeout" if task.runner in ("agent", "cli_agent") else "command_timeout")
    return max(LEASE_FACTOR * limit, slurm_lease(task))


def slurm_lease(task) -> float:
    """A Slurm task's lease from its ``slurm: {time: …}`` (0: no Slurm time)."""
    spec = (getattr(task, "attrs", None) or {}).get("slurm")
    secs = slurm_seconds(spec.get("time")) if isinstance(spec, dict) else None
    return min(MAX_SLURM_LEASE, LEASE_FACTOR * secs + SLURM_WAIT) if secs else 0.0


def slurm_seconds(text) -> float | None:
    """A Slurm time (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) in seconds; None if it is none."""
    m = SLURM_TIME_RE.fullmatch(str(text or "").strip())
    if m is None:
        return None
    days, a, b, c = (int(x) if x else None for x in m.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        return days * 86400.0 + a * 3600 + (b or 0) * 60 + (c or 0)
    if c is not None:  # HH:MM:SS
        return a * 3600.0 + b * 60 + c
    return a * 60.0 + (b or 0)  # minutes[:seconds]


def too_big(size: int) -> str:
    """Why no task of a ``fleet_worklog.txt`` of ``size`` bytes is taken."""
    return (f"{FLEET_WORKLOG} is {size / 2**20:.1f} MiB, over the {MAX_CLAIM_BYTES // 2**20} MiB agentd reads "
            "claims from: no host takes a task of it (a claim past that could go unseen; trim the file: move "
            "finished tasks and their findings out)")


def claims_in(data: bytes) -> tuple[list[Claim], list[tuple[int, str]]]:
    """The CLAIM lines of a fleet worklog's bytes, in line order, and (line, why) of the malformed ones.
    Lines inside agentd's entries are quoted (``> ``), so never read as claims."""
    out, bad = [], []
    for n, raw in enumerate(data[:MAX_CLAIM_BYTES].split(b"\n"), 1):
        if not raw.startswith(b"CLAIM"):
            continue
        text = raw.decode("utf-8", "replace").rstrip("\r")
        m = CLAIM_RE.fullmatch(text)
        if m is None or parse(m.group(4)) is None:
            bad.append((n, "a CLAIM line is `CLAIM: ID host=HOST run=RUN until=YYYY-MM-DDTHH:MM:SSZ`; "
                           "this one is not, so it claims nothing"))
        elif len(out) < MAX_CLAIMS:
            out.append(Claim(*m.groups(), line=n))
    return out, bad


def read(cfg, store=None, has_gpu: bool = True, local_ids=(), now: float | None = None) -> Shared | None:
    """The fleet worklog as this host's queue sees it; None when the worklog dir is no fleet clone or
    holds no ``fleet_worklog.txt``.  ``store``: first sights of claims are kept there (else: now)."""
    p = path(cfg)
    if not is_fleet(cfg.worklog_dir) or p.is_symlink() or not p.is_file():
        return None
    now = time.time() if now is None else now
    r = read_worklog(p, Index(cfg.index_path))
    out = Shared(state=r.state)
    out.problems += [f"{FLEET_WORKLOG}:{line}: {why}" for line, why in r.state.errors]
    big = ""
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_CLAIM_BYTES + 1)
    except OSError as e:
        out.problems.append(f"{FLEET_WORKLOG}: {e.strerror or e}")
        data = b""
    if len(data) > MAX_CLAIM_BYTES:  # a claim past the bytes read would go unseen: take no task of it
        big = too_big(os.path.getsize(p) if p.is_file() else len(data))
        out.problems.append(f"{FLEET_WORKLOG}: {big}")
    claims, bad = claims_in(data)
    out.problems += [f"{FLEET_WORKLOG}:{line}: {why}" for line, why in bad]
    out.live = live_claims(cfg, r.state, claims, out.problems, store, now)
    found, _ = notes(r.state)  # an id defined twice, a DONE naming no task: as the host's own worklog's
    out.problems += [f"{FLEET_WORKLOG}:{line}: {why}" for line, why in found]
    out.problems += [f"{FLEET_WORKLOG}:{line}: {why}" for line, why in unknown_hosts(r.state, fleet_hosts(cfg))]
    table = r.state.tasks
    for tid in table.ids:
        t = table[tid]
        hosts = t.attrs.get("hosts")
        if hosts and cfg.host not in hosts:
            continue
        if tid in local_ids:
            out.problems.append(f"{FLEET_WORKLOG}:{t.line}: id {tid} is also a task of {cfg.worklog_path.name}: "
                                "the queue takes this host's own; rename one of them")
            continue
        t.source = "fleet"
        why = finished(r.state, tid)
        if why == DONE:
            t.human_done = True
        elif why:
            out.held[tid] = why
        elif big:
            out.held[tid] = big
        c = out.live.get(tid)
        if c is not None and c.host != cfg.host and not t.human_done:
            out.held[tid] = (f"claimed by {c.host} (run {c.run}, {FLEET_WORKLOG}:{c.line}); "
                             f"open again if it writes no finding by {iso(expiry(c, cfg, store, now, t))}")
        out.tasks.append(t)
    out.problems.sort(key=_line_of)  # in line order, as the host's own worklog's
    return out


def _line_of(problem: str) -> int:
    """The line a ``fleet_worklog.txt:LINE: …`` problem names (0: the file as a whole)."""
    head = problem[len(FLEET_WORKLOG) + 1:].partition(":")[0]
    return int(head) if head.isdigit() else 0


def finished(state, tid: str) -> str | None:
    """"done" when the fleet worklog holds a done finding of ``tid`` or a DONE line; why it is held when
    cancelled there; None when it is open to the fleet."""
    marks = state.commands.get(tid) or []
    latest = state.latest.get(tid)
    if marks:
        verb = str(marks[-1].verb).lower()
        if latest is None or marks[-1].order > latest["seq"]:
            if verb == "done":
                return DONE
            if verb == "cancel":
                return f"cancelled in {FLEET_WORKLOG}"
    if latest is not None and latest["status"] == DONE:
        return DONE
    return None


def live_claims(cfg, state, claims: list[Claim], problems: list, store, now: float) -> dict:
    """task id -> its live claim: the first in line order of the valid, unexpired claims no finding
    ended, another host's before this host's own (an earlier claim of this host's, still live by its own
    count, never hides another host's: that host pushed its claim when, by its count, this host's had
    ended).  Claims that name no host of the fleet or no task of the file are problems, never claims."""
    hosts, tasks = fleet_hosts(cfg), state.tasks
    valid = []
    for c in claims:
        if c.host not in hosts:
            problems.append(f"{FLEET_WORKLOG}:{c.line}: CLAIM names host {c.host!r}, which has no worklog in the "
                            "fleet: it claims nothing")
        elif c.task not in tasks:
            problems.append(f"{FLEET_WORKLOG}:{c.line}: CLAIM names task {c.task!r}, which {FLEET_WORKLOG} does "
                            "not define: it claims nothing")
        else:
            valid.append(c)
    seen = _first_seen(store, valid, now)
    out: dict = {}
    for c in valid:
        if c.task in out and (out[c.task].host != cfg.host or c.host == cfg.host):
            continue
        ended = _ended(state, c)
        if not ended and now < seen.get(c.key(), now) + c.lease(bound(cfg, tasks[c.task])):
            out[c.task] = c
    return out


def _ended(state, c: Claim) -> bool:
    """Whether the claim's run wrote its finding in the file (a run that waits or was deferred keeps its
    claim, for its lease), or a DONE/CANCEL line there ends the task."""
    latest = state.latest.get(c.task)
    if latest is not None and latest["run"] == c.run and latest["status"] not in ("running", "waiting", "deferred"):
        return True
    return finished(state, c.task) is not None


def _first_seen(store, claims: list[Claim], now: float) -> dict:
    """When this host first saw each claim (its own clock), recording the new ones.  A claim seen before its
    key named its ``until`` (``legacy_key``) keeps that sight: the first line of its task, host and run does
    (a later one is a renewal, first seen now)."""
    if store is None or not claims:
        return {}
    keys = [c.key() for c in claims]
    seen = {k: v[0] for k, v in store.seen(keys).items()}
    missing = set(keys) - seen.keys()
    if not missing:
        return seen
    old = {k: v[0] for k, v in store.seen([legacy_key(c) for c in claims]).items()}
    if old:
        first: dict = {}
        for c in claims:
            first.setdefault(legacy_key(c), c.key())
        for lk, k in first.items():
            if k in missing and lk in old:
                seen[k] = old[lk]
    if not store.readonly:
        store.record_seen([(k, seen.get(k, now), None) for k in dict.fromkeys(keys) if k in missing])
    return seen


def legacy_key(c: Claim) -> str:
    """A claim's first-sight key as agentd kept it before a renewal (the same run, a new ``until``) could
    be a claim of its own."""
    return f"claim:{c.task}:{c.host}:{c.run}"


def expiry(c: Claim, cfg, store, now: float, task=None) -> float:
    """When ``c`` ends, by this host's count (its first sight, its own clock)."""
    seen = _first_seen(store, [c], now).get(c.key(), now)
    return seen + c.lease(bound(cfg, task))
