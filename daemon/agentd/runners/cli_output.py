"""What the coding-agent CLIs print, read into one shape.

``claude -p --output-format json`` prints one result object; ``codex exec --json``
prints JSON lines of thread/turn/item events.  Each parser returns a dict with
``usage``, ``text``, ``turns``, ``error``, ``cost``, ``acted`` and ``limit``.
The final message should end with ``STATUS: done|blocked|failed`` (``split_status``).
"""

from __future__ import annotations

import json
import re

from agentd.providers import Usage

_STATUS = re.compile(r"^\s*\**STATUS:?\**\s*(done|blocked|failed)\b.*$", re.I | re.M)


def split_status(text: str) -> tuple[str, str]:
    """('done', text) or the status named by the last STATUS: line, with that line removed."""
    matches = list(_STATUS.finditer(text or ""))
    if not matches:
        return "done", (text or "").strip()
    m = matches[-1]
    return m.group(1).lower(), (text[:m.start()] + text[m.end():]).strip()


def parse_claude(out: str) -> dict:
    """``claude -p --output-format json``: one result object (or a list holding one)."""
    res = {"usage": Usage(), "text": "", "turns": 0, "error": None, "cost": None, "acted": True, "limit": None}
    try:
        data = json.loads(out)
    except ValueError:
        res["error"] = f"not JSON: {out.strip()[:300]}" if out.strip() else None
        return res
    if isinstance(data, list):
        data = next((d for d in reversed(data) if isinstance(d, dict) and d.get("type") == "result"), {})
    if not isinstance(data, dict):
        res["error"] = "unexpected JSON from claude"
        return res
    u = data.get("usage") or {}
    res["usage"] = Usage(input=int(u.get("input_tokens") or 0), output=int(u.get("output_tokens") or 0),
                         cache_read=int(u.get("cache_read_input_tokens") or 0),
                         cache_write=int(u.get("cache_creation_input_tokens") or 0))
    res["text"] = str(data.get("result") or "")
    res["turns"] = int(data.get("num_turns") or 0)
    res["acted"] = res["turns"] > 1
    if data.get("total_cost_usd") is not None:
        res["cost"] = float(data["total_cost_usd"])
    subtype = str(data.get("subtype") or "")
    if subtype == "error_max_turns":
        res["limit"] = "max_turns"
    elif "budget" in subtype:
        res["limit"] = "max_budget"
    elif data.get("is_error") or subtype.startswith("error"):
        res["error"] = res["text"] or subtype or "claude reported an error"
    return res


def parse_codex(out: str) -> dict:
    """``codex exec --json``: JSON lines of thread/turn/item events."""
    res = {"usage": Usage(), "text": "", "turns": 0, "error": None, "cost": None, "acted": False, "limit": None}
    inp = cached = outp = 0
    for line in out.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if not isinstance(ev, dict):
            continue
        kind = ev.get("type")
        item = ev.get("item") or {}
        if kind == "item.completed" and item.get("type") == "agent_message":
            res["text"] = str(item.get("text") or "")
        elif kind == "item.completed" and item.get("type") in ("command_execution", "file_change", "mcp_tool_call"):
            res["acted"] = True
        elif kind == "turn.completed":
            res["turns"] += 1
            u = ev.get("usage") or {}
            inp += int(u.get("input_tokens") or 0)
            cached += int(u.get("cached_input_tokens") or 0)
            outp += int(u.get("output_tokens") or 0)
        elif kind in ("turn.failed", "error"):
            err = ev.get("error") if isinstance(ev.get("error"), dict) else ev
            res["error"] = str(err.get("message") or kind)
    res["usage"] = Usage(input=max(0, inp - cached), cache_read=cached, output=outp)
    return res
