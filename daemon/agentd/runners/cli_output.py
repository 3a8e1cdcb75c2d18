"""What the coding-agent CLIs print, read into one shape.

``claude -p --output-format stream-json --verbose`` prints JSON lines of messages, the last a
result object (``--output-format json``: that object alone); ``codex exec --json`` prints JSON
lines of thread/turn/item events (the shapes, from the real programs, are in docs/agent.md and
tests/captures/).  Each parser returns a dict with ``usage``, ``text``, ``turns``, ``error``,
``cost``, ``acted``, ``limit``, ``retries``, ``model`` (the model that ran: claude's ``modelUsage``
names it; codex's ``--json`` stream does not, its session file does: ``codex_session_model``),
``tools`` (the CLI's own tool calls: ``calls``, ``failed`` and the ``first_error``, bounded and
escaped; ``all_failed`` says why a run whose every call failed is not done) and, for claude,
``api_error_status``, ``api_error`` and ``terminal_reason``.  The final message should end with
``STATUS: done|blocked|failed`` (``split_status``).  ``reset_at`` reads the reset time out of
either CLI's usage-limit text.
"""

from __future__ import annotations

import json
import os
import re
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from agentd.escapes import safe
from agentd.providers import Usage

_STATUS = re.compile(r"^\s*\**STATUS:?\**\s*(done|blocked|failed)\b.*$", re.I | re.M)


def split_status(text: str) -> tuple[str, str]:
    """('done', text) or the status named by the last STATUS: line, with that line removed."""
    matches = list(_STATUS.finditer(text or ""))
    if not matches:
        return "done", (text or "").strip()
    m = matches[-1]
    return m.group(1).lower(), (text[:m.start()] + text[m.end():]).strip()


def _blank() -> dict:
    return {"usage": Usage(), "text": "", "turns": 0, "error": None, "cost": None, "acted": False, "limit": None,
            "retries": 0, "model": None, "api_error_status": None, "api_error": None, "terminal_reason": None,
            "tools": {"calls": 0, "failed": 0, "first_error": None}}


# -- the CLIs' own tool calls -------------------------------------------------------------
ERROR_KEEP = 200  # characters of a tool's error kept in the reason
WHAT_KEEP = 80  # of the command (or path) it was given


def _tool_error(name: str, what, text) -> str:
    """``name `what`: text``, on one line, each part cut, every hidden character escaped."""
    what = " ".join(str(what).split()) if isinstance(what, str) and what.strip() else ""
    text = " ".join(str(text or "").split()) or "(no output)"
    head = f"{name} `{safe(what, WHAT_KEEP)}`" if what else name
    return f"{safe(head, WHAT_KEEP + 40)}: {safe(text, ERROR_KEEP)}"


def all_failed(tools: dict | None) -> str | None:
    """Why a CLI run whose every tool call (one at least) failed is not done, or None."""
    calls, failed = (tools or {}).get("calls") or 0, (tools or {}).get("failed") or 0
    if not calls or failed < calls:
        return None
    return f"every tool call failed ({failed} of {calls}); the first: {tools.get('first_error') or '(no message)'}"


def _claude_tools(events: list) -> dict:
    """From stream-json: each ``tool_use`` block of an assistant message is a call; a ``tool_result``
    block with ``is_error: true`` in a user message is its failure.  A call with no result (the run was
    stopped) has an unknown outcome and does not count as failed."""
    uses: dict[str, tuple[str, object]] = {}
    failed: list[str] = []
    first = None
    for ev in events:
        msg = ev.get("message") if isinstance(ev, dict) else None
        content = msg.get("content") if isinstance(msg, dict) else None
        if not isinstance(content, list):
            continue
        for b in content:
            if not isinstance(b, dict):
                continue
            if ev.get("type") == "assistant" and b.get("type") == "tool_use":
                args = b.get("input") if isinstance(b.get("input"), dict) else {}
                what = next((args[k] for k in ("command", "file_path", "path", "url", "pattern")
                             if isinstance(args.get(k), str)), None)
                uses[str(b.get("id"))] = (str(b.get("name") or "tool"), what)
            elif ev.get("type") == "user" and b.get("type") == "tool_result" and b.get("is_error") is True:
                tid = str(b.get("tool_use_id"))
                if tid in failed:
                    continue
                failed.append(tid)
                if first is None:
                    body = b.get("content")
                    if isinstance(body, list):
                        body = " ".join(str(x.get("text") or "") for x in body if isinstance(x, dict))
                    first = _tool_error(*uses.get(tid, ("tool", None)), body)
    return {"calls": len(set(uses) | set(failed)), "failed": len(failed), "first_error": first}


