"""The ``slurm_jobs`` table (migration 011): each run submitted to Slurm, its job id, and where the job
stood when a wake last looked (``state``, ``note``, ``polled_at``); once it ended, its exit code and when
agentd saw it end.  The runs row says the run is ``waiting`` meanwhile; this table says what for.

A store that predates the table (opened read-only, never migrated) has no jobs, said as none.
"""

from __future__ import annotations

import sqlite3

from agentd.times import now_iso

COLUMNS = ("run_id", "job_id", "task_id", "host", "submitted_at", "state", "polled_at", "note", "exit_code",
           "ended_at")


MAX_NAME = 120  # a job name's length
UNKNOWN = ""  # the job id of a run sbatch may have taken without saying so (it timed out; the wake was killed)
MAYBE = "SUBMITTED?"  # such a run's state until a wake finds its job by name


def job_name(task_id: str, run_id: str) -> str:
    """The job's ``--job-name``, by which a wake finds a job whose id it never heard."""
    return f"agentd:{task_id}:{run_id}"[:MAX_NAME]



def add(store, run_id: str, job_id: str, task_id: str, host: str | None, note: str | None = None) -> None:
    """A run submitted as ``job_id``, or (``UNKNOWN``) perhaps submitted: looked up by name at the next wake."""
    with store.tx():
        store.db.execute("INSERT OR REPLACE INTO slurm_jobs (run_id, job_id, task_id, host, submitted_at, state, "
                         "note) VALUES (?,?,?,?,?,?,?)", (run_id, job_id, task_id, host, now_iso(),
                                                          "SUBMITTED" if job_id else MAYBE, note))


def adopt(store, run_id: str, job_id: str, note: str) -> None:
    """The job id of a run that had none (found by its name)."""
    with store.tx():
        store.db.execute("UPDATE slurm_jobs SET job_id=?, state='SUBMITTED', note=?, polled_at=? WHERE run_id=?",
                         (job_id, note, now_iso(), run_id))


def of_run(store, run_id: str) -> dict | None:
    try:
        row = store.db.execute("SELECT * FROM slurm_jobs WHERE run_id=?", (run_id,)).fetchone()
    except sqlite3.OperationalError:  # no such table: an old store, read-only
        return None
    return dict(row) if row is not None else None


def parked(store, host: str | None) -> list[dict]:
    """The jobs of this host's runs parked as waiting, oldest first (each with the runs row's task id)."""
    try:
        rows = store.db.execute(
            "SELECT j.* FROM slurm_jobs j JOIN runs r ON r.run_id = j.run_id WHERE r.status='waiting' "
            "AND (r.host=? OR r.host IS NULL OR ? IS NULL) ORDER BY r.rowid", (host, host)).fetchall()
    except sqlite3.OperationalError:
        return []
    return [dict(r) for r in rows]


def polled(store, run_id: str, state: str | None, note: str | None = None, exit_code: int | None = None,
           ended: bool = False) -> None:
    """What a wake saw of the job (``state`` None: nothing new, only ``note``, e.g. squeue did not answer)."""
    sets = {"polled_at": now_iso(), "note": note}
    if state is not None:
        sets["state"] = state
    if ended:
        sets.update(exit_code=exit_code, ended_at=now_iso())
    with store.tx():
        store.db.execute(f"UPDATE slurm_jobs SET {','.join(f'{k}=?' for k in sets)} WHERE run_id=?",
                         [*sets.values(), run_id])


def describe(row: dict) -> str:
    """One line: the job, where it stood when last looked at, and how to follow it."""
    seen = f" as of {row['polled_at']}" if row.get("polled_at") else f" since {row['submitted_at']}"
    note = f" ({row['note']})" if row.get("note") else ""
    if not row["job_id"]:
        name = job_name(row["task_id"], row["run_id"])
        return f"Slurm job {name}: {row.get('state') or MAYBE}{seen}{note}; follow it: squeue --name={name}"
    return (f"Slurm job {row['job_id']}: {row.get('state') or 'SUBMITTED'}{seen}{note}; "
            f"follow it: squeue -j {row['job_id']}")


def waits(store, host: str | None) -> dict[str, str]:
    """Task id -> what its parked run waits for (its Slurm job), for the queue and status."""
    return {row["task_id"]: describe(row) for row in parked(store, host)}
