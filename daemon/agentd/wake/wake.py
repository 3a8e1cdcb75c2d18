"""One wake, top to bottom: lock, reserve, health, settle, load, resume or choose, run, record.

Each step is a call into its own module; this file only sequences them.  The worklog
is read once: settling folds what it appends into that read, and the queue is built from it.
"""

from __future__ import annotations

import time
from itertools import islice

from agentd import runners, statuses
from agentd.errors import EX_FAILED, EX_OK
from agentd.escapes import safe
from agentd.fleet import claims
from agentd.fleet import sync as fleet
from agentd.platform import health, logs
from agentd.queue import queue
from agentd.store.store import Store
from agentd.wake import gating, reserve, settle
from agentd.wake.lock import wake_lock, wake_running
from agentd.wake.recording import recording
from agentd.worklog import standing
from agentd.worklog.worklog import check_writable, read_with_lost
from agentd.workspace.rundir import new_run_id


def wake(cfg, now: bool = False, dry_run: bool = False, task_id: str | None = None) -> int:
    if dry_run:
        return _dry_run(cfg, now, task_id)
    cfg.ensure_state_dir()
    with wake_lock(cfg):
        kept = reserve.at_wake(cfg)  # before agentd writes anything: a full disk gets the reserve's room
        log = logs.setup(cfg=cfg)
        if kept == reserve.FREED:
            log.warning("disk full: agentd freed its reserve to record", reserve=str(reserve.path(cfg)))
        snap = health.snapshot([cfg.worklog_dir, cfg.workspace, cfg.state_dir])
        if not cfg.worklog_path.exists():
            print(f"nothing to do: no worklog at {cfg.worklog_path} (`agentd init` makes one)")
            return EX_OK
        check_writable(cfg.worklog_path)  # (read-only: nothing is recorded, no run left that never started)
        synced = fleet.for_wake(cfg, log)  # a fleet clone: commit, pull, push; a fault is a warning, never in the way
        store = Store(cfg.store_path)
        read, lost = read_with_lost(cfg, store)
        if task_id:
            queue.known(cfg, read, task_id)  # an unknown --task is a usage error before anything is written
        leftovers = settle.settle(cfg, store, read, lost, time.time())
        view = queue.load(cfg, store, has_gpu=health.has_gpu(snap), in_wake=True, read_and_lost=(read, []))
        _warn_unreadable(log, view)
        if task_id and task_id not in leftovers.task_ids():
            gating.choose(view.tasks, gating.Gate(), task_id)  # one that can't run now: before a run
        pick = leftovers.resume(cfg, store, view)
        pick = settle.still_claimed(cfg, store, log, pick, synced, read.state)  # a shared task's: renew its claim
        if pick is None:
            gate = gating.check(cfg, snap, forced=now)
            run_id = new_run_id(store)  # a task of fleet_worklog.txt runs only once its claim is pushed
            chooser = _chooser(view, gate, task_id)  # a remote the sync did not reach is not asked to claim
            task = None if gate.skip else claims.choose(cfg, store, log, run_id, chooser, synced)
            if not gate.skip:
                store.set_passovers(queue.update_passovers(view.tasks, task, store.passovers()))
            for tid, why in gate.passed[:3]:
                log.info("passed over", task=tid, why=why)
            if task is None:
                line = gate.skip or gating.nothing_line(view.tasks, gate)
                print(f"nothing to do: {safe(line)}")
                logs.summary(log, status="skipped" if gate.skip else "idle", reason=line)
                return EX_OK
            pick = settle.Resume(task, run_id, False)
        logs.bind(run_id=pick.run_id)
        log.info("run started", task=pick.task.id, kind=pick.task.kind, why=pick.task.why, resumed=pick.resumed)
        with recording(cfg, store, pick.task, pick.run_id, snap, resumed=pick.resumed, floor=read.state.max_seq,
                       rules=standing.in_force(read.state, skip=pick.task.id)) as rec:
            rec.outcome = runners.run(rec.job)
        o = rec.outcome
        claims.finding(cfg, log, pick.task, pick.run_id, o)  # a shared task's finding, in fleet_worklog.txt
        fleet.for_wake(cfg, log, pick.run_id, synced)  # the run's entries committed and pushed
        logs.summary(log, task=pick.task.id, status=o.status, duration_s=rec.duration,
                     tokens=o.input_tokens + o.output_tokens, cost_usd=o.cost_usd)
        print(f"{safe(pick.task.id)}: {o.status} — {safe(' '.join(o.summary.split()), 300)}")
        print(f"run {pick.run_id}: {rec.run_dir.path}")
        return EX_FAILED if o.status == statuses.FAILED else EX_OK


def _chooser(view, gate, task_id: str | None):
    """``gating.choose`` leaving out the shared tasks whose claim this wake lost (``claims.choose``)."""
    def choose(skip: set):
        if task_id in skip:
            return None
        tasks = (t for t in view.tasks if t.id not in skip) if skip else view.tasks
        return gating.choose(tasks, gate, task_id, view.history)
    return choose


def _warn_unreadable(log, view) -> None:
    state = view.read.state
    if state.error_count or view.problems:
        log.warning("unreadable lines", count=state.error_count + len(view.problems),
                    first=(state.errors[:1] or view.problems[:1]), hint="agentd queue lists them")


def _dry_run(cfg, now: bool, task_id: str | None) -> int:
    """What the wake would do and why.  Takes no lock, runs and appends nothing, spends nothing;
    like `agentd queue` it refreshes agentd's parse cache and first-seen times."""
    snap = health.snapshot([cfg.worklog_dir, cfg.workspace, cfg.state_dir])
    if not cfg.worklog_path.exists():
        print(f"dry run: no worklog at {cfg.worklog_path} (`agentd init` makes one)")
        return EX_OK
    running_now = wake_running(cfg)
    view = queue.load(cfg, has_gpu=health.has_gpu(snap), wake_running=running_now)
    print("dry run: nothing is run, appended or spent")
    if running_now:
        running = [t for t in view.tasks.dynamic if t.status == statuses.RUNNING]  # plain tasks never run
        print("a wake is running now" + (f" ({safe(running[0].id)})" if running else "")
              + "; a wake started now would exit 75")
        return EX_OK
    print("health: " + ", ".join(health.summary_lines(snap)))
    gate = gating.check(cfg, snap, forced=now)
    if gate.skip:
        print(f"would skip: {safe(gate.skip)}")
        return EX_OK
    task = gating.choose(view.tasks, gate, task_id, view.history)
    for tid, why in gate.passed[:3]:
        print(f"passed over: {safe(tid)}: {safe(why)}")
    if task is None:
        print(f"would do nothing: {safe(gating.nothing_line(view.tasks, gate))}")
        return EX_OK
    print(f"would run: {safe(task.id)} ({task.kind}, {task.runner} runner): {safe(task.title)}")
    print(f"because: {safe(task.why)}")
    others = list(islice((t for t in view.tasks if t.eligible and t.id != task.id), 3))
    for t in others:
        print(f"  next in line: {safe(t.id)} score {t.score:.2f}: {safe(t.title)}")
    return EX_OK