CODEX_TOOLS = ("command_execution", "file_change", "mcp_tool_call", "web_search")


def _codex_tool_failed(item: dict) -> str | None:
    """A finished codex tool item's error, or None when it worked: a command with a nonzero
    ``exit_code``, any item whose ``status`` is ``failed`` or ``declined``."""
    code, status = item.get("exit_code"), item.get("status")
    if item.get("type") == "command_execution" and isinstance(code, int) and code != 0:
        return _tool_error("command", item.get("command"), f"exit {code}: {item.get('aggregated_output') or ''}")
    if status in ("failed", "declined"):
        err = item.get("error") if isinstance(item.get("error"), dict) else {}
        what = item.get("command") or item.get("tool") or item.get("query")
        return _tool_error(str(item.get("type")), what, err.get("message") or status)
    return None


def _int(v) -> int:
    try:
        return int(v or 0)
    except (TypeError, ValueError):
        return 0


def parse_claude(out: str) -> dict:
    """``claude -p --output-format stream-json``: the last ``result`` line, and the tool calls of the
    messages before it (``json``: the result object alone, which says nothing of the tool calls).

    Claude exits 1 whenever ``is_error`` is true, so the exit code says nothing the object doesn't.
    Its top-level ``usage`` leaves out the call that crossed a budget: the run's totals are the sum
    of ``modelUsage`` (per model), with the top-level ``usage`` only where that is empty.
    """
    res = _blank()
    data = None
    try:
        data = json.loads(out)
    except (ValueError, RecursionError):
        lines = [ln for ln in out.splitlines() if ln.strip().startswith("{")]
        events = []
        for ln in lines:
            try:
                events.append(json.loads(ln))
            except (ValueError, RecursionError):
                pass
        if events:
            data = events
        else:
            res["error"] = f"not JSON: {out.strip()[:300]}" if out.strip() else None
            return res
    if isinstance(data, list):
        res["retries"] = sum(1 for d in data if isinstance(d, dict) and d.get("subtype") == "api_retry")
        res["tools"] = _claude_tools(data)
        data = next((d for d in reversed(data) if isinstance(d, dict) and d.get("type") == "result"), {})
    if not isinstance(data, dict) or not data:
        res["error"] = "unexpected JSON from claude (no result object)"
        return res
    u = data.get("usage") or {}
    usage = Usage(input=_int(u.get("input_tokens")), output=_int(u.get("output_tokens")),
                  cache_read=_int(u.get("cache_read_input_tokens")),
                  cache_write=_int(u.get("cache_creation_input_tokens")))
    by_model = {k: m for k, m in (data.get("modelUsage") or {}).items() if isinstance(m, dict)}
    per_model = list(by_model.values())
    if by_model:  # the model that did most of the run (claude may call a small one besides)
        res["model"] = max(by_model, key=lambda k: (float(by_model[k].get("costUSD") or 0),
                                                    _int(by_model[k].get("outputTokens"))))
    if per_model:
        usage = Usage(input=sum(_int(m.get("inputTokens")) for m in per_model),
                      output=sum(_int(m.get("outputTokens")) for m in per_model),
                      cache_read=sum(_int(m.get("cacheReadInputTokens")) for m in per_model),
                      cache_write=sum(_int(m.get("cacheCreationInputTokens")) for m in per_model))
    res["usage"] = usage
    errors = [str(e) for e in (data.get("errors") or []) if e]
    res["text"] = str(data.get("result") or "")
    res["turns"] = _int(data.get("num_turns"))
    res["acted"] = res["turns"] > 1 or res["tools"]["calls"] > 0  # a plain answer is one turn; each tool round trip adds one
    if data.get("total_cost_usd") is not None:
        res["cost"] = float(data["total_cost_usd"])
    elif per_model and all(m.get("costUSD") is not None for m in per_model):
        res["cost"] = sum(float(m["costUSD"]) for m in per_model)
    res["api_error_status"] = data.get("api_error_status")
    res["api_error"] = data.get("api_error")
    res["terminal_reason"] = data.get("terminal_reason")
    subtype = str(data.get("subtype") or "")
    if subtype == "error_max_turns" or res["terminal_reason"] == "max_turns":
        res["limit"] = "max_turns"
    elif subtype == "error_max_budget_usd" or res["terminal_reason"] == "budget_exhausted":
        res["limit"] = "max_budget"
    elif data.get("is_error") or subtype.startswith("error"):
        res["error"] = res["text"] or "; ".join(errors) or subtype or "claude reported an error"
    return res


