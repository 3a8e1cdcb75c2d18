"""``agentd report [-o FILE] [--since 30d] [--json]``: one self-contained HTML page of what agentd did
(``report.page.render``), or its numbers as JSON (``report.data.gather``); docs/report.md."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from agentd.cli.since import since_seconds
from agentd.errors import StateError, UsageError, WorklogError, io_error
from agentd.queue import queue
from agentd.report.data import gather as gather_data
from agentd.store.store import Store
from agentd.wake.lock import wake_running

DEFAULT_SINCE = "30d"


def gather(cfg, since_s: float, now: float | None = None) -> dict:
    """The report's numbers: the store opened read-only, the queue read as `agentd queue` reads it."""
    now = time.time() if now is None else now
    store = Store.read_only(cfg.store_path) if cfg.store_path.is_file() else None
    try:
        view = None
        if cfg.worklog_path.exists():
            try:
                view = queue.load(cfg, store, now=now, wake_running=wake_running(cfg))
            except WorklogError:
                view = None  # the rest of the report still stands on the store
        return gather_data(cfg, store, since_s, now, view)
    finally:
        if store is not None:
            store.close()


def write(path: Path, text: str) -> None:
    """``text`` to ``path`` atomically (a temporary file beside it, then renamed over it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        err = io_error(OSError(e.errno, e.strerror), str(path))  # (named by -o's path, not the temporary's)
        raise (err if err is not None else StateError(f"cannot write {path}: {e.strerror or e}")) from None


def run(cfg, args) -> int:
    since_s = since_seconds(args.since or DEFAULT_SINCE)
    if args.json and args.output:
        raise UsageError("--json prints the numbers; -o writes the page: give one of them")
    if args.json:
        sys.stdout.write(json.dumps(gather(cfg, since_s), indent=1, ensure_ascii=False) + "\n")
        return 0
    path = Path(args.output).expanduser() if args.output else cfg.state_dir / "report.html"
    if path.is_dir():
        raise UsageError(f"-o {path}: is a directory; give a file name")
    if args.output is None:
        cfg.ensure_state_dir()
    elif not path.parent.is_dir():
        raise UsageError(f"-o {path}: its directory {path.parent} does not exist")
    from agentd.report.page import render  # lazy: the page only for HTML

    write(path, render(gather(cfg, since_s)))
    print(path)
    return 0
