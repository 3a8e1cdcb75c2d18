"""``agentd report [-o FILE] [--since 30d] [--json] [--fleet]``: one self-contained HTML page of what agentd did
(``report.page.render``), or its numbers as JSON (``report.data.gather``); docs/report.md."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

from agentd.cli.since import since_seconds
from agentd.config import worklogdir
from agentd.errors import StateError, UsageError, WorklogError, io_error
from agentd.queue import queue
from agentd.report.data import gather as gather_data
from agentd.report.fleet import gather as fleet_data
from agentd.store.migrations import MIGRATIONS, migrate
from agentd.store.store import Store
from agentd.store.storedb import Tx
from agentd.wake.lock import wake_running

DEFAULT_SINCE = "30d"


def gather(cfg, since_s: float, now: float | None = None, fleet: bool = False) -> dict:
    """The report's numbers: the store as ``open_store`` opens it, the queue read as `agentd queue` reads it
    (``worklog_problem`` says why it could not be), the last runs' statuses as `agentd runs` shows them;
    ``fleet``: every host of the fleet as `agentd fleet status --json` gives it (``report.fleet``), else None."""
    now = time.time() if now is None else now
    store = open_store(cfg.store_path) if cfg.store_path.is_file() else None
    try:
        view, problem = None, None
        path = cfg.worklog_path
        if not os.path.lexists(path):
            problem = f"no worklog at {path}: `agentd init` writes one"
        else:
            try:
                view = queue.load(cfg, store, now=now, wake_running=wake_running(cfg))
            except WorklogError as e:  # the rest of the report still stands on the store; the page says so
                problem = str(e)
            except OSError as e:
                problem = f"cannot read the worklog {path}: {e.strerror or e}"
        out = gather_data(cfg, store, since_s, now, view)
        if store is not None:
            _as_seen(cfg, store, out["last_runs"])
        out["worklog_problem"] = None if problem is None else " ".join(problem.split())[:2000]
        out["fleet"] = fleet_data(cfg, now) if fleet else None
        return out
    finally:
        if store is not None:
            store.close()


def _as_seen(cfg, store, last: list[dict]) -> None:
    """The last runs' statuses as `runs` and `status` show them: a ``running`` row no wake holds is
    ``interrupted`` (``cli.status.as_seen``)."""
    from agentd.cli.status import as_seen  # lazy: only where a run is listed

    seen = as_seen(cfg, store, [{"run_id": r["run"], "status": r["status"]} for r in last])
    for r, s in zip(last, seen):
        r["status"] = s["status"]


def open_store(path: Path) -> Store:
    """The store, read-only where it is up to date.  One an older agentd made (a migration it has not had:
    no ``approvals`` table, no ``host`` column) is opened as other commands open it, which migrates it;
    where it can't be written, it is read through a copy migrated in memory (the file left as it is)."""
    store = Store.read_only(path)
    have = {r[0] for r in store.db.execute("SELECT name FROM migrations")}
    if {name for name, _ in MIGRATIONS} <= have:
        return store
    store.close()
    return migrated(path) or in_memory(path)


def migrated(path: Path) -> Store | None:
    """``Store(path)``, migrated; None where the state dir can't be written (it fell back to reading)."""
    try:
        store = Store(path)
    except StateError:
        return None
    if store.readonly:
        store.close()
        return None
    return store


def in_memory(path: Path) -> Store:
    """A read-only Store over a copy of the file at ``path`` in memory, migrated there."""
    import sqlite3  # lazy: only for an old store that can't be written

    store = Store.read_only(path)
    mem = sqlite3.connect(":memory:", isolation_level=None, factory=type(store.db))
    mem.row_factory = store.db.row_factory
    mem.agentd_path = path
    store.db.backup(mem)
    store.db.close()
    store.db = mem
    migrate(mem, lambda: Tx(mem))
    mem.execute("PRAGMA query_only=1")
    return store


def target(path: Path) -> tuple[str, Path, os.stat_result | None]:
    """Where ``-o path`` writes: ``("file", the path with its links resolved, its stat or None)`` for a
    regular file or a new one; ``("stream", ...)`` for a FIFO or a character device (written to as it is,
    never replaced: `-o /dev/null` as root once turned /dev/null into a regular file).  A directory, a
    missing directory or any other kind of file is a UsageError."""
    real = Path(os.path.realpath(path))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        if not real.parent.is_dir():
            raise UsageError(f"-o {path}: its directory {real.parent} does not exist") from None
        return "file", real, None
    except OSError as e:
        raise _io(e, path) from None
    if stat.S_ISREG(st.st_mode):
        return "file", real, st
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"-o {path}: is a directory; give a file name")
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
        return "stream", real, st
    raise UsageError(f"-o {path}: not a regular file (nor a FIFO or a character device); give a file name")


def _io(e: OSError, path) -> Exception:
    err = io_error(OSError(e.errno, e.strerror), str(path))  # (named by -o's path, not the temporary's)
    return err if err is not None else StateError(f"cannot write {path}: {e.strerror or e}")


def write(path: Path, text: str) -> None:
    """``text`` to ``path`` (``target``): a regular file atomically (a temporary file beside it, named
    short, then renamed over it; an existing file keeps its mode and, where it can, its owner; a new one
    is 0600: the page holds entries and approvals), a FIFO or a character device written to directly."""
    kind, real, st = target(path)
    data = text.encode("utf-8")
    if kind == "stream":
        try:
            fd = os.open(real, os.O_WRONLY | os.O_NOCTTY)  # (no O_CREAT: it is there, or this fails)
            with open(fd, "wb") as f:
                f.write(data)
        except OSError as e:
            raise _io(e, path) from None
        return
    import tempfile  # lazy: only for a page written to a file

    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=".report-", suffix=".tmp")  # 0600
        with open(fd, "wb") as f:
            if st is not None:
                os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
                try:
                    os.fchown(f.fileno(), st.st_uid, st.st_gid)
                except OSError:
                    pass  # (not ours to give away: it keeps the writer's)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, real)
    except OSError as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise _io(e, path) from None


def run(cfg, args) -> int:
    since_s = since_seconds(args.since or DEFAULT_SINCE)
    if args.json and args.output:
        raise UsageError("--json prints the numbers; -o writes the page: give one of them")
    fleet = bool(getattr(args, "fleet", False))
    if fleet and not worklogdir.is_fleet(cfg.worklog_dir):
        raise UsageError(f"{cfg.worklog_dir} is no fleet clone: `agentd fleet init|join REPO_URL` makes it one")
    if args.json:
        sys.stdout.write(json.dumps(gather(cfg, since_s, fleet=fleet), indent=1, ensure_ascii=False) + "\n")
        return 0
    from agentd.report.page import render  # lazy: the page only for HTML

    if args.output == "-":
        sys.stdout.write(render(gather(cfg, since_s, fleet=fleet)))
        return 0
    path = Path(args.output).expanduser() if args.output else cfg.state_dir / "report.html"
    if args.output is None:
        cfg.ensure_state_dir()
    target(path)  # (a bad -o is said before the report is gathered)
    write(path, render(gather(cfg, since_s, fleet=fleet)))
    print(path)
    return 0
