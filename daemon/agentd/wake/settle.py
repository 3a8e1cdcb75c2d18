"""Settling what the last wake left, before the queue is built.

Two things can be left over:

* entries the worklog lost (an editor saved an old buffer over the file): agentd's own
  copies are appended again (``restore``) once the file has been still for a few seconds (an
  editor that saves slowly in place is not done yet), up to ``store.MAX_RESTORES`` times each;
* runs a killed wake left ``running`` (``interrupted``): a run whose finding reached the
  worklog only has its runs row brought up to date; processes it left are stopped; a
  command or experiment is recorded as interrupted (and, unless that was its last allowed
  attempt, runs again as a new run before anything else); an agent run is resumed from
  its checkpoint, if its task is still open;
* runs parked as ``waiting`` (``waiting``): a person's APPROVE/DENY line is taken into the
  store, and a run whose answer or usage-limit reset has come is resumed from its
  checkpoint; a request nobody answered in time ends its run blocked; a run parked on a Slurm job
  has its job polled (``runners/slurm.py``, bounded: a wake never waits for a job): one that ended is
  collected as its run's resume, and one whose task a person closed or reopened is ``scancel``led.

Whatever settling appends is folded into the read it was given, so the queue is built
from that one read of the worklog.
"""

from __future__ import annotations

import os

from agentd import statuses
from agentd.agent import approvals
from agentd.escapes import safe
from agentd.fleet import claims
from agentd.recordtype import Factory, Record
from agentd.runners import slurm
from agentd.sandbox.procs import kill_orphan
from agentd.store import clock
from agentd.store import slurm as slurm_jobs
from agentd.store.clock import MAX_WAIT_S
from agentd.tasks.task import AGENT_KINDS
from agentd.times import parse
from agentd.wake.gating import disk_hold
from agentd.wake.recording import append_entry
from agentd.worklog import worklog
from agentd.workspace.rundir import RunDir, new_run_id


class Resume(Record):
    """A run a killed wake left, to take up before choosing anything else."""
    task: object  # task.Task
    run_id: str
    resumed: bool  # True: continue the agent run from its checkpoint; False: run it again as a new run
    collected: bool = False  # a Slurm job that ended: its output is collected whoever holds its task now


class Leftovers(Record):
    """What ``interrupted`` and ``waiting`` found: runs to take up, in the order they were started."""
    agent_run: tuple | None = None  # (task id, run id) of an agent run to resume, if its task is still open
    reruns: list = Factory(list)  # task ids of commands and experiments recorded as interrupted
    notes: list = Factory(list)  # what was done about processes a run left behind
    ready: list = Factory(list)  # (task id, run id) of waiting runs whose answer or reset has come
    expired: list = Factory(list)  # (task id, run id, request row) of approval requests nobody answered
    collect: list = Factory(list)  # (task id, run id) of runs parked on a Slurm job that ended
    on_slurm: list = Factory(list)  # slurm_jobs rows of runs whose job has not ended

    def task_ids(self) -> set[str]:
        """Tasks with a run to take up (for `wake --task`: a waiting task whose answer came may be named)."""
        return ({t for t, _ in self.ready} | ({self.agent_run[0]} if self.agent_run else set()) | set(self.reruns)
                | {t for t, _ in self.collect})

    def resume(self, cfg, store, view) -> Resume | None:
        """The run to take up now, decided against the queue (which counts the entries settling wrote)."""
        by_id = view.tasks
        for task_id, run_id, row in self.expired:
            t = by_id.get(task_id)
            if t is not None and t.status == statuses.WAITING:
                record_expired(cfg, store, run_id, task_id, row, view.read.state)
            else:  # a person closed or reopened the task meanwhile: that says it all
                store.update_run(run_id, status=statuses.CANCELLED,
                                 reason=f"its task was {t.status if t else 'removed'} while the run waited")
        for row in self.on_slurm:
            t = by_id.get(row["task_id"])
            if t is None or t.status != statuses.WAITING:  # a person closed or reopened its task: stop its job
                print(slurm.cancel(cfg, store, row, f"its task was {t.status if t else 'removed'} while its job ran"))
        held = agents_held(cfg, view) if self.agent_run or self.ready else None
        if held:
            print(f"agent runs wait to resume: {held}")
        if self.agent_run and not held:
            task_id, run_id = self.agent_run
            t = by_id.get(task_id)
            if t is not None and t.status in (statuses.INTERRUPTED, statuses.OPEN, statuses.RUNNING):
                return Resume(t, run_id, True)
            # its task was closed or removed meanwhile: nothing to resume
            record_interrupted(cfg, store, run_id, task_id, "", view.read.state)
        for task_id in self.reruns:
            t = by_id.get(task_id)
            if t is not None and t.status in (statuses.INTERRUPTED, statuses.OPEN):  # not blocked by its attempts
                return Resume(t, new_run_id(store), False)
        for task_id, run_id in self.collect:  # a Slurm job that ended: collected as its run's resume
            t = by_id.get(task_id)
            if t is not None and t.status == statuses.WAITING:
                return Resume(t, run_id, True, collected=True)
            store.update_run(run_id, status=statuses.CANCELLED,
                             reason=f"its task was {t.status if t else 'removed'} while its Slurm job ran")
        for task_id, run_id in [] if held else self.ready:
            t = by_id.get(task_id)
            if t is not None and t.status == statuses.WAITING:
                return Resume(t, run_id, True)
            # a person closed or reopened its task while it waited: the parked run is over
            store.update_run(run_id, status=statuses.CANCELLED,
                             reason=f"its task was {t.status if t else 'removed'} while the run waited")
        return None


