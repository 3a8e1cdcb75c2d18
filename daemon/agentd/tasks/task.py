"""A task: one shape from the line or task file that defines it to the runner that runs it.

The definition (id, title, kind, priority, attrs and where it was written) comes
from ``lines.make_task``; the queue fills in the rest (status, score, why) when it
builds the queue, and the wake hands the same object to a runner.  A worklog keeps its
tasks' definitions as columns (``worklog.tasktable.TaskTable``), a typed view that gives
each row as a Task (``Task.defined``); ``to_dict()`` is only the parse index's serialized form.
"""

from __future__ import annotations

from agentd.recordtype import Factory, Record

# Which runner runs a task of each kind (worklog/lines.py KINDS): the one place it is written.
RUNNER_OF = {"task": "agent", "directive": "agent", "blocker": "agent", "command": "command",
             "experiment": "experiment"}
AGENT_KINDS = tuple(k for k, r in RUNNER_OF.items() if r == "agent")


def runner_of(kind: str) -> str:
    """The runner of a task of ``kind``: command, experiment or agent."""
    return RUNNER_OF.get(kind, "agent")


class Task(Record):
    # the definition
    id: str
    title: str
    kind: str  # task | directive | blocker | command | experiment
    priority: str = "normal"
    attrs: dict = Factory(dict)
    line: int = 0
    source: str = "worklog"
    text: str = ""
    human_done: bool = False  # a checked box: done by a person
    # what the queue found (queue.order.build)
    status: str = "open"
    attempts: int = 0
    eligible: bool = False
    why: str = ""
    score: float = 0.0
    parts: list = Factory(list)
    forced: str = ""
    latest_run: str | None = None
    defer_until: str | None = None
    only_waits: bool = False  # ineligible only until a time (backoff, deferred): `wake --task` may run it
    held_by: str = ""  # what else keeps it from running, past any wait for a time
    next_due: str | None = None  # a recurring task ({every: 6h}): when it is due again (``queue.recurring``)
    recurs: str = ""  # a recurring task: the note its why begins with
    certainty: float = 0.0  # the certainty its score used (a posterior, with this host's history)
    certainty_evidence: dict | None = None  # {prior, prior_weight, done, attempts} (``scoring.Score.evidence``)

    DEFINITION = ("id", "title", "kind", "priority", "attrs", "line", "source", "text", "human_done")

    @classmethod
    def defined(cls, id: str, title: str, kind: str, priority: str, attrs: dict, line: int, source: str,
                text: str, human_done: bool) -> "Task":
        """``Task(id, title, ..., human_done)`` with what the queue finds at its defaults, without
        the general constructor's per-field work: a queue of a million tasks makes a million of
        them.  The one fast way to make a Task (``TaskTable.task``)."""
        t = cls.__new__(cls)
        t.__dict__ = {"id": id, "title": title, "kind": kind, "priority": priority, "attrs": attrs,
                      "line": line, "source": source, "text": text, "human_done": human_done,
                      **_FOUND, "parts": []}
        return t

    def to_dict(self) -> dict:
        """The definition, as the parse index stores it."""
        return {k: self.__dict__[k] for k in self.DEFINITION}

    @property
    def runner(self) -> str:
        return runner_of(self.kind)

    def to_json(self) -> dict:
        return {"id": self.id, "title": self.title, "kind": self.kind, "status": self.status,
                "score": self.score, "certainty": self.certainty, "certainty_evidence": self.certainty_evidence,
                "eligible": self.eligible, "why": self.why, "priority": self.priority,
                "runner": self.runner, "attempts": self.attempts, "line": self.line, "source": self.source,
                "after": self.attrs.get("after") or [], "run": self.attrs.get("run"),
                "gpu": bool(self.attrs.get("gpu")), "defer_until": self.defer_until,
                "latest_run": self.latest_run, "next_due": self.next_due,
                "parts": [{"part": label, "effect": effect} for label, effect in self.parts]}


# what the queue finds, at its defaults, in field order (``Task.defined`` gives ``parts`` a list of its own)
_FOUND = {k: v for k, v in Task._defaults.items() if k not in Task.DEFINITION}
