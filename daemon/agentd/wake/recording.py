"""Recording a run: its "started" and finding entries, its runs row, its run directory.

``recording`` pairs the start and the finish of a run, so a finish can't be skipped::

    with recording(cfg, store, task, run_id, snap, resumed=False, floor=max_seq) as rec:
        rec.outcome = runners.run(rec.job)

On entry: the manifest, progress.json, the runs row and the "started" entry.  On exit: the
run's metrics kept and its ``expect:`` gates decided (``results.judge``: a done run that fails one
is failed for QC), the finding entry, the runs row, progress.json, a backend hold and the notification.
An exception from agentd's own code is recorded as ``failed`` (traceback.txt in the run
directory); anything that stops the wake before an outcome (Ctrl-C) as ``interrupted``.
Every text is redacted before it is written anywhere.

A full disk does not stop the record: each write that fails for it is tried again after agentd's
reserve is freed (``reserve``), a run that agentd could not record for it ends ``failed`` with the
cause (``diskuse``), and so does an agent run that leaves the workspace's disk (nearly) full.
"""

from __future__ import annotations

import os
import time
import traceback
from contextlib import contextmanager

from agentd import statuses
from agentd.agent.backends import key_fingerprint
from agentd.config.provenance import sandbox_off_by
from agentd.errors import WorkspaceError
from agentd.escapes import safe
from agentd.platform import notify
from agentd.platform.systemd import schedule_wake
from agentd.redact import redact
from agentd.statuses import Cause
from agentd.tasks.job import Job, Outcome
from agentd.times import now_iso
from agentd.wake import diskuse, reserve, results
from agentd.worklog import entries, standing, worklog
from agentd.workspace import worktrees
from agentd.workspace.rundir import RunDir


def append_entry(cfg, store, run_id: str, task_id: str, status: str, body: str, floor: int = 0,
                 **extra) -> entries.Entry:
    """Write one entry: agentd's copy first, then the worklog.  Returns the entry as written."""
    seq = store.next_seq(floor)
    e = entries.Entry(seq, run_id, task_id, status, now_iso(), {k: v for k, v in extra.items() if v},
                      body=redact(body, cfg.env))
    text = e.render()
    reserve.release_if_low(cfg)  # save_entry records a write it could not make instead of raising
    store.save_entry(run_id, seq, task_id, status, text, worklog=str(cfg.worklog_path))
    reserve.retry(cfg, worklog.append, cfg.worklog_path, text)
    return e


