"""Every status a task, a run or an entry can have, named once.

An entry's ``status=`` is one of ``ENTRY``; a run's outcome one of ``OUTCOMES``;
a task's status (``taskstate.status``) is an entry status or ``OPEN``, ``BLOCKED``
after too many failed attempts, ``CANCELLED`` or ``DONE`` by a person's line.  A ``WAITING``
run is parked with its checkpoint: the wake after the answer or the reset resumes it.
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
WAITING = "waiting"  # parked: for a person's APPROVE/DENY, or for a usage limit to reset

ENTRY = (RUNNING, DONE, FAILED, BLOCKED, INTERRUPTED, DEFERRED, CANCELLED, NOTE, WAITING)
OUTCOMES = (DONE, FAILED, BLOCKED, DEFERRED, INTERRUPTED, WAITING)
RUNNABLE = (OPEN, FAILED, DEFERRED, INTERRUPTED)  # a task in one of these may be chosen
ATTEMPTS = (FAILED, INTERRUPTED)  # entries that count as an attempt that did not finish
