"""The Slurm commands agentd runs: ``sbatch --parsable``, ``squeue``, ``sacct``, ``scancel``.

Each is one argv (never a shell), found on the PATH of agentd's environment (``SLURM_CONF`` and the
rest of it passed on), with a bounded timeout: a slow or hung controller costs a wake ``TIMEOUT_S`` at
most per command, never the wake.  Each answers a ``Said`` (its exit status, output, and why it could
not run at all: missing, timed out); nothing here raises for Slurm's sake.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

from agentd.recordtype import Record

TIMEOUT_S = 20.0  # per command
MAX_OUT = 64 * 1024  # what is kept of a command's output
# squeue's states of a job that has ended (it keeps them for MinJobAge after the end)
ENDED = frozenset({"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
                   "PREEMPTED", "REVOKED", "SPECIAL_EXIT", "TIMEOUT"})
POLL_CHUNK = 100  # job ids asked of squeue at once


class Said(Record):
    code: int | None  # exit status; None when it could not run or did not end in time
    out: str = ""
    err: str = ""
    problem: str | None = None  # why it could not run, or did not answer in time

    def why(self) -> str:
        """What went wrong, in a line: the problem, else stderr's last line, else the exit status."""
        if self.problem:
            return self.problem
        lines = [x for x in self.err.splitlines() if x.strip()]
        return lines[-1].strip()[:300] if lines else f"exit {self.code}"


def call(argv: list[str], env: dict, cwd=None, timeout: float | None = None) -> Said:
    timeout = TIMEOUT_S if timeout is None else timeout
    exe = shutil.which(argv[0], path=env.get("PATH"))
    if exe is None:
        return Said(None, problem=f"{argv[0]} is not on the PATH ({env.get('PATH') or 'empty'})")
    try:
        p = subprocess.Popen([exe, *argv[1:]], env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
    except OSError as e:
        return Said(None, problem=f"{argv[0]} could not run: {e.strerror or e}")
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # the command and whatever it started (a wrapper's children) go
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.communicate()
        return Said(None, problem=f"{argv[0]} did not answer in {timeout:g} s")
    return Said(p.returncode, out[:MAX_OUT].decode("utf-8", "replace"), err[:MAX_OUT].decode("utf-8", "replace"))


def submit(script: str, options: list[str], env: dict, cwd) -> tuple[str | None, Said]:
    """``sbatch --parsable OPTIONS SCRIPT``: (the job id, or None, and what sbatch said)."""
    said = call(["sbatch", "--parsable", *options, script], env, cwd=cwd)
    if said.code != 0:
        return None, said
    first = (said.out.strip().splitlines() or [""])[0]
    job_id = first.split(";")[0].strip()  # "ID" or "ID;cluster"
    if not job_id.isdigit():
        return None, Said(said.code, said.out, said.err, f"sbatch answered no job id ({first[:80]!r})")
    return job_id, said


def states(job_ids: list[str], env: dict) -> tuple[dict[str, str], str | None]:
    """``squeue`` on the jobs: (job id -> its state, for those it still knows; why it could not say, or None).
    A job it does not know (any more) has left the queue: its entry is missing from the answer."""
    found: dict[str, str] = {}
    for i in range(0, len(job_ids), POLL_CHUNK):
        chunk = job_ids[i:i + POLL_CHUNK]
        said = call(["squeue", "--noheader", "--states=all", f"--jobs={','.join(chunk)}", "--format=%i|%T"], env)
        if said.code != 0 and "Invalid job id" in said.err:
            continue  # none of them known any more (squeue says so only when all are unknown)
        if said.code != 0:
            return found, said.problem or f"squeue: {said.why()}"
        for line in said.out.splitlines():
            jid, _, state = line.strip().partition("|")
            if jid in chunk:
                found[jid] = state.strip() or "UNKNOWN"
    return found, None


def accounted(job_id: str, env: dict) -> tuple[str, int | None] | None:
    """``sacct`` on an ended job: (its state, its exit code), or None where there is no accounting."""
    said = call(["sacct", "--noheader", "--parsable2", "--allocations", f"--jobs={job_id}",
                 "--format=State,ExitCode"], env)
    if said.code != 0:
        return None
    for line in said.out.splitlines():
        state, _, code = line.strip().partition("|")
        if state:
            try:
                return state.split()[0], int(code.split(":")[0])
            except ValueError:
                return state.split()[0], None
    return None


def by_name(name: str, env: dict) -> tuple[list[str], str | None]:
    """The ids of the jobs named ``name`` (``--job-name``) that Slurm knows: ``squeue`` (which keeps an
    ended job for MinJobAge), else ``sacct`` over the last week where the cluster keeps accounting.
    (ids, why it could not say, or None)."""
    said = call(["squeue", "--noheader", "--states=all", f"--name={name}", "--format=%i"], env)
    if said.code != 0:
        return [], said.problem or f"squeue: {said.why()}"
    ids = [x.strip() for x in said.out.splitlines() if x.strip().isdigit()]
    if ids:
        return ids, None
    said = call(["sacct", "--noheader", "--parsable2", "--allocations", f"--name={name}", "--starttime=now-7days",
                 "--format=JobID"], env)
    if said.code == 0:
        ids = [x.strip().split(";")[0] for x in said.out.splitlines() if x.strip().split(";")[0].isdigit()]
    return ids, None


def cancel(job_id: str, env: dict, name: str | None = None) -> Said:
    """``scancel`` the job by its id, or (its id not known: sbatch did not answer) by its name."""
    return call(["scancel", job_id] if job_id else ["scancel", f"--name={name}"], env)
