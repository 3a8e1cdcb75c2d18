"""The command line: parse arguments, call one module, turn errors into messages.

This is the only place exceptions become text and exit codes.  Heavy
libraries are imported inside the commands that need them.
"""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

from agentd import __version__
from agentd.errors import EX_CONFIG, EX_OK, AgentdError, io_error


# What exit status 1 means, by command (docs/cli.md, "Exit codes", says the same; a test checks)
EXIT_ONE = {
    "wake": "the task failed",
    "check": "problems found",
    "doctor": "a check FAILed",
    "notify": "the notify command failed",
    "install": "systemctl is missing or failed (the timer is not enabled)",
    "logs": "no logs yet",
    "metrics": "the metric NAME is unknown",
    "fleet": "the fleet could not be set up (the remote unreachable, or not what the action needs)",
    "sync": "the sync met a fault (its warning says which: nothing is lost, the next sync tries again)",
}


def epilog(command: str | None = None) -> str:
    """The exit codes of ``command`` (of every command when None), for its --help."""
    one = ("what failed (`agentd COMMAND --help` says)" if command is None else
           f"{EXIT_ONE[command]}, " if command in EXIT_ONE else "")
    if command is not None:
        one += "the worklog can't be read or written, or an unexpected error"
    return (f"Exit codes: 0 ok, 1 {one}, 2 usage error, 74 agentd's state directory can't be written "
            "(disk full, read-only), 75 another wake is running, 78 config error. "
            "AGENTD_DEBUG=1 shows tracebacks.")


def _arg(*names: str, **kw) -> tuple:
    """One argument of a command: what ``add_argument`` is given."""
    return names, kw


def _adds(*args: tuple):
    """The function that adds ``args`` to a command's parser (COMMANDS' second item)."""
    def add(p) -> None:
        for names, kw in args:
            p.add_argument(*names, **kw)
    return add


FLAG = {"action": "store_true"}
JSON = _arg("--json", **FLAG, help="machine-readable output (see docs/cli.md)")
APPROVAL_ID = _arg("approval_id", metavar="ID", help="the id the agent's waiting entry names (ap-...)")

