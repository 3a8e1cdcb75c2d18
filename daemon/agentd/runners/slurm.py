"""Tasks run on Slurm: a command or experiment task with ``{slurm: {...}}`` (docs/slurm.md).

A wake **submits** it (``run`` with a new run): a batch script in the run directory (``job.sh``, which
runs the task's command, ``command.sh``, and keeps its exit status in ``slurm-exit``), ``sbatch
--parsable`` with the task's options (``tasks/slurmspec.py``) each one argv element, its output to the
run directory's stdout.txt and stderr.txt; the job id goes into the store (``store/slurm.py``) and the
manifest, and the run is parked ``waiting`` (cause ``Cause.SLURM``) at once.

Each later wake **polls** the parked jobs before it chooses anything (``poll``, from ``wake/settle.py``):
the exit status the script kept, else ``squeue`` (one call for all of them), else ``sacct`` where the
cluster keeps accounting; every command bounded (``slurmcmd``).  A job that ended is **collected** as
its run's resume (``run`` with ``job.resume``): its output, its exit code, and then, as for any command,
its metrics and gates (``wake/results.py``).  A person's CANCEL (or RETRY, or DONE) of a parked task
``scancel``s its job (``cancel``).

The run directory must be on a disk the cluster's nodes share with this host (docs/slurm.md).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from agentd import statuses
from agentd.errors import WorkspaceError
from agentd.redact import redact, redact_file
from agentd.runners import experiment, slurmcmd
from agentd.runners.command import child_env, retry_hint, tail, written_by_a_person
from agentd.statuses import Cause
from agentd.store import slurm as jobs
from agentd.tasks import slurmspec
from agentd.tasks.job import Job, Outcome
from agentd.times import parse
from agentd.workspace import worktrees
from agentd.workspace.rundir import RunDir, amend_manifest

EXIT_FILE = "slurm-exit"  # job.sh's exit status and end time (a cluster without accounting says it nowhere else)
START_FILE = "slurm-start"  # the job's id and start time, kept by job.sh as it starts on its node
RUNNERS = ("command", "experiment")
NOT_SUBMITTED = "NOT SUBMITTED"  # the state of a run sbatch timed out on, which Slurm has no job for


def is_slurm(job: Job) -> bool:
    """Whether this run is Slurm's: its task asks for it, or it is a run already submitted."""
    return "slurm" in job.task.attrs or (job.resume and jobs.of_run(job.store, job.run_id) is not None)


def run(job: Job) -> Outcome:
    row = jobs.of_run(job.store, job.run_id)
    if row is not None:
        return collect(job, row)
    return submit(job)


# -- submitting -----------------------------------------------------------------------------------

def submit(job: Job) -> Outcome:
    cfg, task = job.cfg, job.task
    if task.runner not in RUNNERS:
        return Outcome(statuses.BLOCKED, f"not submitted: `slurm:` is for command and experiment tasks, not a "
                       f"{task.kind} run by the {task.runner} runner", reason="slurm: on a task it can't run")
    if task.runner == "command" and not written_by_a_person(cfg, task):
        return Outcome(statuses.BLOCKED, f"not submitted: the command came from {task.source}, not a person's "
                       f"line of the worklog or a task file in {cfg.tasks_dir}", reason="command of unknown provenance")
    try:
        cwd = worktrees.command_cwd(cfg, task, job.store) if task.runner == "command" else job.run_dir
    except WorkspaceError as e:
        return Outcome(statuses.BLOCKED, f"not submitted: {e}", reason=f"cwd: {e}"[:200],
                       next_step=f"give the task a `cwd:` outside {cfg.workspace}, then RETRY: {task.id}")
    job.workspace = cwd
    spec, problem = slurmspec.check(task.attrs.get("slurm"))
    if problem:  # (the attrs' schema said so already: a task made some other way)
        return Outcome(statuses.BLOCKED, f"not submitted: slurm: {problem}", reason=f"slurm: {problem}"[:200])
    if job.resume:  # a run taken up again: its job may exist already
        found = adopted(cfg, job.store, task.id, job.run_id)
        if found is not None:
            return found
    script = write_script(job)
    name = jobs.job_name(task.id, job.run_id)
    options = [f"--job-name={name}", f"--chdir={cwd}",
               f"--output={job.run_dir / 'stdout.txt'}", f"--error={job.run_dir / 'stderr.txt'}",
               *slurmspec.options(spec)]
    job.progress("sbatch")
    job_id, said = slurmcmd.submit(str(script), options, child_env(job), cwd)
    shown = "sbatch --parsable " + " ".join(shlex.quote(o) for o in [*options, str(script)])
    if job_id is None and said.problem and "did not answer" in said.problem:
        return unanswered(job, said, shown, name)
    if job_id is None:
        return refused(job, said, shown)
    jobs.add(job.store, job.run_id, job_id, task.id, cfg.host)
    amend_manifest(job.run_dir, slurm={"job_id": job_id, "options": options, "script": str(script)})
    return Outcome(statuses.WAITING, f"submitted to Slurm as job {job_id}; later wakes poll it and collect its "
                   "output, exit code and metrics when it ends", [
                       f"$ {redact(shown, cfg.env)}",
                       f"follow it: squeue -j {job_id} · tail -f {job.run_dir / 'stdout.txt'}",
                       f"stop it: CANCEL: {task.id} (agentd runs scancel {job_id})"],
                   cause=Cause.SLURM, reason=f"Slurm job {job_id}")


