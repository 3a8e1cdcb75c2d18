"""Keep the conversation inside the model's context window.

When the estimated prompt passes ``context_share`` of the model's window
(``providers.context_window``), first the results of older tool calls are
cleared (all but the last ``KEEP_RESULTS``); if that is not enough, the
oldest half of the conversation after the opening message is summarised by
the model into one message.  Both are recorded as a ``CompactStep``, so a
resumed run sees the same conversation.  A ``ContextOverflow`` from the
provider forces both stages.
"""

from __future__ import annotations

import json
from typing import Callable

from agentd.agent.checkpoints import Checkpoints, CompactStep, ModelStep, ToolStep, UserStep
from agentd.prompts import render
from agentd.providers import Message, Response, context_window

KEEP_RESULTS = 2
CHARS_PER_TOKEN = 3.5
TOOLS_OVERHEAD = 600  # tokens for the tool definitions


def estimate_tokens(system: str, messages: list[Message]) -> int:
    chars = len(system) + sum(len(m.text) + sum(len(json.dumps(c.args)) + 40 for c in m.tool_calls) + 20
                              for m in messages)
    return int(chars / CHARS_PER_TOKEN) + TOOLS_OVERHEAD


def limit(cfg, model: str) -> int:
    return int(cfg["context_share"] * context_window(cfg, model))


def needed(cfg, model: str, cp: Checkpoints) -> bool:
    return estimate_tokens(cp.system, cp.messages()) > limit(cfg, model)


def compact(cfg, model: str, cp: Checkpoints, ask: Callable[[str, list[Message]], Response],
            force: bool = False) -> bool:
    """Shrink the conversation; True if anything changed."""
    changed = False
    tool_ns = [n for n, s in cp.steps if isinstance(s, ToolStep)]
    if len(tool_ns) > KEEP_RESULTS:
        clear_before = tool_ns[-KEEP_RESULTS]
        if clear_before > max((c.clear_before for c in cp.of(CompactStep)), default=0):
            cp.add(CompactStep(clear_before=clear_before))
            changed = True
    if not force and not needed(cfg, model, cp):
        return changed
    cut = _cut(cp)
    if cut is None:
        return changed
    done = max((c.summary_upto for c in cp.of(CompactStep)), default=0)
    lower = max(done, _opening(cp) + 1)
    part = [(n, s) for n, s in cp.steps if lower <= n < cut]
    resp = ask(render("compact.md", transcript=_plain(part)), [Message("user", "Write the summary now.")])
    earlier = next((c.summary for c in reversed(cp.of(CompactStep)) if c.summary), None)
    summary = f"{earlier}\n\n{resp.text}" if earlier else resp.text
    cp.add(CompactStep(clear_before=max((c.clear_before for c in cp.of(CompactStep)), default=0),
                       summary=summary.strip() or "(empty summary)", summary_upto=cut))
    return True


def _opening(cp: Checkpoints) -> int:
    return next(n for n, s in cp.steps if isinstance(s, UserStep))


def _cut(cp: Checkpoints) -> int | None:
    """A model turn near the middle of the live conversation to summarise up to."""
    done = max((c.summary_upto for c in cp.of(CompactStep)), default=0)
    turns = [n for n, s in cp.steps if isinstance(s, ModelStep) and n > done]
    if len(turns) < 3:
        return None
    return turns[len(turns) // 2]


def _plain(part: list) -> str:
    return "\n".join(line for _, s in part for line in s.plain())