def still_claimed(cfg, store, log, pick: Resume | None, synced, state) -> Resume | None:
    """``pick``, when it may go on: a run of a shared task (``fleet_worklog.txt``) taken up by a later wake
    goes on only under this host's claim, renewed for it (``claims.keep``): its lease may have ended while
    the wake was down or the run waited, and another host may hold the task now.  Held by another host (or
    ended there): the run is recorded interrupted, saying so, and the wake chooses again.  No answer from the
    remote, or a fault here: the run goes on while this host's earlier claim holds for a time limit more
    (``claims.holds``), else it is left for a later wake.  A Slurm job that ended is collected whoever holds
    its task now (its work was done)."""
    if pick is None or pick.collected or getattr(pick.task, "source", "") != "fleet":
        return pick
    got = claims.keep(cfg, store, pick.task, pick.run_id, synced)
    if got.won:
        if got.claim is not None:
            log.info("claim renewed", task=pick.task.id, claim=got.claim.render())
        return pick
    tid = pick.task.id
    if not got.elsewhere:  # no answer, or a fault here: the fleet worklog said no such thing
        held = claims.holds(cfg, store, pick.task)
        if held:
            log.warning("claim not renewed", task=tid, why=got.why, holds=held)
            return pick
        print(f"{safe(tid)}: run {pick.run_id} waits for a later wake: its claim could not be renewed "
              f"({safe(got.why, 300)}) and this host's earlier one does not hold long enough for it")
        return None
    print(f"{safe(tid)}: run {pick.run_id} not taken up: {safe(got.why, 300)}")
    log.info("not claimed", task=tid, why=got.why)
    if pick.resumed:  # a run of the store's: over here (a rerun's new run id has no row yet)
        why = f"not taken up: {got.why}"
        store.update_run(pick.run_id, status=statuses.INTERRUPTED, reason=why)
        _progress_interrupted(cfg, pick.run_id, why)
        state.add_entry(append_entry(cfg, store, pick.run_id, tid, statuses.INTERRUPTED,
                                     f"**interrupted** · {why} (run {pick.run_id})", state.max_seq))
    return None


