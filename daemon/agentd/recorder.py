"""Recording a run: the worklog entries, the runs row, the run directory.

``Recorder`` is the part of a wake between choosing a task and exiting:
the "started" entry, the run, the finding, the records and the notification.
"""

from __future__ import annotations

import json

import time

from agentd import entries, records, worklog
from agentd.redact import redact
from agentd.runners import Job, Outcome
from agentd.runners import run as run_task


def append_entry(cfg, store, run_id: str, task_id: str, status: str, body: str, floor: int = 0,
                 **extra) -> int:
    """Write one entry: agentd's copy first, then the worklog.  Returns its seq."""
    seq = store.next_seq(floor)
    e = entries.Entry(seq, run_id, task_id, status, records.now_iso(), redact(body, cfg.env),
                      {k: v for k, v in extra.items() if v})
    text = e.render()
    store.save_entry(run_id, seq, task_id, status, text, worklog=str(cfg.worklog_path))
    worklog.append(cfg.worklog_path, text)
    return seq


def restore_missing(cfg, store, read) -> int:
    """Append again every entry of agentd's copy that the worklog has lost."""
    from agentd.index import Index

    if not read.exists:
        return 0
    rows = store.entries(worklog=str(cfg.worklog_path))
    missing = set(Index(cfg.index_path).missing(cfg.worklog_path, [(r["run_id"], r["seq"]) for r in rows]))
    n = 0
    for row in rows:
        if (row["run_id"], row["seq"]) not in missing:
            continue
        text = row["text"].replace(" lines=", " restored=1 lines=", 1) if " restored=1 " not in row["text"] \
            else row["text"]
        worklog.append(cfg.worklog_path, text)
        store.mark_restored(row["run_id"], row["seq"])
        n += 1
    if n:
        print(f"restored {n} agentd entr{'y' if n == 1 else 'ies'} missing from {cfg.worklog_path}")
    return n


def interrupted(cfg, store, view, recorded: list | None = None):
    """What a killed wake left behind: (task, run id, True) to resume an agent run where it
    stopped, (task, a new run id, False) to run a command or experiment again, or None.

    Each run it records as interrupted goes into ``recorded``: the view is then out of date.
    A command or experiment whose interruption was its last allowed attempt is not run again.
    """
    from agentd.runners.command import kill_orphan

    by_id = {t.id: t for t in view.tasks}
    for run in store.interrupted_runs(host=cfg.host):
        task = by_id.get(run["task_id"])
        latest = view.read.state.latest.get(run["task_id"]) or {}
        if latest.get("run") == run["run_id"] and latest.get("status") not in ("running", None):
            # the finding reached the worklog but the wake died before its runs row was updated
            store.update_run(run["run_id"], status=latest["status"])
            continue
        orphan = kill_orphan(run["run_id"])
        if task is not None and task.runner == "agent" and task.status in ("interrupted", "open", "running"):
            if orphan:
                print(f"run {run['run_id']}: {orphan}")
            return task, run["run_id"], True
        store.update_run(run["run_id"], status="interrupted", reason="the wake was killed while it ran")
        _progress_interrupted(cfg, run["run_id"])
        append_entry(cfg, store, run["run_id"], run["task_id"], "interrupted",
                     f"**interrupted** · the wake running this was killed (run {run['run_id']})"
                     + (f"; {orphan}" if orphan else ""), view.read.state.max_seq)
        if recorded is not None:
            recorded.append(run["run_id"])
        if (task is not None and task.status in ("interrupted", "open") and task.runner != "agent"
                and task.attempts + 1 < cfg["max_attempts"]):
            task.attempts += 1  # the interrupted entry just written counts as an attempt
            return task, records.new_run_id(), False  # run it again, as a new run, before anything else
    return None


def _progress_interrupted(cfg, run_id: str) -> None:
    """A killed wake left the run's progress.json saying "running" at some step: say what happened."""
    rd = records.RunDir(cfg, run_id)
    try:
        was = json.loads(rd.progress_path.read_text(encoding="utf-8")).get("current_phase")
    except (OSError, ValueError):
        return
    rd.progress("interrupted", status="failed",
                notes=f"the wake was killed during {was!r}" if was else "the wake was killed")


def context_for(cfg, store, task, limit: int = 5) -> str:
    """Worklog context for an agent: the task's own line, its dependencies' results, recent findings."""
    rows = store.entries(worklog=str(cfg.worklog_path))
    parts = [f"The task as written (line {task.line} of {task.source}):\n{task.text}"]
    for dep in task.attrs.get("after") or []:
        mine = [r for r in rows if r["task_id"] == dep]
        if mine:
            parts.append(f"Result of dependency {dep}:\n{mine[-1]['text']}")
    recent = [r for r in rows if r["task_id"] != task.id and r["status"] != "running"][-limit:]
    if recent:
        parts.append("Recent findings:\n" + "\n".join(r["text"] for r in recent))
    return "\n\n".join(parts)


