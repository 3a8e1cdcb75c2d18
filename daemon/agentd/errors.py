"""The exceptions agentd raises on purpose.

Everything below is an *expected* error: the CLI turns it into one readable
message and an exit code (``cli.main``).  Any other exception is a bug in
agentd and is shown with its traceback.  ``AGENTD_DEBUG=1`` re-raises the
expected ones too, so the traceback is there when you need it.

    AgentdError                   exit 1
    ├── UsageError                exit 2   bad command-line use
    ├── ConfigError               exit 78  config or task file failed the schema
    ├── BusyError                 exit 75  another wake holds the lock
    ├── WorklogError              exit 1   the worklog can't be read or written
    ├── StateError                exit 74  the state directory can't be written (full, read-only, denied)
    ├── MissingDependency         exit 1   an optional package is not installed
    ├── WorkspaceError            exit 1   a task's workspace, worktree or cwd can't be used -> blocked
    ├── FleetError                exit 1   the fleet repository can't be set up or synced (a wake warns, goes on)
    └── ProviderError             exit 1   an LLM provider call failed
        ├── AuthFailed                     key missing or refused  -> blocked
        ├── RateLimited                    429/529 after retries   -> deferred
        ├── UsageLimit                     quota with a reset time -> deferred
        ├── ContextOverflow                prompt too long         -> compact, retry
        └── ProviderDown                   5xx, timeouts, garbage  -> failed
"""

from __future__ import annotations

EX_OK = 0
EX_FAILED = 1
EX_USAGE = 2
EX_IOERR = 74  # EX_IOERR
EX_BUSY = 75  # EX_TEMPFAIL
EX_CONFIG = 78  # EX_CONFIG


class AgentdError(Exception):
    exit_code = EX_FAILED


class UsageError(AgentdError):
    exit_code = EX_USAGE


class ConfigError(AgentdError):
    """One or more schema problems; ``problems`` lists every one of them."""

    exit_code = EX_CONFIG

    def __init__(self, problems: list[str] | str, warnings: list[str] | None = None):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        self.warnings = list(warnings or [])  # shown with the problems, not counted as problems
        super().__init__("\n".join(self.problems + self.warnings))


class BusyError(AgentdError):
    exit_code = EX_BUSY


class WorklogError(AgentdError):
    pass


class StateError(AgentdError):
    """agentd's own files (the state directory: store, index, run directories, lock, log) can't
    be written: the disk is full, the file system is read-only, or permission is denied.  ``full``:
    the disk (or the quota) is full, so freeing agentd's reserve may let the write through (reserve.py)."""

    exit_code = EX_IOERR

    def __init__(self, message: str, full: bool = False):
        self.full = full
        super().__init__(message)


# errno -> what to tell a person; an OSError with one of these is the machine's state, not a bug
_IO_HINTS = {"ENOSPC": "the disk is full: free some space",
             "EDQUOT": "the disk quota is used up: free some space",
             "EROFS": "the file system is mounted read-only",
             "EACCES": "permission denied: check the owner and mode of the directory",
             "EPERM": "permission denied: check the owner and mode of the directory",
             "EIO": "an I/O error: check the disk",
             "ENOTDIR": "a part of the path is a file, not a directory",
             "EEXIST": "something else already exists at that path"}


def io_error(e: OSError, what: str = "") -> StateError | None:
    """The StateError an OSError from writing agentd's files stands for, or None (then it is a bug)."""
    import errno  # lazy: only to name an OSError's errno; keeps --help's start-up

    name = errno.errorcode.get(e.errno or 0, "")
    if name not in _IO_HINTS:
        return None
    where = e.filename or what or "agentd's state directory"
    return StateError(f"cannot write {where}: {e.strerror or name} ({_IO_HINTS[name]})",
                      full=name in ("ENOSPC", "EDQUOT"))


class WorkspaceError(AgentdError):
    """Where a task would run can't be used safely: a workspace that is a link, a `repo:` that is not a
    git repository, a command's `cwd:` an agent could write, a git call that failed."""


class FleetError(AgentdError):
    """The fleet repository (the worklog dir as a git clone) can't be set up or synced: the remote is
    unreachable or rejected a push, its history was rewritten, a commit would carry another host's worklog."""


class MissingDependency(AgentdError):
    """An optional extra is missing; ``fix`` is the command that installs it."""

    def __init__(self, what: str, fix: str):
        self.what, self.fix = what, fix
        super().__init__(f"{what} is not installed; fix: {fix}")


class ProviderError(AgentdError):
    retryable = False


class AuthFailed(ProviderError):
    pass


class RateLimited(ProviderError):
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(message)


class UsageLimit(ProviderError):
    def __init__(self, message: str, reset_at: str | None = None):
        self.reset_at = reset_at
        super().__init__(message)


class ContextOverflow(ProviderError):
    pass


class ProviderDown(ProviderError):
    retryable = True
