"""A task: one shape from the line or task file that defines it to the runner that runs it.

The definition (id, title, kind, priority, attrs and where it was written) comes
from ``lines.make_task``; the queue fills in the rest (status, score, why) when it
builds the queue, and the wake hands the same object to a runner.  A parsed
worklog keeps each definition as ``to_dict()`` (the parse index stores it as JSON).
"""

from __future__ import annotations

from agentd.recordtype import Factory, Record

AGENT_KINDS = ("task", "directive", "blocker")


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
    # what the queue found (queue.build)
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

    DEFINITION = ("id", "title", "kind", "priority", "attrs", "line", "source", "text", "human_done")

    def to_dict(self) -> dict:
        """The definition, as the parse index stores it."""
        return {k: self.__dict__[k] for k in self.DEFINITION}

    @property
    def runner(self) -> str:
        if self.kind == "command":
            return "command"
        if self.kind == "experiment":
            return "experiment"
        return "agent"

    def to_json(self) -> dict:
        return {"id": self.id, "title": self.title, "kind": self.kind, "status": self.status,
                "score": self.score, "eligible": self.eligible, "why": self.why, "priority": self.priority,
                "runner": self.runner, "attempts": self.attempts, "line": self.line, "source": self.source,
                "after": self.attrs.get("after") or [], "run": self.attrs.get("run"),
                "gpu": bool(self.attrs.get("gpu")), "defer_until": self.defer_until,
                "latest_run": self.latest_run,
                "parts": [{"part": label, "effect": effect} for label, effect in self.parts]}