class Recorder:
    def __init__(self, cfg, store, run_id: str, task, snap: dict, view):
        self.cfg, self.store, self.run_id, self.task, self.snap, self.view = cfg, store, run_id, task, snap, view
        self.run_dir = records.RunDir(cfg, run_id)
        cfg.env["AGENTD_RUN_ID"] = run_id  # every process the run starts carries it (see kill_orphan)
        self.t0 = time.monotonic()
        self.duration = 0.0

    def start(self, resumed: bool) -> None:
        t, cfg = self.task, self.cfg
        if resumed:
            self.run_dir.progress("resume", notes="resuming after an interrupted wake")
        else:
            self.run_dir.write_manifest(cfg, self.run_id, t, self.snap)
            self.run_dir.progress("start", notes=f"{t.kind} task {t.id}")
            self.store.start_run(run_id=self.run_id, task_id=t.id, kind=t.kind, title=t.title, status="running",
                                 host=cfg.host,
                                 started_at=records.now_iso(), run_dir=str(self.run_dir.path))
        how = {"command": f"command `{t.attrs.get('run')}`", "experiment": f"experiment {t.title}",
               "agent": "the LLM agent"}[t.runner]
        body = (f"**{'resumed' if resumed else 'started'}** · {t.kind} `{t.id}` · {how}\n{t.title}\n"
                f"why this one: {t.why}\nrun directory: {self.run_dir.path}")
        append_entry(cfg, self.store, self.run_id, t.id, "running", body, self.view.read.state.max_seq)

    def execute(self) -> Outcome:
        job = Job(self.cfg, self.store, self.run_id, self.task, self.snap, self.run_dir.path,
                  lambda phase: self.run_dir.progress(phase),
                  context=context_for(self.cfg, self.store, self.task) if self.task.runner == "agent" else "")
        try:
            return run_task(job)
        except Exception as e:  # agentd's own bug: record it as failed, then let the CLI show it
            if __import__("os").environ.get("AGENTD_DEBUG"):
                raise
            import traceback

            (self.run_dir.path / "traceback.txt").write_text(traceback.format_exc(), encoding="utf-8")
            return Outcome("failed", f"agentd error: {type(e).__name__}: {e}",
                           reason="internal error; see traceback.txt in the run directory")

    def _hold_backend(self, o: Outcome) -> None:
        """A refused key or a rate limit holds back every agent task, not just this one."""
        from agentd.budget import DAILY
        from agentd.backends import key_fingerprint

        reason = o.reason or ""
        if o.status == "blocked" and reason.startswith("auth"):
            self.store.set_hold(o.provider, "auth", reason[:200], fingerprint=key_fingerprint(self.cfg, o.provider))
        elif o.status == "deferred" and o.defer_until and not reason.startswith(DAILY):
            # (a spent daily budget holds agent tasks back by itself: see backends.spent)
            self.store.set_hold(o.provider, "deferred", reason[:200], until=o.defer_until)
        elif o.status == "done":
            self.store.clear_hold(o.provider)

    def finish(self, o: Outcome) -> None:
        """Record the outcome everywhere; every text is redacted first (worklog, store, stdout, notify)."""
        env = self.cfg.env
        o.summary = redact(o.summary, env)
        o.lines = [redact(x, env) for x in o.lines]
        o.reason = redact(o.reason, env) if o.reason else o.reason
        o.next_step = redact(o.next_step, env) if o.next_step else o.next_step
        self.duration = time.monotonic() - self.t0
        t = self.task
        head = f"**{o.status}** · {t.kind} `{t.id}` · {self.duration:.1f} s"
        if o.exit_code is not None:
            head += f" · exit {o.exit_code}"
        if o.input_tokens or o.output_tokens:
            head += f" · {o.input_tokens + o.output_tokens} tokens · ${o.cost_usd:.4f}"
        body = [head, t.title, o.summary, *o.lines]
        if o.defer_until:
            body.append(f"deferred until {o.defer_until}")
        if o.next_step:
            body.append(f"next: {o.next_step}")
        body.append(f"full record: agentd show {self.run_id} · {self.run_dir.path}")
        append_entry(self.cfg, self.store, self.run_id, t.id, o.status, "\n".join(body),
                     until=o.defer_until if o.status == "deferred" else None)
        self.store.update_run(self.run_id, status=o.status, duration_s=round(self.duration, 3),
                              exit_code=o.exit_code, summary=redact(o.summary, self.cfg.env), reason=o.reason,
                              defer_until=o.defer_until, provider=o.provider)
        if o.input_tokens or o.output_tokens or o.cost_usd:
            run = self.store.run(self.run_id)
            if run and not run["input_tokens"] and not run["output_tokens"]:
                self.store.add_usage(self.run_id, o.input_tokens, o.output_tokens, o.cost_usd)
        if t.runner == "agent" and o.provider:
            self._hold_backend(o)
        final = {"deferred": "blocked", "interrupted": "failed"}.get(o.status, o.status)
        self.run_dir.progress("finished", status=final, notes=o.summary[:500], complete="finished")
        # Under systemd a failed wake exits 1 and OnFailure= runs `agentd notify`; a blocked
        # run exits 0, so the wake tells the notify command itself.
        under_systemd = bool(self.cfg.env.get("INVOCATION_ID"))
        if o.status == "blocked" or (o.status == "failed" and not under_systemd):
            from agentd import notify

            notify.notify(self.cfg, f"agentd {self.cfg.host}: {t.id} {o.status}: {o.summary}")
