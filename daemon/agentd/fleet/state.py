"""What the last fleet sync saw, kept in ``<state_dir>/fleet.json`` (written whole, then renamed into place),
and how `agentd status` says it.  Imports nothing heavy: `status` reads it on its start-up path."""

from __future__ import annotations

import json
import os
import time


def path(cfg):
    return cfg.state_dir / "fleet.json"


def read(cfg) -> dict | None:
    """The last sync's record, or None (no sync yet, or the file unreadable)."""
    try:
        with open(path(cfg), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write(cfg, record: dict) -> None:
    """Replace the record (``write_file``; raises OSError)."""
    write_file(path(cfg), record)


def write_file(p, record: dict) -> None:
    """Replace a JSON file: a temporary file written and synced, then renamed over it (raises OSError)."""
    tmp = p.with_name(f".{p.name}.{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def describe(cfg) -> dict | None:
    """`status --json`'s ``fleet``: None when the worklog dir is no fleet clone, else the last sync's
    record (``at``, ``ok``, ``warning``, ``kind``, ``last_ok``, ``unpushed``, ``remote``, ``head``), or
    ``{"synced": false}`` before the first."""
    if not (cfg.worklog_dir / ".git").is_dir():
        return None
    return read(cfg) or {"at": None, "ok": None, "warning": "", "kind": "", "last_ok": None, "unpushed": 0}


def status_lines(info: dict | None, now: float | None = None) -> list[str]:
    """`agentd status`'s lines for the fleet (none when this is no fleet clone)."""
    from agentd.escapes import safe  # lazy: status imports it anyway; keeps this module's import free

    if not info:
        return []
    now = time.time() if now is None else now
    remote = safe(info.get("remote") or "the remote", 120)
    if not info.get("at"):
        return [f"fleet:     {remote}: not synced yet (the next wake syncs; `agentd sync` now)"]
    last_ok = info.get("last_ok")
    when = f"last synced {_ago(now - last_ok)} ago" if last_ok else "never synced"
    out = [f"fleet:     {remote}: {when}" + (f", {info['unpushed']} commit(s) not pushed yet" if info.get("unpushed")
                                              else "")]
    if info.get("warning"):
        out.append(f"warning:   fleet: {safe(info['warning'], 300)}")
    return out


def _ago(seconds: float) -> str:
    s = max(0, int(seconds))
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{s // n}{unit}"
    return f"{s}s"