def unanswered(job: Job, said: slurmcmd.Said, shown: str, name: str) -> Outcome:
    """sbatch timed out: it may have taken the job all the same.  The run is parked "submitted?" and the
    next wake looks the job up by its name (``poll``): adopted if Slurm has it, failed if not, never
    submitted twice."""
    cfg, task = job.cfg, job.task
    jobs.add(job.store, job.run_id, jobs.UNKNOWN, task.id, cfg.host, note=f"sbatch: {said.why()}")
    amend_manifest(job.run_dir, slurm={"job_id": None, "job_name": name, "options": shown})
    return Outcome(statuses.WAITING, f"submitted to Slurm? {said.why()}: the job may have been taken; the next "
                   f"wake looks it up by its name, {name}, and follows it, or records the run failed if Slurm "
                   "has no such job", [f"$ {redact(shown, cfg.env)}", f"look: squeue --name={name}",
                                       f"stop it: CANCEL: {task.id} (agentd runs scancel --name={name})"],
                   cause=Cause.SLURM, reason=f"Slurm job {name}: sbatch did not answer")


def adopted(cfg, store, task_id: str, run_id: str) -> Outcome | None:
    """The run's job, if Slurm has one by its name (a run taken up again): kept and parked on, or None."""
    ids, why = slurmcmd.by_name(jobs.job_name(task_id, run_id), dict(cfg.env))
    if not ids:
        return None
    jobs.add(store, run_id, ids[0], task_id, cfg.host, note="found by its name: not submitted again")
    return Outcome(statuses.WAITING, f"Slurm job {ids[0]} of this run was found by its name: followed, not "
                   "submitted again", cause=Cause.SLURM, reason=f"Slurm job {ids[0]}")


def refused(job: Job, said: slurmcmd.Said, shown: str) -> Outcome:
    """sbatch missing, hung or refusing the job: blocked where it can't run here, failed where Slurm said no."""
    cfg, task = job.cfg, job.task
    lines = [f"$ {redact(shown, cfg.env)}"] + [redact(x if x.startswith("sbatch") else f"sbatch: {x}", cfg.env)[:400]
                                                for x in said.err.strip().splitlines()[-10:]]
    if said.problem and "not on the PATH" in said.problem:
        return Outcome(statuses.BLOCKED, f"not submitted: {said.problem}", lines, reason="sbatch is not installed",
                       next_step="install Slurm's client commands on this host, or put them on agentd's PATH "
                                 f"(docs/slurm.md), then RETRY: {task.id}")
    why = said.why()
    return Outcome(statuses.FAILED, f"sbatch did not take the job: {why}", lines, exit_code=said.code,
                   reason=f"sbatch: {why}"[:200],
                   next_step=f"check the task's slurm: settings against `sinfo`; {retry_hint(cfg, task)}")


def write_script(job: Job) -> Path:
    """job.sh (and command.sh, or spec.json for an experiment) in the run directory."""
    rd, task = job.run_dir, job.task
    exit_file, tmp = shlex.quote(str(rd / EXIT_FILE)), shlex.quote(str(rd / (EXIT_FILE + ".tmp")))
    start_file = shlex.quote(str(rd / START_FILE))
    (rd / EXIT_FILE).unlink(missing_ok=True)
    (rd / START_FILE).unlink(missing_ok=True)
    if task.runner == "command":
        (rd / "command.sh").write_text(task.attrs["run"] + "\n", encoding="utf-8")
        body = f"/bin/sh {shlex.quote(str(rd / 'command.sh'))}"
    else:
        (rd / "spec.json").write_text(experiment.spec(job), encoding="utf-8")
        (rd / "result.json").unlink(missing_ok=True)
        body = f"{shlex.quote(sys.executable)} -m agentd.experiments < {shlex.quote(str(rd / 'spec.json'))}"
    script = rd / "job.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"# agentd: task {task.id}, run {job.run_id}: its job id and start time, the task, then its exit status "
        "and end time, kept for agentd\n"
        f"printf '%s %s\\n' \"${{SLURM_JOB_ID:--}}\" \"$(date +%s)\" > {start_file}\n"
        f"{body}\n"
        "code=$?\n"
        f"printf '%s %s\\n' \"$code\" \"$(date +%s)\" > {tmp} && mv -f {tmp} {exit_file}\n"
        "exit \"$code\"\n", encoding="utf-8")
    os.chmod(script, 0o700)
    return script


