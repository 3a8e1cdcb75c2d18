"""The commands that append a person's line to the worklog: `agentd directive`, `add`, `approve` and
`deny`.  Each checks the line reads back as meant before it is appended (``worklog.append``)."""

from __future__ import annotations

import json
import os

from agentd.agent.approvals import answer_to, answered_line, bound_path, describe
from agentd.cli.commands import _cfg, _no_worklog
from agentd.errors import UsageError
from agentd.escapes import safe
from agentd.store.store import Store
from agentd.worklog import lines, worklog
from agentd.worklog.attrs import fast_flow_mapping
from agentd.worklog.lines import MAX_REASON
from agentd.worklog.worklog import read_with_lost


def _append_human(cfg, line: str) -> None:
    if not cfg.worklog_path.exists():
        raise UsageError("\n".join(_no_worklog(cfg)))
    try:
        item = lines.parse_line(line, 0)
    except lines.LineError as e:
        raise UsageError(f"that would not be a valid line: {e}") from None
    worklog.append(cfg.worklog_path, line + "\n")

    print(f"appended to {cfg.worklog_path}: {safe(line)}")  # (the file has the line as typed)
    if item is not None and hasattr(item, "id"):
        print(f"task id: {safe(item.id)}")


def _one_line(text: str, what: str) -> str:
    if any(c in text for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"):
        raise UsageError(f"the {what} must be one line")
    if any(ord(c) < 32 and c != "\t" or 0x7f <= ord(c) < 0xa0 for c in text):
        raise UsageError(f"the {what} contains control characters (e.g. terminal escape sequences)")
    if not text.strip():
        raise UsageError(f"the {what} is empty")
    return text.strip()


def _yaml_value(v) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, list):
        return "[" + ", ".join(_yaml_value(x) for x in v) + "]"
    if isinstance(v, str) and fast_flow_mapping("{k: " + v + "}") == {"k": v}:
        return v  # plain scalar that reads back as itself
    return json.dumps(v)


def _attrs(pairs: dict) -> str:
    items = [f"{k}: {_yaml_value(v)}" for k, v in pairs.items() if v is not None and v is not False and v != []]
    return " {" + ", ".join(items) + "}" if items else ""


def cmd_directive(args) -> int:
    cfg = _cfg()
    text = _one_line(args.text, "directive")
    if args.priority == "critical":
        line = f"**CRITICAL DIRECTIVE**: {text}"
    else:
        line = f"DIRECTIVE: {text}" + _attrs({"priority": args.priority if args.priority != "normal" else None})
    if line.endswith(text) and text.endswith("}"):
        line += " {}"  # keep a trailing {...} in the text from being read as attrs
    _append_human(cfg, line)
    return 0


def cmd_add(args) -> int:
    cfg = _cfg()
    title = _one_line(args.title, "title")
    if args.run is not None:
        _one_line(args.run, "command")
    attrs = _attrs({"id": args.id, "run": args.run, "value": args.value, "certainty": args.certainty,
                    "gpu": args.gpu, "after": args.after, "minutes": args.minutes})
    if title.endswith("}") and not attrs:
        attrs = " {}"
    _append_human(cfg, f"- [ ] {title}{attrs}")
    return 0


def cmd_approve(args) -> int:
    return _answer("approve", args.approval_id, "", getattr(args, "dir", None) or "")


def cmd_deny(args) -> int:
    reason = _one_line(" ".join(args.reason), "reason") if args.reason else ""
    if len(reason) > MAX_REASON:
        raise UsageError(f"the reason is {len(reason)} characters long; the agent reads at most {MAX_REASON}: "
                         "shorten it")
    return _answer("deny", args.approval_id, reason)


def _answer(verb: str, approval_id: str, reason: str, where: str = "") -> int:
    """Append the answer line (the worklog stays the one mailbox); say which request it answers, whole.
    ``where``: the directory an approved command runs in (refused if an agent can write it)."""
    approval_id = approval_id.lower()
    cfg = _cfg()
    store = Store(cfg.store_path) if cfg.store_path.exists() else None
    row = store.approval(approval_id) if store is not None else None
    if row is None:
        raise UsageError(f"no approval request {approval_id!r}; `agentd status` lists the open ones")
    if row["answer"] is not None:
        raise UsageError(f"{approval_id} was already answered ({row['answer']} at {row['answered_at']})")

    if where:
        if row["kind"] != "command":
            raise UsageError(f"--dir is for a command to run; {approval_id} asks for {row['kind']}")
        real, why = bound_path(cfg, store, cfg.workspace, os.path.abspath(where))
        if why is None and not os.path.isdir(real):
            why = f"{real} is not a directory"
        if why:
            raise UsageError(f"--dir {where}: {why}; name a directory no agent can write")
        where, row = real, {**row, "dir": real}
    earlier = answer_to(store, read_with_lost(cfg)[0].state.answers, row)
    if earlier is not None:  # answered in the worklog; no wake has taken it in yet
        raise UsageError(f"{approval_id} is already answered: {earlier[0].upper()} on line {earlier[2]} of "
                         f"{cfg.worklog_path} (until a wake takes it in, edit that line to change the answer)")
    _append_human(cfg, answered_line(verb, approval_id, reason, where).rstrip("\n"))

    # (the model's `what`, whole: every control, bidi and invisible character and each run of spaces shown)
    print(f"{'approved' if verb == 'approve' else 'denied'} {safe(describe(row), spaces=True)}; the next wake "
          f"resumes run {row['run_id']} (`agentd wake --now` to do it now)")
    return 0
