"""One wake, top to bottom: lock, health, read, resume or choose, run, record.

Each step is a call into its own module; this file only sequences them.
"""

from __future__ import annotations


from agentd import gating, health, queue, records, recorder
from agentd.errors import EX_FAILED, EX_OK
from agentd.lock import wake_lock
from agentd.store import Store


def wake(cfg, now: bool = False, dry_run: bool = False, task_id: str | None = None) -> int:
    if dry_run:
        return _dry_run(cfg, now, task_id)
    from agentd import logs

    cfg.ensure_state_dir()
    with wake_lock(cfg):
        log = logs.setup(cfg=cfg)
        snap = health.snapshot([cfg.worklog_dir, cfg.workspace, cfg.state_dir])
        if not cfg.worklog_path.exists():
            print(f"nothing to do: no worklog at {cfg.worklog_path} (`agentd init` makes one)")
            return EX_OK
        store = Store(cfg.store_path)
        view = queue.load(cfg, store, has_gpu=health.has_gpu(snap), in_wake=True)
        if task_id:
            gating.choose(view.tasks, gating.Gate(), task_id)  # a bad --task is a usage error before any write
        if view.read.state.error_count or view.problems:
            log.warning("unreadable lines", count=view.read.state.error_count + len(view.problems),
                        first=(view.read.state.errors[:1] or view.problems[:1]), hint="agentd queue lists them")
        if recorder.restore_missing(cfg, store, view.read):
            view = queue.load(cfg, store, has_gpu=health.has_gpu(snap), in_wake=True)  # restored entries count
        recorded: list = []
        left = recorder.interrupted(cfg, store, view, recorded)  # (task, run id, resume it?) a killed wake left
        if recorded and not left:
            view = queue.load(cfg, store, has_gpu=health.has_gpu(snap), in_wake=True)  # those entries count
        resumed = bool(left and left[2])
        if left:
            task, run_id, _ = left
        else:
            gate = gating.check(cfg, snap, forced=now)
            if gate.skip:
                print(f"nothing to do: {gate.skip}")
                logs.summary(log, status="skipped", reason=gate.skip)
                return EX_OK
            task = gating.choose(view.tasks, gate, task_id)
            store.set_passovers(queue.update_passovers(view.tasks, task, store.passovers()))
            if task is None:
                line = gating.nothing_line(view.tasks, gate)
                print(f"nothing to do: {line}")
                logs.summary(log, status="idle", reason=line)
                return EX_OK
            run_id = records.new_run_id()
        logs.bind(run_id=run_id)
        rec = recorder.Recorder(cfg, store, run_id, task, snap, view)
        rec.start(resumed=resumed)
        log.info("run started", task=task.id, kind=task.kind, why=task.why, resumed=resumed)
        outcome = rec.execute()
        rec.finish(outcome)
        logs.summary(log, task=task.id, status=outcome.status, duration_s=rec.duration,
                     tokens=outcome.input_tokens + outcome.output_tokens, cost_usd=outcome.cost_usd)
        from agentd.views import safe

        print(f"{task.id}: {outcome.status} — {safe(' '.join(outcome.summary.split()), 300)}")
        print(f"run {run_id}: {rec.run_dir.path}")
        return EX_FAILED if outcome.status == "failed" else EX_OK


def _dry_run(cfg, now: bool, task_id: str | None) -> int:
    """What the wake would do and why; takes no lock, writes nothing, spends nothing."""
    snap = health.snapshot([cfg.worklog_dir, cfg.workspace, cfg.state_dir])
    if not cfg.worklog_path.exists():
        print(f"dry run: no worklog at {cfg.worklog_path} (`agentd init` makes one)")
        return EX_OK
    view = queue.load(cfg, has_gpu=health.has_gpu(snap))
    print("dry run: nothing is run, written or spent")
    from agentd.lock import wake_running

    if wake_running(cfg):
        running = [t for t in view.tasks if t.status == "running"]
        print("a wake is running now" + (f" ({running[0].id})" if running else "")
              + "; a wake started now would exit 75")
        return EX_OK
    print("health: " + ", ".join(health.summary_lines(snap)))
    gate = gating.check(cfg, snap, forced=now)
    if gate.skip:
        print(f"would skip: {gate.skip}")
        return EX_OK
    task = gating.choose(view.tasks, gate, task_id)
    if task is None:
        print(f"would do nothing: {gating.nothing_line(view.tasks, gate)}")
        return EX_OK
    print(f"would run: {task.id} ({task.kind}, {task.runner} runner): {task.title}")
    print(f"because: {task.why}")
    others = [t for t in view.tasks if t.eligible and t is not task][:3]
    for t in others:
        print(f"  next in line: {t.id} score {t.score:.2f}: {t.title}")
    return EX_OK
