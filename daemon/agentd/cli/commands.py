"""One function per CLI command.  Each loads the config and calls into its module."""

from __future__ import annotations

import json
import sys
import time
from itertools import islice
from pathlib import Path

from agentd import statuses
from agentd.cli import views
from agentd.cli.since import since_seconds
from agentd.config import config as config_mod
from agentd.errors import StateError, UsageError
from agentd.escapes import safe
from agentd.queue import queue
from agentd.queue.taskstate import worklog_scope
from agentd.times import iso
from agentd.wake.lock import wake_running
from agentd.worklog import worklog
from agentd.worklog.index import Index


def _cfg():
    cfg = config_mod.load()
    config_mod.print_warnings(cfg)
    return cfg


def _print(lines) -> None:
    lines = lines if isinstance(lines, list) else list(lines)
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")


def _json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _no_worklog(cfg) -> list[str]:
    return [f"no worklog at {cfg.worklog_path}",
            "`agentd init` makes one (or set worklog_dir / AGENTD_WORKLOG_DIR, and AGENTD_HOST)."]


CONFIG_TEMPLATE = """\
# agentd config. Every key can also be set with AGENTD_<KEY> in the environment.
# All keys, their defaults and meaning: docs/configuration.md
worklog_dir: {worklog_dir}
# workspace: ~/agentd/workspace     # where tasks run (default: <state_dir>/workspace)
provider: auto                      # auto, anthropic, openai, none, claude-cli, codex-cli
# model: claude-sonnet-4-6
max_steps: 30
interval: 6h                        # how often the timer wakes agentd
# quiet_hours: "22:00-07:00"        # timer wakes do nothing then
# notify: notify-send agentd "$AGENTD_SUMMARY"
budget:
  usd_per_run: 2.0
  usd_per_day: 10.0
"""


def cmd_init(args) -> int:
    cfg = _cfg()
    if cfg.config_file.exists():
        print(f"config:   {cfg.config_file} (exists, left as is)")
    else:
        cfg.config_file.parent.mkdir(parents=True, exist_ok=True)
        cfg.config_file.write_text(CONFIG_TEMPLATE.format(worklog_dir=cfg.values["worklog_dir"]), encoding="utf-8")
        print(f"config:   {cfg.config_file} (created)")
    made = worklog.init(cfg.worklog_path, cfg.host)
    if made and cfg.store_path.exists():
        # lazy: only `agentd init` needs it; keeps it off `agentd queue` and `agentd status`'s start-up
        from agentd.store.store import Store

        # a new file at this path starts a new history; the old entries are not restored into it
        Store(cfg.store_path).archive_entries(str(cfg.worklog_path), worklog_scope(cfg.worklog_path))
    print(f"worklog:  {cfg.worklog_path} ({'created' if made else 'exists, left as is'})")
    cfg.ensure_state_dir()
    print(f"state:    {cfg.state_dir}")
    print("next: add a task (`agentd add 'check the GPU' --run nvidia-smi`), then `agentd queue` and "
          "`agentd wake --now`.")
    return 0


def cmd_queue(args) -> int:
    cfg = _cfg()
    view = queue.load(cfg, wake_running=wake_running(cfg))
    if args.json:  # in pieces: a long queue is never held as one string
        for chunk in views.queue_json_chunks(view):
            sys.stdout.write(chunk)
    elif not view.read.exists:
        _print(_no_worklog(cfg))
    else:
        lines = views.queue_text_lines(view, show_all=args.all)  # (an item may hold many lines)
        while chunk := list(islice(lines, 16)):
            _print(chunk)
    return 0


def cmd_check(args) -> int:
    """The lines agentd would ignore, misread or never run; reads, runs and writes nothing."""
    # lazy: only `agentd check` needs it; keeps it off `agentd queue` and `agentd status`'s start-up
    from agentd.cli import check

    cfg = _cfg()
    only = Path(args.file) if getattr(args, "file", None) else None
    if only is None and not cfg.worklog_path.exists() and not cfg.tasks_dir.is_dir():
        _print(_no_worklog(cfg))
        return 0
    found = check.check(cfg.worklog_path, cfg.tasks_dir, cfg.store_path, only=only)
    count = sum(p.count() for p in found)  # a "… and N more" line stands for N
    if args.json:
        _json({"problems": [p.to_json() for p in found], "count": count})
    elif found:
        _print(safe(p.text(), 600) for p in found)
        print(f"{count} problem{'s' if count != 1 else ''}")
    else:
        what = only if only is not None else f"{cfg.worklog_path} and the task files in {cfg.tasks_dir}"
        print(f"no problems in {safe(str(what))}")
    return 1 if found else 0