# name -> (help, function adding its arguments)
COMMANDS = {
    "init": ("create the config and this host's worklog", _adds()),
    "queue": ("list every task, in the order the next wake would take them, and why",
              _adds(JSON, _arg("--all", **FLAG, help="also list done and cancelled tasks"))),
    "wake": ("take the lock, check health, then resume or choose one task, run it and record it", _adds(
        _arg("--now", **FLAG, help="a person asked: skip quiet hours, idle and load gating"),
        _arg("--dry-run", **FLAG, help="print what would run and why; run and spend nothing"),
        _arg("--task", metavar="ID", help="run this task instead of the top one"))),
    "status": ("host, worklog, state directory, current or last run, next timer elapse", _adds(JSON)),
    "runs": ("list runs, newest first", _adds(
        JSON, _arg("-n", "--limit", type=int, default=20, metavar="N", help="list at most N runs (default 20)"),
        _arg("--task", metavar="ID", help="only this task's runs: the history its learned score counts"),
        _arg("--status", metavar="STATUS", help="only runs with this status, as runs shows it: done, failed, "
                                                "blocked, deferred, waiting, interrupted or running"),
        _arg("--since", metavar="SPAN", help="only runs started in the last SPAN: 12h, 7d, 2w"))),
    "show": ("show one run: record, progress, finding and transcript", _adds(
        _arg("run_id", metavar="RUN", help="a run id, or the start of one (`agentd runs` lists them)"), JSON)),
    "directive": ("append a DIRECTIVE line to the worklog", _adds(
        _arg("text", help="what the agent should do, one line"),
        _arg("--priority", choices=("critical", "high", "normal", "low"), default="normal",
             help="critical writes a **CRITICAL DIRECTIVE** line; high and low go in its attrs (default normal)"))),
    "add": ("append a task line to the worklog", _adds(
        _arg("title", help="what to do, one line (an agent task unless --run is given)"),
        _arg("--run", metavar="CMD", help="shell command: makes it a command task"),
        _arg("--value", type=float, help="how much it is worth, 0-10 (scoring: docs/scoring.md)"),
        _arg("--certainty", type=float, help="how likely it succeeds, 0-1"),
        _arg("--id", help="a stable id (letters, digits, . _ : -); default: one made from the title"),
        _arg("--gpu", **FLAG, help="it needs a GPU: it waits on a host without one"),
        _arg("--after", action="append", metavar="ID",
             help="it waits until task ID is done (give it again for more than one)"),
        _arg("--minutes", type=float, help="how many minutes it should take (a longer task scores lower)"))),
    "approve": ("append APPROVE: ID to the worklog: the waiting agent run goes on with what it asked for", _adds(
        APPROVAL_ID,
        _arg("--dir", metavar="PATH", help="an approved command runs in PATH (default: a new empty directory)"))),
    "deny": ("append DENY: ID REASON to the worklog: the waiting agent run goes on without it", _adds(
        APPROVAL_ID, _arg("reason", nargs="*", help="why: the agent reads it"))),
    "reindex": ("rebuild the worklog index (a cache) from the worklog", _adds()),
    "install": ("install and start the systemd user timer", _adds(
        _arg("--every", metavar="INTERVAL", help="how often to wake, e.g. 30m, 6h, 1d (config: interval)"),
        _arg("--dry-run", **FLAG, help="write the units to --unit-dir; don't call systemctl"),
        _arg("--unit-dir", metavar="DIR", help="where to write the units (default: systemd's user unit dir)"))),
    "uninstall": ("stop and remove the systemd units (keeps the worklog, config and state)", _adds()),
    "logs": ("show agentd's logs (journal, or the log file where there is none)",
             _adds(_arg("-f", "--follow", **FLAG, help="keep printing new lines as they come"))),
    "check": ("list the lines agentd would ignore, misread or never run, with file:line and a did-you-mean; "
              "runs nothing (exit 1 when there is one)", _adds(
                  _arg("file", nargs="?", metavar="FILE",
                       help="check only this file: a worklog, or a task file (.yml/.yaml); default: this host's "
                            "worklog and the task files"), JSON)),
    "metrics": ("list the metrics runs kept (names, point counts, last values), or one metric's series, "
                "oldest first; reads the store, writes nothing", _adds(
                    _arg("name", nargs="?", metavar="NAME", help="show this metric's series (default: list the names)"),
                    _arg("--task", metavar="ID", help="only this task's points"),
                    _arg("--host", metavar="H", help="only points from host H (default: every host the store holds)"),
                    JSON, _arg("--csv", **FLAG, help="a header line, then one CSV row per name or point "
                                                     "(values as Python floats: they read back exactly)"),
                    _arg("-n", "--limit", type=int, metavar="N",
                         help="at most N names, or the last N points (default: all)"))),
    "report": ("write one self-contained HTML page of runs, spend, results, reliability and the queue "
               "(plots inline, nothing loaded from the network), and print its path", _adds(
                   _arg("-o", "--output", metavar="FILE", help="write the page here (default: <state_dir>/report.html)"),
                   _arg("--since", metavar="SPAN", default="30d", help="cover the last SPAN: 30d, 2w, 12h (default 30d)"),
                   _arg("--json", **FLAG, help="print the numbers behind every plot instead (docs/report.md)"),
                   _arg("--fleet", **FLAG, help="add every host of the fleet, as `agentd fleet status` shows them "
                                                "(the worklog dir must be a fleet clone)"))),
    "doctor": ("check the config, worklog, state, units, keys, GPU and disk; say how to fix each", _adds()),
    "notify": ("send the one-line summary of the last run to the notify command",
               _adds(_arg("--unit", default="", help="the unit that failed (the agentd-notify@ unit passes it)"))),
    "fleet": ("make the worklog dir a clone of the fleet's git repository: init starts a fleet on an empty "
              "remote, join clones one; status shows every host (docs/fleet.md)", _adds(
                  _arg("action", choices=("init", "join", "status"), metavar="ACTION",
                       help="init: start a fleet; join: join one; status: every host's last wake and run, what "
                            "runs, its queue's top, today's spend, and the fleet budget"),
                  _arg("url", nargs="?", metavar="REPO_URL",
                       help="the repository: a bare repository's path, an ssh or https URL"), JSON)),
    "sync": ("commit this host's worklog, pull the fleet's worklogs and push (what each wake does)", _adds(JSON)),
    "worktrees": ("list the git worktrees {repo: PATH} tasks ran in (--prune removes those whose runs ended)",
                  _adds(JSON, _arg("--prune", **FLAG,
                                   help="remove the worktrees whose runs ended (their branches stay)"))),
}