def agents_held(cfg, view) -> str | None:
    """Why agent runs can't go on now, or None: the disk is full (they would fill it again), or what holds
    every agent task of the queue (``backends.agents_wait``: today's budget or the fleet's spent, a usage
    limit, the CLI's subscription window past agentd's share, no backend): a run taken up spends as a new
    one would."""
    return disk_hold(cfg) or (None if view.agent_backend else view.agent_reason or "no agent backend")


def settle(cfg, store, read, lost: list, now: float) -> Leftovers:
    """All of it, in order: deadlines re-based where the clock jumped, lost entries restored, killed runs
    settled, parked runs looked at."""
    with store.tx():
        clock.rebase(store.db)
    restore(cfg, store, lost, now)
    left = interrupted(cfg, store, read.state)
    waiting(cfg, store, read.state, left, now)
    return left


RESTORE_QUIET_S = 5.0  # how long the worklog must have been still before lost entries are appended again


def restore(cfg, store, lost: list, now: float) -> int:
    """Append again every entry of agentd's copy that the worklog has lost (``lost``: (run, seq) keys).

    Only into a file nobody is writing: one changed in the last ``RESTORE_QUIET_S`` seconds may be an
    editor's save half done (truncated, then written in pieces), which would write over a copy
    appended now, or leave it beside its own.  So a restore never races a save, and an entry gets
    one copy back each time a finished save dropped it, up to ``store.MAX_RESTORES`` times (a person
    who deletes agentd's entries on purpose sees them come back that often, then no more).  Until
    then the queue counts agentd's copy, so nothing runs twice."""
    due = store.restorable(lost) if lost else []  # those restored 3 times already stay in the store
    if not due:
        return 0
    try:
        still = now - os.stat(cfg.worklog_path).st_mtime
    except OSError:
        return 0
    if -60 < still < RESTORE_QUIET_S:  # (a time far in the future is a clock's doing, not a save's)
        print(f"{len(due)} agentd entr{'y is' if len(due) == 1 else 'ies are'} missing from {cfg.worklog_path}, "
              f"which changed {max(still, 0):.0f} s ago: restored once it has been still for "
              f"{RESTORE_QUIET_S:g} s (an editor may be saving it)")
        return 0
    n = 0
    for run_id, seq in sorted(due, key=lambda k: k[1]):
        text = store.entry_text(run_id, seq)
        if text is None:
            continue
        if " restored=1 " not in text:
            text = text.replace(" lines=", " restored=1 lines=", 1)
        worklog.append(cfg.worklog_path, text)
        store.mark_restored(run_id, seq)
        n += 1
    if n:
        print(f"restored {n} agentd entr{'y' if n == 1 else 'ies'} missing from {cfg.worklog_path}")
    return n


def interrupted(cfg, store, state) -> Leftovers:
    """Settle the runs killed wakes left ``running``, up to the first agent run (resumed first)."""
    left = Leftovers()
    for run in store.interrupted_runs(host=cfg.host):
        run_id, task_id = run["run_id"], run["task_id"]
        latest = state.latest.get(task_id) or {}
        if latest.get("run") == run_id and latest.get("status") not in (statuses.RUNNING, None):
            # the finding reached the worklog but the wake died before its runs row was updated
            store.update_run(run_id, status=latest["status"])
            continue
        job = slurm_jobs.of_run(store, run_id)
        if job is not None:  # killed after sbatch took the job: park the run on it, never submit it twice
            store.update_run(run_id, status=statuses.WAITING, reason=f"Slurm job {job['job_id']}")
            state.add_entry(append_entry(cfg, store, run_id, task_id, statuses.WAITING,
                                         f"**waiting** · submitted to Slurm as job {job['job_id']} (the wake that "
                                         "submitted it was killed before it could say so)", state.max_seq))
            continue
        if (RunDir(cfg, run_id).path / "job.sh").exists():  # killed around sbatch: its job is looked up by name
            name = slurm_jobs.job_name(task_id, run_id)
            slurm_jobs.add(store, run_id, slurm_jobs.UNKNOWN, task_id, cfg.host, note="the wake was killed at sbatch")
            store.update_run(run_id, status=statuses.WAITING, reason=f"Slurm job {name}: the wake was killed at sbatch")
            state.add_entry(append_entry(cfg, store, run_id, task_id, statuses.WAITING,
                                         f"**waiting** · submitted to Slurm? the wake was killed at sbatch: its job "
                                         f"is looked up by its name, {name}, and followed, or the run is recorded "
                                         "failed if Slurm has no such job", state.max_seq))
            continue
        orphan = kill_orphan(run_id)
        if orphan:
            left.notes.append(f"run {run_id}: {orphan}")
        if run["kind"] in AGENT_KINDS:
            left.agent_run = (task_id, run_id)
            break
        record_interrupted(cfg, store, run_id, task_id, orphan, state)
        left.reruns.append(task_id)
    for note in left.notes:
        print(note)
    return left