def cmd_status(args) -> int:
    # lazy: only `agentd status` needs it; keeps it off `agentd queue`'s start-up
    from agentd.cli import status

    cfg = _cfg()
    info = status.collect(cfg)
    if args.json:
        _json(info)
    else:
        _print(status.text(info))
    return 0


def cmd_wake(args) -> int:
    # lazy: only `agentd wake` needs it; keeps it off `agentd queue` and `agentd status`'s start-up
    from agentd.wake import wake

    return wake.wake(_cfg(), now=args.now, dry_run=args.dry_run, task_id=args.task)


def _store(cfg):
    # lazy: only the commands that read runs need it (runs, show, worktrees); keeps queue's start-up
    from agentd.store.store import Store

    return Store(cfg.store_path) if cfg.store_path.exists() else None


def cmd_runs(args) -> int:
    cfg = _cfg()
    store = _store(cfg)
    # lazy: only `agentd runs` needs it; keeps it off `agentd queue`'s start-up
    from agentd.cli.status import as_seen

    status, since = run_filters(args)
    runs = matching_runs(cfg, store, as_seen, args.limit, args.task, status, since) if store else []
    if args.json:
        _json([{k: r[k] for k in views.RUN_COLS + ("title", "summary", "reason", "defer_until", "run_dir")}
               for r in runs])
    elif not runs and (args.task is not None or status is not None or since is not None):
        given = [f"--{k} {v}" for k, v in (("task", args.task), ("status", status), ("since", args.since))
                 if v is not None]
        _print([f"no runs match ({safe(' '.join(given), 200)})"])
    else:
        _print(views.runs_text(runs))
    return 0


def matching_runs(cfg, store, as_seen, limit, task, status, since) -> list[dict]:
    """The runs `runs` lists, as it shows them (``as_seen``: a ``running`` row no wake holds is
    ``interrupted``, one that ended while we looked is read again), filtered on that status, not the
    stored one: rows stored ``running`` are read with the others, and what they turn into decides."""
    if status is None:
        return as_seen(cfg, store, store.runs(limit=limit, host=cfg.host, task=task, since=since))
    where, args = ["(host=? OR host IS NULL)", "status IN (?, ?)"], [cfg.host, status, statuses.RUNNING]
    for clause, value in (("task_id=?", task), ("started_at>=?", since)):
        if value is not None:
            where, args = [*where, clause], [*args, value]
    sql = " WHERE " + " AND ".join(where)
    running = store.db.execute(f"SELECT count(*) FROM runs{sql} AND status=?", [*args, statuses.RUNNING]).fetchone()[0]
    # (newest first, the order they started in, as store.runs lists them; a running row may drop out)
    sql += f" ORDER BY rowid DESC LIMIT {int(limit) + running}" if limit else " ORDER BY rowid DESC"
    rows = [dict(r) for r in store.db.execute("SELECT * FROM runs" + sql, args)]
    out = [r for r in as_seen(cfg, store, rows) if r["status"] == status]
    return out[:limit] if limit else out


RUN_STATUSES = (*statuses.OUTCOMES, statuses.RUNNING)  # what a run row can say


def run_filters(args) -> tuple[str | None, str | None]:
    """`runs`' --status (checked against the statuses a run can have) and --since (as an ISO time)."""
    status = getattr(args, "status", None)
    if status is not None and status not in RUN_STATUSES:
        raise UsageError(f"--status {status!r}: a run's status is one of {', '.join(RUN_STATUSES)}")
    if getattr(args, "since", None) is None:
        return status, None
    return status, iso(time.time() - since_seconds(args.since))


def cmd_report(args) -> int:
    """One self-contained HTML page of what agentd did, or its numbers (--json); docs/report.md."""
    # lazy: only `agentd report` needs it (the queue, the store, the page)
    from agentd.cli import report

    return report.run(_cfg(), args)


def cmd_worktrees(args) -> int:
    """The worktrees of `{repo: PATH}` tasks; --prune removes those whose runs ended, keeping the branches."""
    # lazy: only `agentd worktrees` needs it; keeps it off `agentd queue` and `agentd status`'s start-up
    from agentd.workspace import worktrees

    cfg = _cfg()
    store = _store(cfg)
    rows = worktrees.prune(cfg, store) if args.prune else worktrees.listing(cfg, store)
    if args.json:
        _json(rows)
        return 0
    if not rows:
        _print(["no worktree to remove" if args.prune else "no worktrees: a task with {repo: PATH} makes one"])
        return 0
    out = []
    for w in rows:
        ahead = "?" if w["ahead"] is None else w["ahead"]
        out.append(f"{safe(w['task'])}  {w['run']}  {safe(w['branch'])}  +{ahead}  {w['state']}  {safe(w['path'])}")
        if args.prune:
            out.append(f"  removed; kept branch {safe(w['branch'])} in {safe(w['repo'])} "
                       f"(git -C {safe(w['repo'])} branch -D {safe(w['branch'])} deletes it)")
    _print(out)
    return 0