class Recording:
    """One run between its start and its finish; ``outcome`` is set by the caller."""

    def __init__(self, cfg, store, task, run_id: str, snap: dict, rules: list = ()):
        self.cfg, self.store, self.task, self.run_id, self.snap = cfg, store, task, run_id, snap
        self.run_dir = RunDir(cfg, run_id)
        cfg.env["AGENTD_RUN_ID"] = run_id  # every process the run starts carries it (see procs.kill_orphan)
        self.t0 = time.monotonic()
        self.duration = 0.0
        self.outcome: Outcome | None = None
        self.job = Job(cfg, store, run_id, task, snap, self.run_dir.path, lambda phase: self.run_dir.progress(phase))
        self.job.rules = list(rules) if task.runner == "agent" else []  # the rules in force it is given

    def _room(self, fn, *args, **kw):
        """One write of the record; again after freeing agentd's reserve when the disk was full."""
        return reserve.retry(self.cfg, fn, *args, **kw)

    def start(self, resumed: bool, floor: int) -> None:
        t, cfg = self.task, self.cfg
        self.job.resume = resumed
        reserve.release_if_low(cfg)
        if resumed:
            self._room(self.run_dir.progress, "resume", notes="resuming after an interrupted wake")
        else:
            self._room(self.run_dir.write_manifest, cfg, self.run_id, t, self.snap, workspace=self._where(),
                       rules=[r.id for r in self.job.rules] if t.runner == "agent" else None)
            self._room(self.run_dir.progress, "start", notes=f"{t.kind} task {t.id}")
            self._room(self.store.start_run, run_id=self.run_id, task_id=t.id, kind=t.kind, title=t.title,
                       status=statuses.RUNNING, host=cfg.host, started_at=now_iso(), run_dir=str(self.run_dir.path))
        how = {"command": f"command `{t.attrs.get('run')}`", "experiment": f"experiment {t.title}",
               "agent": "the LLM agent"}[t.runner]
        body = (f"**{'resumed' if resumed else 'started'}** · {t.kind} `{t.id}` · {how}\n{t.title}\n"
                f"why this one: {t.why}\nrun directory: {self.run_dir.path}") + standing.ids_line(self.job.rules) \
            + self._sandbox_note()
        append_entry(cfg, self.store, self.run_id, t.id, statuses.RUNNING, body, floor)

    def _where(self):
        """Where the run works, for its manifest: the agent task's own workspace (or worktree), a
        command's cwd (None when it can't run there: the runner says why)."""
        if self.task.runner == "agent":
            return worktrees.planned(self.cfg, self.task, self.run_id)
        if self.task.runner == "command":
            try:
                return worktrees.command_cwd(self.cfg, self.task, self.store)
            except WorkspaceError:
                return None
        return None

    def failed_internally(self) -> Outcome:
        """agentd's own bug: keep the traceback in the run directory, record the run as failed."""
        self._room((self.run_dir.path / "traceback.txt").write_text, traceback.format_exc(), encoding="utf-8")
        e = __import__("sys").exc_info()[1]
        return Outcome(statuses.FAILED, f"agentd error: {type(e).__name__}: {e}",
                       reason="internal error; see traceback.txt in the run directory")

    def disk_full(self, e: BaseException) -> Outcome:
        """agentd could not write the run's record for a full disk: the run ends failed, with the cause."""
        return self.disk_verdict(Outcome(statuses.FAILED, "the disk filled during the run: agentd could not write "
                                         f"its record ({safe(str(e), 300)})"),
                                 always=True)

    def disk_verdict(self, o: Outcome, always: bool = False) -> Outcome:
        """An agent run that leaves the workspace's disk (nearly) full is failed, and says what fills it
        (``always``: say what fills the state dir's disk, whatever the run)."""
        if not always and self.task.runner != "agent":
            return o
        full = [x for x in diskuse.low(self.cfg) if always or "workspace" in x.names]
        if not full:
            if always:
                o.reason, o.cause = "the disk is full", Cause.DISK_FULL
            return o
        text = full[0].lines()
        o.reason, o.cause = text[0], Cause.DISK_FULL
        o.lines = [*o.lines, *(f"disk: {x}" for x in text)]
        if o.status == statuses.DONE:
            o.status = statuses.FAILED
        return o

    def finish(self, o: Outcome) -> None:
        """Record the outcome everywhere; every text is redacted first (worklog, store, stdout, notify)."""
        env, t = self.cfg.env, self.task
        o.summary = redact(o.summary, env)
        o.lines = [redact(x, env) for x in o.lines]
        o.reason = redact(o.reason, env) if o.reason else o.reason
        o.next_step = redact(o.next_step, env) if o.next_step else o.next_step
        self.duration = o.duration_s if o.duration_s is not None else time.monotonic() - self.t0
        if o.status == statuses.WAITING and o.defer_until:  # a usage limit: wake at its reset
            o.lines.append(schedule_wake(self.cfg, o.defer_until, self.run_id))
        reserve.release_if_low(self.cfg)
        append_entry(self.cfg, self.store, self.run_id, t.id, o.status, "\n".join(self._body(o)),
                     until=o.defer_until if o.status in (statuses.DEFERRED, statuses.WAITING) else None)
        self._room(self.store.update_run, self.run_id, status=o.status, duration_s=round(self.duration, 3),
                   exit_code=o.exit_code, summary=o.summary, reason=o.reason,
                   defer_until=o.defer_until, provider=o.provider)
        if o.input_tokens or o.output_tokens or o.cost_usd:
            run = self.store.run(self.run_id)
            if run and not run["input_tokens"] and not run["output_tokens"]:  # the runner did not charge it
                self._room(self.store.add_usage, self.run_id, o.input_tokens, o.output_tokens, o.cost_usd)
        if t.runner == "agent" and o.provider:
            self._room(self._hold_backend, o)
        if o.status == statuses.WAITING:  # parked: the run goes on after the answer or the reset
            self._room(self.run_dir.progress, "waiting", status=statuses.BLOCKED, notes=o.summary[:500])
        else:
            final = {statuses.DEFERRED: statuses.BLOCKED, statuses.INTERRUPTED: statuses.FAILED}.get(o.status, o.status)
            self._room(self.run_dir.progress, "finished", status=final, notes=o.summary[:500], complete="finished")
        # Under systemd a failed wake exits 1 and OnFailure= runs `agentd notify`; a blocked
        # run exits 0, so the wake tells the notify command itself.
        under_systemd = bool(env.get("INVOCATION_ID"))
        asks = o.status == statuses.WAITING and o.cause == Cause.APPROVAL
        if o.status == statuses.BLOCKED or asks or (o.status == statuses.FAILED and not under_systemd):
            notify.notify(self.cfg, f"agentd {self.cfg.host}: {t.id} {o.status}: {o.summary}", limit=0 if asks else 300)

    def _body(self, o: Outcome) -> list[str]:
        t = self.task
        head = f"**{o.status}** · {t.kind} `{t.id}` · {self.duration:.1f} s"
        if o.exit_code is not None:
            head += f" · exit {o.exit_code}"
        if o.input_tokens or o.output_tokens:
            head += f" · {o.input_tokens + o.output_tokens} tokens · ${o.cost_usd:.4f}"
        body = [head, t.title, o.summary, *o.lines]
        if o.defer_until:
            body.append(f"{'waiting' if o.status == statuses.WAITING else 'deferred'} until {o.defer_until}")
        if o.next_step:
            body.append(f"next: {o.next_step}")
        body.append(f"full record: agentd show {self.run_id} · {self.run_dir.path}")
        return body + ([self._sandbox_note().strip()] if self._sandbox_note() else [])

    def _sandbox_note(self) -> str:
        """Every agent run's entries say so when the sandbox is off (docs/security.md)."""
        return sandbox_off_note(self.cfg) if self.task.runner == "agent" else ""

    def _hold_backend(self, o: Outcome) -> None:
        """A refused key or a rate limit holds back every agent task, not just this one."""
        reason = o.reason or ""
        if o.status == statuses.BLOCKED and o.cause == Cause.AUTH:
            self.store.set_hold(o.provider, "auth", reason[:200], fingerprint=key_fingerprint(self.cfg, o.provider))
        elif o.status in (statuses.DEFERRED, statuses.WAITING) and o.defer_until and \
                o.cause in (Cause.RATE_LIMIT, Cause.USAGE_LIMIT):
            # (a spent daily budget holds agent tasks back by itself: see backends.spent)
            self.store.set_hold(o.provider, "deferred", reason[:200], until=o.defer_until)
        elif o.status == statuses.DONE:
            self.store.clear_hold(o.provider)