# -- polling ---------------------------------------------------------------------------------------

def _kept(run_dir, name: str) -> list[str]:
    try:
        return (Path(run_dir) / name).read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return []


def _int(words: list[str], i: int) -> int | None:
    try:
        return int(words[i])
    except (IndexError, ValueError):
        return None


def kept_exit(run_dir) -> int | None:
    """The exit status job.sh kept, or None (not ended, or killed before it could write it)."""
    return _int(_kept(run_dir, EXIT_FILE), 0)


def kept_job_id(run_dir) -> str | None:
    """The job id job.sh kept as it started on its node, or None (it never started)."""
    words = _kept(run_dir, START_FILE)
    return words[0] if words and words[0].isdigit() else None


def kept_times(run_dir) -> tuple[int | None, int | None]:
    """(when the job started on its node, when it ended), epoch seconds, as job.sh kept them (None: not kept)."""
    return _int(_kept(run_dir, START_FILE), 1), _int(_kept(run_dir, EXIT_FILE), 1)


def poll(cfg, store, rows: list[dict]) -> list[dict]:
    """Look at each parked job (bounded; never waits for one to end), keep what was seen, and return the
    rows of those that ended."""
    env, ended, left = dict(cfg.env), [], []
    for row in rows:
        if not row["job_id"] and not find(cfg, store, row, env):
            if row.get("ended_at"):
                ended.append(row)
            continue
        code = kept_exit(RunDir(cfg, row["run_id"]).path)
        if code is not None:
            jobs.polled(store, row["run_id"], "COMPLETED" if code == 0 else "FAILED", exit_code=code, ended=True)
            ended.append(row)
        else:
            left.append(row)
    if not left:
        return ended
    found, why = slurmcmd.states([r["job_id"] for r in left], env)
    if why:  # the controller did not answer: the jobs stay parked, and say so
        for row in left:
            jobs.polled(store, row["run_id"], None, note=f"not polled: {why}")
        return ended
    for row in left:
        state = found.get(row["job_id"])
        if state is not None and state not in slurmcmd.ENDED:
            jobs.polled(store, row["run_id"], state)
            continue
        code = kept_exit(RunDir(cfg, row["run_id"]).path)  # (it may have ended since the first look)
        acct = None if code is not None else slurmcmd.accounted(row["job_id"], env)
        if code is not None:
            jobs.polled(store, row["run_id"], "COMPLETED" if code == 0 else "FAILED", exit_code=code, ended=True)
        elif acct is not None:
            jobs.polled(store, row["run_id"], acct[0], exit_code=acct[1], ended=True)
        else:
            jobs.polled(store, row["run_id"], state or "ENDED", ended=True,
                        note="it ended without keeping its exit status (cancelled, out of time, or its node failed)")
        ended.append(row)
    return ended


def find(cfg, store, row: dict, env: dict) -> bool:
    """A run parked "submitted?" (sbatch timed out, or the wake was killed around it): its job looked up
    by name, and adopted (True: ``row`` now has its id); or, where Slurm has no such job, the row ended
    ``NOT SUBMITTED`` (to be collected as failed); or, where Slurm did not answer, left as it was."""
    name = jobs.job_name(row["task_id"], row["run_id"])
    job_id = kept_job_id(RunDir(cfg, row["run_id"]).path)  # it started, and said so in the run dir
    ids, why = ([job_id], None) if job_id else slurmcmd.by_name(name, env)
    if why:
        jobs.polled(store, row["run_id"], None, note=f"not looked up: {why}")
        return False
    if not ids:
        jobs.polled(store, row["run_id"], NOT_SUBMITTED, ended=True,
                    note=f"no job named {name} is known to Slurm")
        row.update(jobs.of_run(store, row["run_id"]) or {})
        return False
    note = f"found by its name {name}" + (f" (of {len(ids)} so named: {', '.join(ids)})" if len(ids) > 1 else "")
    jobs.adopt(store, row["run_id"], ids[0], note)
    row.update(jobs.of_run(store, row["run_id"]) or {})
    return True


def cancel(cfg, store, row: dict, why: str) -> str:
    """``scancel`` a parked run's job, because its task was closed or reopened; returns what was done.
    When scancel fails the run stays parked and the next wake tries again.  A job whose id is not known
    (sbatch did not answer) is cancelled by its name."""
    name = jobs.job_name(row["task_id"], row["run_id"])
    said = slurmcmd.cancel(row["job_id"], dict(cfg.env), name=name)
    which = row["job_id"] or f"--name={name}"
    if said.code != 0:
        note = f"scancel {which} failed ({said.why()}): tried again at the next wake"
        jobs.polled(store, row["run_id"], None, note=note)
        return note
    jobs.polled(store, row["run_id"], "CANCELLED", note=f"scancel: {why}", ended=True)
    store.update_run(row["run_id"], status=statuses.CANCELLED, reason=f"scancel {which}: {why}")
    return f"scancel {which}: {why}"