def cmd_show(args) -> int:
    # lazy: only `agentd show` needs it; keeps it off `agentd queue` and `agentd status`'s start-up
    from agentd.cli import show

    cfg = _cfg()
    store = _store(cfg)
    matches = store.matching_runs(args.run_id) if store else []
    if not matches:
        raise UsageError(f"no run {args.run_id!r}; `agentd runs` lists them")
    if len(matches) > 1:
        ids = ", ".join(r["run_id"] for r in matches[:5]) + (", …" if len(matches) > 5 else "")
        raise UsageError(f"{args.run_id!r} is ambiguous: it matches {len(matches)} runs ({ids})")
    # lazy: only `agentd show` needs it; keeps it off `agentd queue`'s start-up
    from agentd.cli.status import as_seen

    run = as_seen(cfg, store, matches)[0]
    info = show.describe(store, run)
    if args.json:
        _json(info)
    else:
        _print(show.describe_text(info))
    return 0


def cmd_reindex(args) -> int:
    cfg = _cfg()
    idx = Index(cfg.index_path)
    idx.drop()
    r = worklog.read(cfg.worklog_path, idx)
    if not r.exists:
        _print(_no_worklog(cfg))
        return 0
    if Index(cfg.index_path).get(cfg.worklog_path) is None:  # the index swallows a write it could not make

        raise StateError(f"cannot write {cfg.index_path}: the state dir is read-only or full; the worklog was "
                         "read, but nothing was reindexed")
    s = r.state
    print(f"reindexed {r.path}: {r.size} bytes, {s.lines} lines, {len(s.tasks)} tasks, {s.entry_count} entries, "
          f"{s.error_count} unreadable lines, {s.torn} torn entries")
    return 0


def cmd_install(args) -> int:
    # lazy: only `agentd install` needs it; keeps it off `agentd queue` and `agentd status`'s start-up
    from agentd.platform import systemd

    cfg = _cfg()
    if args.dry_run and not args.unit_dir:
        raise UsageError("--dry-run needs --unit-dir DIR to write the units to")
    return systemd.install(cfg, every=args.every, dry_run=args.dry_run,
                           unit_dir=Path(args.unit_dir) if args.unit_dir else None)


def cmd_uninstall(args) -> int:
    # lazy: only `agentd uninstall` needs it; keeps it off `agentd queue` and `agentd status`'s start-up
    from agentd.platform import systemd

    return systemd.uninstall(_cfg())


def cmd_logs(args) -> int:
    # lazy: only `agentd logs` needs it; keeps it off `agentd queue` and `agentd status`'s start-up
    from agentd.platform import logs

    return logs.follow_logs(_cfg(), follow=args.follow)


def cmd_metrics(args) -> int:
    """The metric names kept, or NAME's series; opens the store read-only (never migrates it)."""
    # lazy: only `agentd metrics` needs it (store/metrics, csv, difflib); keeps queue's and status's start-up
    from agentd.cli import metrics

    if args.json and args.csv:
        raise UsageError("--json and --csv: give one of them")
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must be 0 or more")
    cfg = _cfg()
    db = metrics.open_read_only(cfg.store_path)
    if db is None:
        rows, keys = [], (metrics.POINT_KEYS if args.name else metrics.NAME_KEYS)
        text = [f"no metrics yet: no store at {cfg.store_path}" if not cfg.store_path.exists() else
                "no metrics yet: a run keeps them from METRIC lines, a metrics: file or an experiment"]
    else:
        try:
            if args.name is None:
                rows, keys = metrics.listing(db, args.task, args.host, args.limit), metrics.NAME_KEYS
                text = metrics.listing_text(rows)
            else:
                rows, keys = metrics.points(db, args.name, args.task, args.host, args.limit), metrics.POINT_KEYS
                text = metrics.points_text(args.name, rows)
        finally:
            db.close()
    if args.json:
        sys.stdout.write(metrics.as_json(rows))
    elif args.csv:
        sys.stdout.write(metrics.as_csv(rows, keys))
    else:
        _print(text)
    return 0


def cmd_doctor(args) -> int:
    # lazy: only `agentd doctor` needs it; keeps it off `agentd queue` and `agentd status`'s start-up
    from agentd.cli import doctor

    return doctor.doctor()


def cmd_notify(args) -> int:
    # lazy: only `agentd notify` needs it; keeps it off `agentd queue` and `agentd status`'s start-up
    from agentd.platform import notify

    return notify.notify_from_unit(_cfg(), args.unit)
