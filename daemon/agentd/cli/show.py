"""``agentd show``: one run as the store, its run directory and its transcript tell it."""

from __future__ import annotations

from agentd.agent.checkpoints import transcript_lines
from agentd.escapes import safe
from agentd.workspace.rundir import read_progress


def describe(store, run: dict) -> dict:
    """The run's row, progress, worklog entries, failed model calls and transcript."""
    findings = [dict(e) for e in store.entries() if e["run_id"] == run["run_id"]]
    info = {"run": run, "progress": read_progress(run.get("run_dir")),
            "entries": [{"seq": e["seq"], "status": e["status"], "text": e["text"]} for e in findings],
            "exchanges": len(store.exchanges(run["run_id"])),
            "failed_calls": [{"at": x["created_at"], "provider": x["provider"], "model": x["model"],
                              "error": x["error"]} for x in store.exchanges(run["run_id"]) if x.get("error")]}
    info["transcript"] = transcript_lines(store, run["run_id"])
    return info


def describe_text(info: dict) -> list[str]:
    """``describe``'s answer as the lines `agentd show` prints."""
    r = info["run"]
    out = [f"run {r['run_id']}: {r['status']}" + (f" ({safe(r['reason'])})" if r.get("reason") else "")]
    for k in ("task_id", "title", "kind", "provider", "started_at", "duration_s", "exit_code", "input_tokens",
              "output_tokens", "cost_usd", "defer_until", "run_dir"):
        if r.get(k) is not None:
            v = f"{r[k]:.4f}" if k == "cost_usd" else f"{r[k]:.1f}" if k == "duration_s" else str(r[k])
            out.append(f"  {k:<14} {safe(v)}")
    p = info.get("progress")
    if p:
        out.append(safe(f"  progress       {p.get('status')} · phase {p.get('current_phase')} · "
                        f"done: {', '.join(map(str, p.get('phases_completed', []))) or '-'}"))
    for e in info["entries"]:
        out.append("")
        out.append(f"worklog entry #{e['seq']} ({e['status']}):")
        out += [safe(line) for line in e["text"].rstrip("\n").split("\n")]
    if info.get("failed_calls"):
        out.append("")
        out.append(f"failed model calls ({len(info['failed_calls'])}):")
        out += [f"  {c['at']} {c['provider']} {c['model']}: {safe(c['error'], 300)}" for c in info["failed_calls"]]
    if info.get("transcript"):
        out.append("")
        out.append(f"transcript ({info['exchanges']} model calls):")
        out += [safe(line) for line in info["transcript"]]
    return out