def parse_codex(out: str) -> dict:
    """``codex exec --json``: JSON lines of thread/turn/item events (its tool calls: ``CODEX_TOOLS`` items).

    Codex prints an ``error`` event for each retry ("Reconnecting... 1/5 (...)") and goes on:
    only ``turn.failed``, or a run that never reached ``turn.completed``, is a failure.
    """
    res = _blank()
    inp = cached = written = outp = 0
    completed = False
    last_error = None
    calls: set = set()
    failed: list[str] = []
    for line in out.splitlines():
        try:
            ev = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if not isinstance(ev, dict):
            continue
        kind = ev.get("type")
        item = ev.get("item") if isinstance(ev.get("item"), dict) else {}
        if kind == "item.completed" and item.get("type") == "agent_message":
            res["text"] = str(item.get("text") or "")
        elif kind in ("item.started", "item.completed") and item.get("type") in CODEX_TOOLS:
            res["acted"] = True
            calls.add(str(item.get("id")))
            if kind == "item.completed" and (why := _codex_tool_failed(item)) and str(item.get("id")) not in failed:
                failed.append(str(item.get("id")))
                res["tools"]["first_error"] = res["tools"]["first_error"] or why
        elif kind == "turn.completed":
            completed = True
            res["turns"] += 1
            u = ev.get("usage") or {}
            inp += _int(u.get("input_tokens"))
            cached += _int(u.get("cached_input_tokens"))
            written += _int(u.get("cache_write_input_tokens"))
            outp += _int(u.get("output_tokens"))
        elif kind == "turn.failed":
            err = ev.get("error") if isinstance(ev.get("error"), dict) else {}
            res["error"] = str(err.get("message") or "turn.failed")
        elif kind == "error":
            msg = str(ev.get("message") or "error")
            if msg.startswith("Reconnecting..."):
                res["retries"] += 1
            last_error = msg
    res["tools"].update(calls=len(calls), failed=len(failed))
    if res["error"] is None and not completed:
        res["error"] = last_error or ("codex printed no turn.completed" if out.strip() else None)
    # input_tokens includes the cached part; cache writes are reported besides it
    res["usage"] = Usage(input=max(0, inp - cached - written), cache_read=cached, cache_write=written, output=outp)
    return res


SESSION_TAIL = 4 << 20  # bytes read from the end of each codex session file
SESSION_FILES = 8  # the newest session files read