# -- collecting ----------------------------------------------------------------------------------

def collect(job: Job, row: dict) -> Outcome:
    """The outcome of a job that ended: its output and exit code (an experiment's result.json)."""
    cfg, task = job.cfg, job.task
    job.progress("collect")
    if not row.get("ended_at"):  # (a wake named it with --task before it ended): look again
        if not poll(cfg, job.store, [row]):
            row = jobs.of_run(job.store, job.run_id) or row
            return Outcome(statuses.WAITING, f"Slurm job {row['job_id']} has not ended: {jobs.describe(row)}",
                           cause=Cause.SLURM, reason=f"Slurm job {row['job_id']}")
        row = jobs.of_run(job.store, job.run_id) or row
    if row.get("state") == NOT_SUBMITTED:
        why = f"sbatch did not take the job: {row.get('note') or 'Slurm has no job of this run'}"
        return Outcome(statuses.FAILED, f"not submitted: {why}", reason=why[:200],
                       next_step=f"check the controller (`sinfo`, `squeue`); {retry_hint(cfg, task)}")
    out_path, err_path = job.run_dir / "stdout.txt", job.run_dir / "stderr.txt"
    for path in (out_path, err_path):
        if path.exists():
            redact_file(path, cfg.env)
    code, state, jid = row.get("exit_code"), row.get("state") or "ENDED", row["job_id"]
    try:
        job.workspace = worktrees.command_cwd(cfg, task, job.store) if task.runner == "command" else job.run_dir
    except WorkspaceError:
        job.workspace = None
    ran, timing = timed(job.run_dir, row)
    where = f"Slurm job {jid} ended {state}" + (f", exit {code}" if code is not None else "") + f": {timing}"
    o = collected(job, row, code, state, where)
    o.duration_s = ran
    return o


def timed(run_dir, row: dict) -> tuple[float, str]:
    """(how long the job ran on its node, in seconds; a line saying its wait in the queue and its run), from
    the times job.sh kept in the run dir (the node's clock) and when it was submitted (this host's)."""
    start, end = kept_times(run_dir)
    submitted, seen = parse(row.get("submitted_at")), parse(row.get("ended_at"))
    if start is None:  # it never started on a node (cancelled while pending), or its disk is not shared
        waited = f"{max(seen - submitted, 0):.0f} s" if submitted and seen else "its time"
        return 0.0, f"it never started (it spent {waited} in the queue)"
    waited = f"waited {max(start - submitted, 0):.0f} s in the queue" if submitted else "its wait not known"
    if end is None:  # killed without keeping its end: until agentd saw it end, at most
        ran = max((seen or start) - start, 0)
        return float(ran), f"{waited}, ran {ran:.0f} s at most (its end not kept)"
    return float(max(end - start, 0)), f"{waited}, ran {max(end - start, 0):.0f} s"


def collected(job: Job, row: dict, code: int | None, state: str, where: str) -> Outcome:
    """The outcome of the ended job (``where``: its first line, the job's state, exit and times)."""
    cfg, task = job.cfg, job.task
    jid = row["job_id"]
    out_path, err_path = job.run_dir / "stdout.txt", job.run_dir / "stderr.txt"
    if task.runner == "experiment":
        o = experiment.from_result(job, code, None if code is not None else row.get("note") or state)
        o.lines = [where, *o.lines]
        return o
    cmd = task.attrs.get("run", "")
    lines = [f"$ {cmd}", where + (f" ({row['note']})" if row.get("note") else "")]
    for label, path in (("stdout", out_path), ("stderr", err_path)):
        t = tail(path, cfg["output_tail"])
        if t:
            lines.append(f"--- {label} (last {len(t)} lines; full: {path}) ---")
            lines += [redact(x, cfg.env) for x in t]
    if code == 0:
        return Outcome(statuses.DONE, f"`{cmd}` exited 0 on Slurm (job {jid})", lines, exit_code=0)
    if code is None:
        why = f"Slurm job {jid} ended {state} without an exit status"
        return Outcome(statuses.FAILED, f"`{cmd}`: {why}", lines, reason=why[:200],
                       next_step=f"see stderr.txt, `scontrol show job {jid}` (while Slurm remembers it); "
                                 f"{retry_hint(cfg, task)}")
    return Outcome(statuses.FAILED, f"`{cmd}` exited {code} on Slurm (job {jid})", lines, exit_code=code,
                   reason=f"exit code {code}", next_step=f"read the stderr tail above; {retry_hint(cfg, task)}")
