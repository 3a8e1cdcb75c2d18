"""`agentd fleet init|join REPO_URL`, `agentd fleet status` and `agentd sync`: the worklog dir as a clone of the fleet's repository
(docs/fleet.md).  Both take the wake lock, so a sync by hand and a wake's never meet in git."""

from __future__ import annotations

import sys

from agentd.cli.commands import _cfg, _json
from agentd.config import worklogdir
from agentd.errors import EX_FAILED, EX_OK, UsageError
from agentd.escapes import safe
from agentd.fleet import setup, sync
from agentd.wake.lock import wake_lock


def cmd_fleet(args) -> int:
    cfg = _cfg()
    if args.action in ("init", "join"):
        if not args.url:
            raise UsageError(f"agentd fleet {args.action} needs REPO_URL (a bare repository's path, ssh or https URL)")
        with wake_lock(cfg):
            said = (setup.init if args.action == "init" else setup.join)(cfg, args.url)
        print(safe(said))
        return EX_OK
    if args.action == "status":
        if not worklogdir.is_fleet(cfg.worklog_dir):
            raise UsageError(f"{cfg.worklog_dir} is no fleet clone: `agentd fleet init|join REPO_URL` makes it one")
        from agentd.fleet import view  # lazy: the queue's load, only for this action

        info = view.collect(cfg)
        if args.json:
            _json(info)
        else:
            print("\n".join(view.lines(info)))
        return EX_OK
    raise UsageError(f"unknown fleet action {args.action!r}")


def cmd_sync(args) -> int:
    cfg = _cfg()
    if not worklogdir.is_fleet(cfg.worklog_dir):
        raise UsageError(f"{cfg.worklog_dir} is no fleet clone: `agentd fleet init|join REPO_URL` makes it one")
    with wake_lock(cfg):
        got = sync.sync(cfg)
    if args.json:
        _json({k: getattr(got, k) for k in ("ok", "kind", "warning", "committed", "merged", "pushed", "unpushed")})
    elif got.ok:
        done = [w for w, did in (("committed", got.committed), ("merged", got.merged), ("pushed", got.pushed)) if did]
        print("synced: " + (", ".join(done) if done else "up to date"))
    else:
        print(f"agentd: fleet sync: {safe(got.warning, 600)}", file=sys.stderr)
    return EX_OK if got.ok else EX_FAILED