def session_lines(codex_home, marker: str):
    """The lines holding ``marker`` of codex's session files under ``CODEX_HOME/sessions``, oldest file
    first.  The sandboxed CLI (and so its model) can write there: only regular files are read (a FIFO
    would hang the wake; a link is not followed), the last ``SESSION_FILES`` of them, and of each its
    last ``SESSION_TAIL`` bytes."""
    files = sorted((Path(codex_home) / "sessions").glob("**/rollout-*.jsonl"))[-SESSION_FILES:]
    for f in files:
        try:
            fd = os.open(f, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                continue
            os.lseek(fd, max(0, st.st_size - SESSION_TAIL), os.SEEK_SET)
            text = os.read(fd, SESSION_TAIL).decode("utf-8", "replace")
        except OSError:
            continue
        finally:
            os.close(fd)
        yield from (line for line in text.splitlines() if marker in line)


def json_line(line: str):
    """A JSON line, or None: not JSON, or nested too deep to read (``RecursionError``)."""
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


def codex_session_model(codex_home) -> str | None:
    """The model codex ran, from the last ``turn_context`` of its session file(s) under
    ``CODEX_HOME/sessions`` (``--json`` prints no model name; codex 0.171.0)."""
    model = None
    for line in session_lines(codex_home, '"turn_context"'):
        ev = json_line(line)
        payload = ev.get("payload") if isinstance(ev, dict) else None
        named = payload.get("model") if isinstance(payload, dict) else None
        if isinstance(named, str) and named:
            model = named
    return model


# -- usage-limit texts -------------------------------------------------------------------
_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                       "nov", "dec"), 1)}
# claude: "You've hit your 5-hour limit · resets Mar 17, 2030, 5:46pm (UTC)"; same day: "resets 12:39pm (UTC)"
_CLAUDE_RESET = re.compile(r"resets\s+(?:(?P<mon>[A-Z][a-z]{2})[a-z]*\s+(?P<day>\d{1,2}),?\s+(?P<year>\d{4}),?\s+)?"
                           r"(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?P<ap>[ap]m)\s*(?:\((?P<tz>[^)]+)\))?", re.I)
# codex: "... try again at Mar 17th, 2030 5:46 PM."; same day: "Try again at 12:39 PM."
_CODEX_RESET = re.compile(r"try again at\s+(?:(?P<mon>[A-Z][a-z]{2})[a-z]*\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+"
                          r"(?P<year>\d{4}),?\s+)?(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?P<ap>[AP]M)", re.I)
USAGE_LIMIT = re.compile(r"you(?:'|’)ve hit your .*limit|usage limit", re.I)


def _zone(name: str | None):
    if not name:
        return None
    if name.upper() in ("UTC", "GMT", "Z"):
        return timezone.utc
    try:
        return ZoneInfo(name)
    except Exception:  # noqa: BLE001 - an unknown zone name is read as local time
        return None


def reset_at(text: str, tz: str | None = None, now: datetime | None = None) -> datetime | None:
    """The reset time in a usage-limit text of either CLI, as an aware UTC datetime, or None.

    The texts name minutes only, so the time is rounded up to the next minute (the limit is over
    then).  Claude names the zone in brackets; codex names none: it prints the local time of its
    ``TZ`` (``tz``; unset: this host's zone).  A time without a date is the next such time from now.
    """
    m = _CLAUDE_RESET.search(text or "") or _CODEX_RESET.search(text or "")
    if not m:
        return None
    zone = _zone(m.groupdict().get("tz")) or _zone(tz) or datetime.now().astimezone().tzinfo
    hour = int(m.group("h")) % 12 + (12 if m.group("ap").lower() == "pm" else 0)
    minute = int(m.group("m") or 0)
    now = (now or datetime.now(timezone.utc)).astimezone(zone)
    try:
        if m.group("year"):
            month = _MONTHS.get(m.group("mon")[:3].lower())
            if not month:
                return None
            local = datetime(int(m.group("year")), month, int(m.group("day")), hour, minute, tzinfo=zone)
        else:
            local = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if local + timedelta(minutes=1) < now:
                local += timedelta(days=1)
    except ValueError:
        return None
    return (local + timedelta(minutes=1)).astimezone(timezone.utc)
