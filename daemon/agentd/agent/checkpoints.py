"""The agent's conversation as a list of steps (records), checkpointed in the store.

Each step is one row of the store's ``steps`` table, written (SQLite WAL,
synchronous=FULL) before the loop takes its next action.  A tool call is
written as ``started`` before it runs and ``done`` after; on resume a call
left ``started`` is never run again: its result becomes ``UNKNOWN_OUTCOME``
for the model to check.  ``messages()`` renders the steps as the
provider-neutral conversation, applying compaction; ``transcript_lines``
renders them for ``agentd show``.
"""

from __future__ import annotations

import json
from typing import ClassVar

from agentd.providers import CUT_REASONS, Message, ToolCall
from agentd.recordtype import Factory, Record

UNKNOWN_OUTCOME = "unknown outcome: agentd was interrupted while this ran; check before re-running"
CLEARED = "[output cleared to save context: {n} characters]"


def _snip(text: str, limit: int = 300) -> list[str]:
    lines = (text or "").splitlines() or [""]
    first = lines[:6]
    if len(lines) > 6:
        first.append(f"... ({len(lines) - 6} more lines)")
    return [line[:limit] for line in first]


def _labelled(label: str, text: str) -> list[str]:
    return [label + x if i == 0 else "    " + x for i, x in enumerate(_snip(text))]


class Step(Record):
    """What every step can do: render itself as messages for the model (``to_messages``), as lines
    of ``agentd show`` (``transcript``), and as text for the compaction summary (``plain``)."""
    kind: ClassVar[str] = ""

    def to_messages(self, n: int, clear_before: int) -> list[Message]:
        return []

    def transcript(self, n: int) -> list[str]:
        return []

    def plain(self) -> list[str]:
        return []


class SystemStep(Step):
    kind: ClassVar[str] = "system"
    text: str

    def transcript(self, n: int) -> list[str]:
        return [f"#{n} system prompt ({len(self.text)} characters)"]


class UserStep(Step):
    kind: ClassVar[str] = "user"
    text: str

    def to_messages(self, n: int, clear_before: int) -> list[Message]:
        return [Message("user", self.text)]

    def transcript(self, n: int) -> list[str]:
        return _labelled(f"#{n} user: ", self.text)

    def plain(self) -> list[str]:
        return [f"user: {self.text}"]


class ModelStep(Step):
    kind: ClassVar[str] = "model"
    text: str
    tool_calls: list[ToolCall] = Factory(list)
    provider: str = ""
    model: str = ""
    stop: str = ""  # the API's stop reason ("length" / "max_tokens": the reply was cut off)

    def to_messages(self, n: int, clear_before: int) -> list[Message]:
        return [Message("assistant", self.text, list(self.tool_calls))]

    def transcript(self, n: int) -> list[str]:
        out = _labelled(f"#{n} model: ", self.text) if self.text else [f"#{n} model ({self.provider} {self.model})"]
        if self.stop in CUT_REASONS:
            out.append(f"    [cut off: stop reason {self.stop}]")
        for c in self.tool_calls:
            arg = c.args.get("command") or c.args.get("path") or c.args.get("status") or ""
            out.append(f"    -> {c.name} {str(arg).splitlines()[0][:200] if arg else ''}".rstrip())
        return out

    def plain(self) -> list[str]:
        return [f"assistant: {self.text}"] + [f"assistant calls {c.name} {json.dumps(c.args)[:1000]}"
                                              for c in self.tool_calls]


class ToolStep(Step):
    kind: ClassVar[str] = "tool"
    call_id: str
    name: str
    args: dict
    result: str | None = None
    is_error: bool = False
    status: str = "started"  # started | done | waiting (request_approval, until a person answers)

    def to_messages(self, n: int, clear_before: int) -> list[Message]:
        text = self.result or ""
        if n < clear_before and len(text) > 200:
            text = CLEARED.format(n=len(text))
        return [Message("tool", text, call_id=self.call_id, is_error=self.is_error)]

    def transcript(self, n: int) -> list[str]:
        tag = {"started": "started, no result", "waiting": "waiting for a person"}.get(
            self.status, "error" if self.is_error else "ok")
        return [f"#{n} {self.name} [{tag}]"] + (["    " + x for x in _snip(self.result)] if self.result else [])

    def plain(self) -> list[str]:
        return [f"{self.name} result: {(self.result or '')[:2000]}"]


class CompactStep(Step):
    kind: ClassVar[str] = "compact"
    clear_before: int = 0  # tool results of steps before this one are cleared
    summary: str | None = None  # replaces the steps between the opening message and summary_upto
    summary_upto: int = 0

    def transcript(self, n: int) -> list[str]:
        done = ([f"tool results before #{self.clear_before} cleared"] if self.clear_before else []) + \
               ([f"steps before #{self.summary_upto} summarised"] if self.summary else [])
        return [f"#{n} compacted: {', '.join(done)}"]


