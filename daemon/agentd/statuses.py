"""Every status a task, a run or an entry can have, named once.

An entry's ``status=`` is one of ``ENTRY``; a run's outcome one of ``OUTCOMES``;
a task's status (``taskstate.status``) is an entry status or ``OPEN``, ``BLOCKED``
after too many failed attempts, ``CANCELLED`` or ``DONE`` by a person's line.
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

ENTRY = (RUNNING, DONE, FAILED, BLOCKED, INTERRUPTED, DEFERRED, CANCELLED, NOTE)
OUTCOMES = (DONE, FAILED, BLOCKED, DEFERRED, INTERRUPTED)
RUNNABLE = (OPEN, FAILED, DEFERRED, INTERRUPTED)  # a task in one of these may be chosen
ATTEMPTS = (FAILED, INTERRUPTED)  # entries that count as an attempt that did not finish