def sandbox_off_note(cfg) -> str:
    """The line an agent run's entries end with when the sandbox is off ("" when it is on)."""
    by = sandbox_off_by(cfg)
    return f"\nsandbox: OFF ({by}): the agent's tools ran unconfined" if by else ""


@contextmanager
def recording(cfg, store, task, run_id: str, snap: dict, *, resumed: bool = False, floor: int = 0,
              rules: list = ()):
    """``rules``: the rules in force (``worklog.standing``) an agent run is given and its record names."""
    rec = Recording(cfg, store, task, run_id, snap, rules)
    rec.start(resumed, floor)
    try:
        yield rec
        rec.outcome = rec.disk_verdict(rec.outcome) if rec.outcome else rec.outcome
        rec.outcome = results.judge(rec, rec.outcome)  # its metrics kept, its expect: gates decided
    except Exception as e:
        if reserve.full_error(e):  # the disk, not a bug: free the reserve and say what fills the disk
            reserve.release(cfg)
            rec.outcome = rec.disk_full(e)
        else:
            rec.outcome = rec.failed_internally()
        if os.environ.get("AGENTD_DEBUG"):
            raise
    finally:
        if rec.outcome is None:  # stopped before the run gave an outcome (Ctrl-C, SystemExit)
            rec.outcome = Outcome(statuses.INTERRUPTED, "agentd was stopped before the run ended")
        rec.finish(rec.outcome)