def _parser():
    """The top-level parser, for an unknown command or misplaced options."""
    # lazy: argparse costs more than Python's start-up; --help and flag-only commands (queue, status) parse without it
    import argparse

    p = argparse.ArgumentParser(prog="agentd", usage=USAGE[len("usage: "):], add_help=False)
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("--version", action="store_true")
    p.add_argument("command", metavar="COMMAND", choices=list(COMMANDS))
    return p


# Commands whose options are all on/off flags: option -> attribute.  `agentd status --json`, run
# by monitoring every minute, then skips importing argparse (~5 ms); a test checks these
# against the argparse parsers, which still handle everything else (--help, mistakes).
FLAGS = {"queue": {"--json": "json", "--all": "all"}, "status": {"--json": "json"}, "init": {}, "reindex": {},
         "doctor": {}, "uninstall": {}, "worktrees": {"--json": "json", "--prune": "prune"}}


def _parse(argv: list[str]):
    """Build only the parser of the command being run: argparse costs ~2 ms per subparser."""
    flags = FLAGS.get(argv[0]) if argv else None
    if flags is not None and all(a in flags for a in argv[1:]):
        return SimpleNamespace(command=argv[0], **{dest: opt in argv[1:] for opt, dest in flags.items()})
    # lazy: argparse costs more than Python's start-up; only a command with more than on/off flags needs it
    import argparse

    if argv and argv[0] in COMMANDS:
        help_, add_args = COMMANDS[argv[0]]
        p = argparse.ArgumentParser(prog=f"agentd {argv[0]}", description=help_, epilog=epilog(argv[0]))
        add_args(p)
        args = p.parse_args(argv[1:])
        args.command = argv[0]
        return args
    args = _parser().parse_args(argv)  # exits with a usage error for an unknown command
    raise AssertionError(f"unreachable: {args}")


USAGE = "usage: agentd [-h] [--version] COMMAND ..."


def _top_help() -> str:
    """`agentd --help` without argparse (whose import, with re and enum, costs more than Python's start-up)."""
    listing = "\n".join(f"  {name:<11} {help_}" for name, (help_, _) in COMMANDS.items())
    return (f"{USAGE}\n\nA per-host agent that works through a plain-text worklog.\n\n"
            f"options:\n  -h, --help  show this help message and exit\n"
            f"  --version   show program's version number and exit\n\n"
            f"commands:\n{listing}\n\n`agentd COMMAND --help` describes one command.\n{epilog()}\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["-h"], ["--help"]):
        sys.stdout.write(_top_help())
        return EX_OK
    if argv == ["--version"]:
        sys.stdout.write(f"agentd {__version__}\n")
        return EX_OK
    if not argv:
        sys.stderr.write(f"{USAGE}\nagentd: error: a COMMAND is required (agentd --help lists them)\n")
        return 2
    args = _parse(argv)
    out = sys.stdout
    sys.stdout = _ReaderMayLeave(out)
    try:
        return _run(args)
    finally:
        sys.stdout = out


class _ReaderMayLeave:
    """stdout for a command: when its reader leaves early (`agentd check | head -1`), the rest goes to
    /dev/null and the command goes on, so its exit status is still its result (check: 1 problems found;
    wake: the task's), not a broken pipe's."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            _stdout_to_devnull(self._stream)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            _stdout_to_devnull(self._stream)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _stdout_to_devnull(stream) -> None:
    """What is still buffered for stdout, and what comes after, goes nowhere (Python's flush at exit
    would otherwise fail again and change the exit status)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return  # not a file (a test's capture): nothing to redirect
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


APPENDING = ("directive", "add", "approve", "deny")  # their functions are in cli/append.py
FLEET = ("fleet", "sync")  # theirs in cli/fleet.py


def _run(args) -> int:
    try:
        name = "cmd_" + args.command.replace("-", "_")
        if args.command in APPENDING:
            # lazy: a command's own module: only the commands that append a line load approvals and the store
            from agentd.cli import append as module
        elif args.command in FLEET:
            # lazy: the fleet's commands load git's and the fleet's modules, which no other command needs
            from agentd.cli import fleet as module
        else:
            # lazy: the commands load the config (and its schema); `agentd --help` and `--version` answer without it
            from agentd.cli import commands as module

        return getattr(module, name)(args)
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
    except BrokenPipeError:  # a pipe other than stdout (stdout's reader leaving is _ReaderMayLeave's)
        return EX_OK
    except OSError as e:  # a full disk, a read-only file system, a denied write: one line, not a traceback
        err = io_error(e)
        if err is None or os.environ.get("AGENTD_DEBUG"):
            raise
        print(f"agentd: {err}", file=sys.stderr)
        return err.exit_code
