"""Syncing the fleet clone: a wake's pull before it reads and its push after it records, and `agentd sync`.

One sync: commit this host's worklog as it is (a person's lines in it too: never merge over them), fetch
the remote's branch (within ``fleet.timeout``), refuse a history the remote rewrote (the head agentd saw
last is not in the new one), merge (the worklogs with git's union driver), refuse to push a commit of this
host that changes another host's worklog (the push's net change, not each commit), push (never forced; a push that lost the race to another host
fetches, merges and pushes once more).  Never in the wake's way: every fault is a ``Synced`` with a
warning (the wake logs it, `agentd status` shows it), nothing is lost (this host's commits wait for a
later push) and the next sync tries again.
"""

from __future__ import annotations

import time

from agentd.config import worklogdir
from agentd.errors import FleetError
from agentd.escapes import safe
from agentd.fleet import hostfile, layout, state
from agentd.fleet.layout import FETCHED, SEEN
from agentd.fleet.repo import Repo
from agentd.recordtype import Record
from agentd.times import iso


class Synced(Record):
    """A sync's outcome.  ``kind`` names a fault (empty when it all went through): ``unreachable``,
    ``rejected`` (another host pushed first, twice), ``declined`` (the remote refused the push),
    ``rewritten``, ``conflict`` (in a file that is not a worklog), ``local-changes`` (git would not merge
    over a file changed meanwhile), ``foreign`` (the push would change another host's worklog or file),
    ``failed`` (anything else: the clone's config, a full disk)."""
    ok: bool = True
    warning: str = ""
    kind: str = ""
    committed: bool = False
    merged: bool = False
    pushed: bool = False
    unpushed: int = 0
    reached: bool = True  # False: the remote did not answer (a later sync in the same wake does not ask again)

    def warn(self, kind: str, text: str) -> None:
        self.ok, self.kind, self.warning = False, kind, text


def message(host: str, own: str, run_id: str | None, why: str) -> str:
    """A commit's message: it names the host and the run."""
    return f"agentd {host}: {own}" + (f" after run {run_id}" if run_id else "") + f" ({why})"


def sync(cfg, run_id: str | None = None, why: str = "agentd sync", unreached: str = "") -> Synced | None:
    """Sync the fleet clone; None when the worklog dir is no fleet clone.  ``unreached``: why the remote is
    not asked (it gave no answer earlier in this wake): commit only, that the warning."""
    if not worklogdir.is_fleet(cfg.worklog_dir):
        return None
    r = Repo(cfg)
    out = Synced()
    try:
        card = _host_file(cfg, why)
        _sync(r, out, run_id, why, unreached)
        if card:  # this host's file could not be written: the worklog synced all the same
            out.warn(out.kind or "failed", f"{out.warning}; {card}" if out.warning else card)
    except FleetError as e:
        out.warn("failed", str(e))
    except OSError as e:
        out.warn("failed", f"{getattr(e, 'filename', None) or cfg.worklog_dir}: {e.strerror or e}")
    _record(cfg, r, out)
    return out


