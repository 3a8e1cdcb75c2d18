"""Every status a task, a run or an entry can have, named once.

An entry's ``status=`` is one of ``ENTRY``; a run's outcome one of ``OUTCOMES``;
a task's status (``taskstate.status``) is an entry status or ``OPEN``, ``BLOCKED``
after too many failed attempts, ``CANCELLED`` or ``DONE`` by a person's line.  A ``WAITING``
run is parked with its checkpoint: the wake after the answer or the reset resumes it.
An outcome's ``cause`` (``Cause``) names why it ended so, where agentd acts on it.
"""

OPEN = "open"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
BLOCKED = "blocked"
INTERRUPTED = "interrupted"
DEFERRED = "deferred"
CANCELLED = "cancelled"
NOTE = "note"
WAITING = "waiting"  # parked: for a person's APPROVE/DENY, a usage limit to reset, or a Slurm job to end

ENTRY = (RUNNING, DONE, FAILED, BLOCKED, INTERRUPTED, DEFERRED, CANCELLED, NOTE, WAITING)
OUTCOMES = (DONE, FAILED, BLOCKED, DEFERRED, INTERRUPTED, WAITING)
RUNNABLE = (OPEN, FAILED, DEFERRED, INTERRUPTED)  # a task in one of these may be chosen
ATTEMPTS = (FAILED, INTERRUPTED)  # entries that count as an attempt that did not finish


class Cause:
    """Why a run's outcome is what it is (``Outcome.cause``), where the wake acts on it: set by the
    runner that knows, tested by name, never read from the reason's text (which is for people).
    An outcome with none of these causes has ``cause`` None."""

    APPROVAL = "approval"  # waiting for a person's APPROVE/DENY (the wake notifies at once)
    AUTH = "auth"  # the provider's key is missing or refused (agent tasks wait until it changes)
    USAGE_LIMIT = "usage-limit"  # the provider's usage limit (waiting or deferred until its reset)
    RATE_LIMIT = "rate-limit"  # the provider's rate limit (deferred)
    DAILY_LIMIT = "daily-limit"  # agentd's tokens_per_day / usd_per_day (deferred to the next UTC day)
    BUDGET = "budget"  # one of the run's own limits: max_steps, run_timeout, tokens or usd per run
    DISK_FULL = "disk-full"  # the disk filled (agentd could not write, or the run left it full)
    QC = "qc"  # a run that succeeded failed one of its task's ``expect:`` gates (wake/results.py)
    SLURM = "slurm"  # submitted to Slurm: parked until its job ends (runners/slurm.py)
    ALL = (APPROVAL, AUTH, USAGE_LIMIT, RATE_LIMIT, DAILY_LIMIT, BUDGET, DISK_FULL, QC, SLURM)
