"""The command line: parse arguments, call one module, turn errors into messages.

This is the only place exceptions become text and exit codes.  Heavy
libraries are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import os
import sys

from agentd.errors import EX_CONFIG, EX_OK, EX_USAGE, AgentdError, UsageError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="agentd", description="A per-host agent that works through a plain-text worklog.",
        epilog="Exit codes: 0 ok, 1 a task failed, 2 usage error, 75 another wake is running, 78 config error. "
               "AGENTD_DEBUG=1 shows tracebacks.")
    from agentd import __version__

    p.add_argument("--version", action="version", version=f"agentd {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def cmd(name, help_, **kw):
        return sub.add_parser(name, help=help_, description=help_, **kw)

    cmd("init", "create the config and this host's worklog")
    q = cmd("queue", "list every task, in the order the next wake would take them, and why")
    q.add_argument("--json", action="store_true", help="machine-readable output (see docs/cli.md)")
    q.add_argument("--all", action="store_true", help="also list done and cancelled tasks")
    w = cmd("wake", "take the lock, check health, then resume or choose one task, run it and record it")
    w.add_argument("--now", action="store_true", help="a person asked: skip quiet hours, idle and load gating")
    w.add_argument("--dry-run", action="store_true", help="print what would run and why; run and spend nothing")
    w.add_argument("--task", metavar="ID", help="run this task instead of the top one")
    s = cmd("status", "host, worklog, state directory, current or last run, next timer elapse")
    s.add_argument("--json", action="store_true")
    r = cmd("runs", "list runs, newest first")
    r.add_argument("--json", action="store_true")
    r.add_argument("-n", "--limit", type=int, default=20)
    sh = cmd("show", "show one run: record, progress, finding and transcript")
    sh.add_argument("run_id", metavar="RUN")
    sh.add_argument("--json", action="store_true")
    d = cmd("directive", "append a DIRECTIVE line to the worklog")
    d.add_argument("text")
    d.add_argument("--priority", choices=("critical", "high", "normal", "low"), default="normal")
    a = cmd("add", "append a task line to the worklog")
    a.add_argument("title")
    a.add_argument("--run", metavar="CMD", help="shell command: makes it a command task")
    a.add_argument("--value", type=float)
    a.add_argument("--certainty", type=float)
    a.add_argument("--id")
    a.add_argument("--gpu", action="store_true")
    a.add_argument("--after", action="append", metavar="ID")
    a.add_argument("--minutes", type=float)
    cmd("reindex", "rebuild the worklog index (a cache) from the worklog")
    i = cmd("install", "install and start the systemd user timer")
    i.add_argument("--every", metavar="INTERVAL", help="how often to wake, e.g. 30m, 6h, 1d (config: interval)")
    i.add_argument("--dry-run", action="store_true", help="write the units to --unit-dir; don't call systemctl")
    i.add_argument("--unit-dir", metavar="DIR")
    cmd("uninstall", "stop and remove the systemd units (keeps the worklog, config and state)")
    lg = cmd("logs", "show agentd's logs (journal, or the log file where there is none)")
    lg.add_argument("-f", "--follow", action="store_true")
    cmd("doctor", "check the config, worklog, state, units, keys, GPU and disk; say how to fix each")
    n = cmd("notify", "send the one-line summary of the last run to the notify command")
    n.add_argument("--unit", default="", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        from agentd import commands

        return getattr(commands, "cmd_" + args.command.replace("-", "_"))(args)
    except AgentdError as e:
        if os.environ.get("AGENTD_DEBUG"):
            raise
        lines = str(e).splitlines() or [type(e).__name__]
        if e.exit_code == EX_CONFIG:
            print("agentd: config error:", file=sys.stderr)
            for line in lines:
                print(f"  {line}", file=sys.stderr)
        else:
            print(f"agentd: {lines[0]}", file=sys.stderr)
            for line in lines[1:]:
                print(f"  {line}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("agentd: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EX_OK