def _sync(r: Repo, out: Synced, run_id: str | None, why: str, unreached: str) -> None:
    host = r.cfg.host
    layout.guard_attributes(r.dir)  # a clone made before the guard gets it before git checks anything out
    out.committed = hostfile.commit(r, message(host, r.own, run_id, why))  # the worklog and hosts/<host>.json
    if unreached:
        out.reached = False
        return out.warn("unreachable", unreached)
    for attempt in range(2):
        got = r.fetch()
        empty = not got.ok and got.rc is not None and "couldn't find remote ref" in got.err
        if not got.ok and not empty:
            out.reached = False
            url = layout.redacted_url(r.url())
            return out.warn("unreachable", f"cannot reach {url}: " + (
                f"no answer within {r.timeout:g} s" if got.rc is None else got.said())
                + "; nothing is lost: this host's commits wait, the next wake tries again")
        fetched = None if empty else r.ref(FETCHED)
        seen = r.ref(SEEN)
        if rewritten(r, seen, fetched):
            return out.warn("rewritten", f"the remote's history was rewritten: its branch {r.branch()} is now at "
                            f"{fetched[:12]}, which does not contain {seen[:12]}, the head agentd saw there before; "
                            "agentd merges and pushes nothing until a person looks (docs/fleet.md#faults)")
        if fetched:
            r.git("update-ref", SEEN, fetched)
            how, what = r.merge(fetched, message(host, "merge the fleet's worklogs", run_id, why),
                                ours=(hostfile.rel(host),))  # this host's own file is this host's to say
            out.merged |= how == "merged"
            if how == "conflict":
                return out.warn("conflict", "merging the remote's branch conflicts in " + ", ".join(what[:5])
                                + " (not a worklog): nothing was merged; merge it by hand in "
                                + f"{r.dir} (`git merge origin/{r.branch()}`), then the next sync pushes")
            if how == "refused":
                return out.warn("local-changes", f"git would not merge the remote's branch: {what[0]}; the next "
                                "sync tries again (a file of the fleet's in the way here: move it away first)")
        bad = r.foreign(fetched or seen)
        if bad:
            commit, path = bad[0]
            whose = "file" if path.startswith("hosts/") else "worklog"
            undo = (f"undo it by hand (`git revert {commit[:12]}`, the last commit here that changed it)" if commit
                    else f"undo it by hand (`git checkout origin/{r.branch()} -- {path}`, then commit)")
            return out.warn("foreign", f"this host's push would change {path}, another host's {whose}: agentd "
                            f"pushes only {r.own}, {hostfile.rel(host)} and {worklogdir.FLEET_WORKLOG}; {undo}; "
                            "nothing is pushed until then")
        if fetched is not None and r.ref("HEAD") == fetched:
            return
        pushed = r.push()
        if pushed.status in ("pushed", "up-to-date"):
            out.pushed = pushed.status == "pushed"
            return
        if pushed.status == "rejected" and attempt == 0:
            continue  # another host pushed since the fetch: fetch, merge and push once more
        if pushed.status == "unreachable":
            out.reached = False
        return out.warn(pushed.status, f"the push was {pushed.status}: {pushed.detail or 'no reason given'}; "
                        "nothing is lost: this host's commits wait, the next wake pushes them")


def _host_file(cfg, why: str) -> str:
    """Write ``hosts/<host>.json`` for this sync (a wake's sync says the wake); "" or why it could not be."""
    wake = {"at": iso(), "kind": why} if why != "agentd sync" else None
    try:
        hostfile.record(cfg, wake)
    except OSError as e:
        return f"{hostfile.path(cfg)} could not be written: {e.strerror or e}"
    return ""


def rewritten(r: Repo, seen: str | None, fetched: str | None) -> bool:
    """Whether the remote's new head leaves out the head agentd saw there before (a force-push, a rebase)."""
    return bool(fetched and seen and not r.is_ancestor(seen, fetched))


def _record(cfg, r: Repo, out: Synced) -> None:
    """Count what waits to be pushed and keep the record `agentd status` reads; a record that can't be
    written (a full or read-only state dir) adds to the warning, never raises."""
    now = time.time()
    before = state.read(cfg) or {}
    try:
        out.unpushed = r.ahead(r.ref(SEEN))
        url, head = layout.redacted_url(r.url()), r.ref("HEAD") or ""
    except (FleetError, OSError):
        url, head = "", ""
    record = {"at": now, "ok": out.ok, "warning": out.warning, "kind": out.kind, "unpushed": out.unpushed,
              "last_ok": now if out.ok else before.get("last_ok"), "remote": url, "head": head}
    try:
        cfg.ensure_state_dir()
        state.write(cfg, record)
    except OSError as e:
        extra = f"{state.path(cfg)} could not be written: {e.strerror or e}"
        out.warn(out.kind or "failed", f"{out.warning}; {extra}" if out.warning else extra)


def for_wake(cfg, log, run_id: str | None = None, before: Synced | None = None) -> Synced | None:
    """A wake's sync: before it reads (``run_id`` None) and after it records (``before``: the first one's
    outcome; a remote that gave no answer then is not asked again).  A fault is one warning in the log."""
    got = sync(cfg, run_id, "after a run" if run_id else "before a wake",
               unreached=before.warning if before is not None and not before.reached else "")
    if got is None:
        return None
    if not got.ok:
        log.warning("fleet sync", kind=got.kind, warning=got.warning, unpushed=got.unpushed)
        if before is None or before.ok:  # (said once a wake: the sync after the run meets the same fault)
            print(f"fleet: {safe(got.warning, 300)} (the wake goes on)")
    elif got.merged or got.pushed:
        log.info("fleet synced", merged=got.merged, pushed=got.pushed)
    return got