class ReviewStep(Step):
    kind: ClassVar[str] = "review"
    verdict: str  # approve | object
    text: str

    def to_messages(self, n: int, clear_before: int) -> list[Message]:
        return [Message("user", self.text)] if self.verdict == "object" else []

    def transcript(self, n: int) -> list[str]:
        return [f"#{n} review: {self.verdict}: {self.text.splitlines()[0][:200] if self.text else ''}"]


class FinalStep(Step):
    kind: ClassVar[str] = "final"
    status: str  # done | blocked | failed, as the model ended the run
    summary: str

    def transcript(self, n: int) -> list[str]:
        return _labelled(f"#{n} {self.status}: ", self.summary)


KINDS = {c.kind: c for c in (SystemStep, UserStep, ModelStep, ToolStep, CompactStep, ReviewStep, FinalStep)}


def _from_row(kind: str, payload: dict):
    if kind == "model":
        payload = {**payload, "tool_calls": [ToolCall(**c) for c in payload.get("tool_calls", [])]}
    return KINDS[kind](**payload)


class Checkpoints:
    def __init__(self, store, run_id: str):
        self.store, self.run_id = store, run_id
        self.steps: list[tuple[int, object]] = [(r["n"], _from_row(r["kind"], r["payload"]))
                                                for r in store.steps(run_id)]

    def add(self, step) -> int:
        n = self.steps[-1][0] + 1 if self.steps else 0
        self._put(n, step)
        self.steps.append((n, step))
        return n

    def update(self, n: int, step) -> None:
        self._put(n, step)
        self.steps = [(m, step if m == n else s) for m, s in self.steps]

    def _put(self, n: int, step) -> None:
        self.store.put_step(self.run_id, n, step.kind, step.to_dict(), getattr(step, "status", "done"))

    @property
    def next_n(self) -> int:
        return self.steps[-1][0] + 1 if self.steps else 0

    def of(self, cls) -> list:
        return [s for _, s in self.steps if isinstance(s, cls)]

    @property
    def system(self) -> str:
        return self.of(SystemStep)[0].text

    def last(self):
        return self.steps[-1][1] if self.steps else None

    def recover(self) -> list[ToolStep]:
        """Tool calls left ``started`` by a crash become done with an unknown outcome."""
        lost = []
        for n, s in self.steps:
            if isinstance(s, ToolStep) and s.status == "started":
                s.result, s.is_error, s.status = UNKNOWN_OUTCOME, True, "done"
                self.update(n, s)
                lost.append(s)
        return lost

    def pending_calls(self) -> list[ToolCall]:
        """Calls of the last model turn that have no result yet, finish last."""
        i = max((k for k, (_, s) in enumerate(self.steps) if isinstance(s, ModelStep)), default=None)
        if i is None:
            return []
        answered = {s.call_id for _, s in self.steps[i + 1:] if isinstance(s, ToolStep)}
        calls = [c for c in self.steps[i][1].tool_calls if c.id not in answered]
        return sorted(calls, key=lambda c: c.name == "finish")

    def accepted(self) -> FinalStep | None:
        """How the model ended this run, if it already did (agentd died before the wake recorded it)."""
        last = self.last()
        return last if isinstance(last, FinalStep) else None

    def used_tools(self) -> list[ToolStep]:
        return [s for s in self.of(ToolStep) if s.name != "finish"]

    def messages(self) -> list[Message]:
        """The conversation for the model: each step's own messages, less what compaction replaced."""
        compacts = self.of(CompactStep)
        clear_before = max((c.clear_before for c in compacts), default=0)
        summary = next((c for c in reversed(compacts) if c.summary), None)
        opening = next((n for n, s in self.steps if s.kind == UserStep.kind), None)
        out: list[Message] = []
        for n, s in self.steps:
            if summary and opening < n < summary.summary_upto:
                continue
            out += s.to_messages(n, clear_before)
            if n == opening and summary:
                out.append(Message("user", f"Summary of the earlier part of this run:\n{summary.summary}"))
        return out


def transcript_lines(store, run_id: str) -> list[str]:
    """The run's conversation and exchanges as plain lines, for ``agentd show RUN``."""
    out: list[str] = []
    for n, s in Checkpoints(store, run_id).steps:
        out += s.transcript(n)
    ex = store.exchanges(run_id)
    if ex:
        # input tokens as `agentd runs` counts them: every prompt token, cache reads and writes included
        cache = sum(e["cache_read_tokens"] or 0 for e in ex)
        written = sum(e["cache_write_tokens"] or 0 for e in ex)
        tin = sum(e["input_tokens"] for e in ex) + cache + written
        tout = sum(e["output_tokens"] for e in ex)
        cost = sum(e["cost_usd"] for e in ex)
        errors = sum(1 for e in ex if e["error"])
        out.append(f"{len(ex)} model calls ({errors} failed): {tin} input tokens ({cache} read from cache, "
                   f"{written} written to it), {tout} output, ${cost:.4f}")
    return out