def waiting(cfg, store, state, left: Leftovers, now: float) -> None:
    """Parked runs: take people's APPROVE/DENY lines into the store; a run whose answer or usage reset
    has come is ready to resume; one whose request expired unanswered ends blocked (``resume`` decides,
    once the queue says whether a person closed its task meanwhile).  A run parked on a Slurm job has
    its job polled: ``collect`` when it ended, ``on_slurm`` while it runs."""
    on_slurm = {row["run_id"]: row for row in slurm_jobs.parked(store, cfg.host)}
    if on_slurm:
        ended = {row["run_id"] for row in slurm.poll(cfg, store, list(on_slurm.values()))}
        left.collect = [(row["task_id"], r) for r, row in on_slurm.items() if r in ended]
        left.on_slurm = [row for r, row in on_slurm.items() if r not in ended]
    for run in store.waiting_runs(host=cfg.host):
        run_id, task_id = run["run_id"], run["task_id"]
        if run_id in on_slurm:
            continue
        states = [approvals.settle(store, state.answers, row, now) for row in store.approvals(run_id)]
        if states and states[-1] == "expired":
            left.expired.append((task_id, run_id, store.approvals(run_id)[-1]))
        elif states and states[-1] == "answered":
            left.ready.append((task_id, run_id))
        elif not states:  # waiting for a usage limit to reset
            reset = parse(run["defer_until"])  # (re-based: see clock.rebase)
            if reset is None or now >= reset or reset > now + MAX_WAIT_S:
                left.ready.append((task_id, run_id))


def record_expired(cfg, store, run_id: str, task_id: str, row: dict, state) -> None:
    """An approval request nobody answered in time: its run ends blocked, saying what it asked."""
    reason = f"approval request {row['id']} expired unanswered at {row['expires_at']}"
    store.update_run(run_id, status=statuses.BLOCKED, reason=reason)
    state.add_entry(append_entry(cfg, store, run_id, task_id, statuses.BLOCKED,
                                 f"**blocked** · {reason}; it asked for {approvals.describe(row)}\n"
                                 f"write RETRY: {task_id} to run the task again", state.max_seq))


def record_interrupted(cfg, store, run_id: str, task_id: str, orphan: str | None, state) -> None:
    """The run's row, progress.json and an "interrupted" entry (folded into ``state``)."""
    store.update_run(run_id, status=statuses.INTERRUPTED, reason="the wake was killed while it ran")
    _progress_interrupted(cfg, run_id)
    e = append_entry(cfg, store, run_id, task_id, statuses.INTERRUPTED,
                     f"**interrupted** · the wake running this was killed (run {run_id})"
                     + (f"; {orphan}" if orphan else ""), state.max_seq)
    state.add_entry(e)


def _progress_interrupted(cfg, run_id: str, why: str = "") -> None:
    """The run's progress.json, left saying "running" at some step, says what happened instead."""
    rd = RunDir(cfg, run_id)
    progress = rd.read()
    if progress is not None:
        was = progress.get("current_phase")
        rd.progress("interrupted", status=statuses.FAILED,
                    notes=why or (f"the wake was killed during {was!r}" if was else "the wake was killed"))
