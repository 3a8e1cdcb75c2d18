"""Logging: structlog to stderr (the journal under systemd) and to a file.

stdout carries a command's results only (``agentd wake --now > out.txt`` gets the result, not
the log); under systemd both stdout and stderr go to the journal.  ``setup`` makes every log call write

* to ``stream`` (stderr): a readable line when it is a terminal, else one
  JSON object a line.  Under systemd (``$JOURNAL_STREAM`` names the stream,
  see systemd.exec(5)) each JSON line starts with ``<N>``, its syslog
  priority (error 3, warning 4, info 6, debug 7), which journald strips and
  records as the entry's PRIORITY, so ``journalctl -p warning`` works;
* to ``<state_dir>/agentd.log``: the same JSON object, always, so ``agentd
  logs`` has something to show where there is no journal (cron, containers).
  The file is moved to ``agentd.log.1`` once it passes 10 MiB.

The run id is bound with ``structlog.contextvars`` and appears on every line
of a wake.  ``summary`` writes the one line per wake that says what happened.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, Callable

from agentd.config.config import load
from agentd.errors import AgentdError
from agentd.escapes import json_safe, safe


LOG_NAME = "agentd.log"
MAX_LOG_BYTES = 10 * 1024 * 1024
PRIORITY = {"critical": 2, "exception": 3, "error": 3, "warning": 4, "warn": 4,
            "info": 6, "msg": 6, "debug": 7}
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
SUMMARY_FIELDS = ("task", "status", "duration_s", "tokens", "cost_usd")
JOURNAL_UNITS = ("agentd.service", "agentd-notify@*")

_log_file: IO[str] | None = None


def under_journald(stream: Any, env: dict | None = None) -> bool:
    """Is ``stream`` connected to the journal?  ($JOURNAL_STREAM is 'dev:inode'.)

    A stream without a file descriptor (StringIO) counts as connected whenever
    $JOURNAL_STREAM is set.
    """
    value = (os.environ if env is None else env).get("JOURNAL_STREAM")
    if not value:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return True
    return value == f"{st.st_dev}:{st.st_ino}"


def _open_log(path: Path) -> IO[str] | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            if path.stat().st_size > MAX_LOG_BYTES:
                os.replace(path, path.with_name(path.name + ".1"))
        except FileNotFoundError:
            pass
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8", buffering=1)
    except OSError as e:
        print(f"agentd: cannot write the log file {path}: {e}", file=sys.stderr)
        return None


def _visible_values(event: dict) -> dict:
    """``event`` with each text made visible (``escapes.safe``); a traceback a line at a time."""
    return {k: "\n".join(map(safe, v.split("\n"))) if type(v) is str and k in ("exception", "stack")
            else safe(v) if type(v) is str else v for k, v in event.items()}


class _Tee:
    """Final processor: JSON to the file; JSON (maybe <N>-prefixed) or console text to the stream."""

    def __init__(self, file: IO[str] | None, console: Any, journal: bool):
        self.file, self.console, self.journal = file, console, journal

    def __call__(self, logger: Any, method: str, event: dict) -> str:
        line = json_safe(json.dumps(event, default=str, ensure_ascii=False))  # (no bidi or C1 byte in a log)
        if self.file is not None:
            try:
                self.file.write(line + "\n")
            except (OSError, ValueError):
                pass
        if self.console is not None:  # (the renderer's own colours are the only escapes it writes)
            return self.console(logger, method, _visible_values(event))
        if self.journal:
            return f"<{PRIORITY.get(method, 6)}>{line}"
        return line


def setup(run_id: str | None = None, stream: IO[str] | None = None, *, cfg: Any = None,
          log_file: Path | None = None, level: str | None = None, env: dict | None = None):
    """Configure structlog for this process and return a logger.

    ``log_file`` defaults to ``<cfg.state_dir>/agentd.log``; without ``cfg``
    the config is loaded (and no file is written if that fails).  ``level``
    defaults to info, or debug when $AGENTD_DEBUG is set.
    """
    global _log_file
    import structlog

    env = os.environ if env is None else env
    stream = sys.stderr if stream is None else stream
    if log_file is None:
        if cfg is None:
            try:
                cfg = load(dict(env))
            except AgentdError:
                cfg = None
        if cfg is not None:
            log_file = Path(cfg.state_dir) / LOG_NAME
    if _log_file is not None:
        try:
            _log_file.close()
        except OSError:
            pass
    _log_file = _open_log(Path(log_file)) if log_file else None
    level = level or ("debug" if env.get("AGENTD_DEBUG") else "info")
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    console = structlog.dev.ConsoleRenderer(colors=tty and not env.get("NO_COLOR")) if tty else None
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _Tee(_log_file, console, under_journald(stream, env)),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, 20)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    if run_id:
        structlog.contextvars.bind_contextvars(run_id=run_id)
    return structlog.get_logger("agentd")


def bind(**fields: Any) -> None:
    """Add fields (e.g. run_id=...) to every later line of this wake."""
    import structlog

    structlog.contextvars.bind_contextvars(**fields)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def format_summary(task: str | None = None, status: str | None = None, duration_s: float | None = None,
                   tokens: int | None = None, cost_usd: float | None = None, **_: Any) -> str:
    """'task T3 done in 2m05s, 12,345 tokens, $0.0400' (parts that are None are left out)."""
    head = f"task {task} {status or 'ended'}" if task else f"no task ran ({status or 'idle'})"
    parts = [head + (f" in {_duration(duration_s)}" if duration_s is not None else "")]
    if tokens:
        parts.append(f"{int(tokens):,} tokens")
    if cost_usd:
        parts.append(f"${cost_usd:.4f}")
    return ", ".join(parts)


def summary(log: Any, **fields: Any) -> str:
    """Log the one summary line of a wake (event 'wake summary'); return it as text."""
    line = format_summary(**fields)
    log.info("wake summary", **{k: fields.get(k) for k in SUMMARY_FIELDS},
             **{k: v for k, v in fields.items() if k not in SUMMARY_FIELDS}, line=line)
    return line


# -- agentd logs ------------------------------------------------------------------
def _journal_has_entries(jc: str, env: dict) -> bool:
    args = [jc, "--user", "--no-pager", "-q", "-n", "1", "-o", "json"]
    for unit in JOURNAL_UNITS:
        args += ["-u", unit]
    try:
        p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0 and bool(p.stdout.strip())


def follow_logs(cfg: Any, follow: bool = False, *, out: Callable[[str], None] | None = None,
                stop: Callable[[], bool] | None = None, poll: float = 0.5) -> int:
    """``agentd logs [-f]``: the journal of the agentd units, else the log file.

    Uses ``journalctl --user -u agentd.service -u 'agentd-notify@*' -o cat``
    when journalctl exists and the journal has agentd entries; otherwise
    prints ``<state_dir>/agentd.log`` (following it with ``follow``).
    ``stop`` ends a follow when it returns true (for tests; Ctrl-C otherwise).
    """
    env = cfg.env
    jc = shutil.which("journalctl", path=env.get("PATH", os.defpath))
    if jc and _journal_has_entries(jc, env):
        cmd = [jc, "--user", "-o", "cat"]
        for unit in JOURNAL_UNITS:
            cmd += ["-u", unit]
        if follow:
            cmd.append("-f")
        try:
            return subprocess.call(cmd, env=env)
        except KeyboardInterrupt:
            return 0
    if out is None:
        readable = sys.stdout.isatty()
        out = lambda s: (sys.stdout.write(readable_lines(s) if readable else s), sys.stdout.flush())  # noqa: E731
    path = Path(cfg.state_dir) / LOG_NAME
    if not path.exists() and not follow:
        print(f"agentd: no logs yet: no journal entries for agentd.service and no {path}", file=sys.stderr)
        return 1
    try:
        return _tail(path, follow, out, stop, poll)
    except KeyboardInterrupt:
        return 0


def readable_lines(text: str) -> str:
    """The log file's JSON lines as a person reads them in a terminal:
    ``2026-11-22T15:32:09Z info  run started  task=ok kind=command run_id=…``; other lines as they are."""
    out = []
    for line in text.splitlines(keepends=True):
        try:
            d = json.loads(line)
        except ValueError:
            d = None
        if not isinstance(d, dict):  # as it is, but never a terminal escape
            out.append(safe(line.rstrip("\n")) + ("\n" if line.endswith("\n") else ""))
            continue
        ts = d.pop("timestamp", None)
        at = f"{str(ts)[:19]}Z" if ts else "-"
        level, event = d.pop("level", ""), d.pop("event", "")
        rest = " ".join(f"{k}={v}" for k, v in d.items())
        out.append(safe(f"{at} {level:<7} {event}  {rest}".rstrip()) + "\n")  # no terminal escapes
    return "".join(out)


def _tail(path: Path, follow: bool, out: Callable[[str], None], stop: Callable[[], bool] | None,
          poll: float) -> int:
    f, ino, pos = None, None, 0
    first = True
    while True:
        if f is None and path.exists():
            f = open(path, encoding="utf-8", errors="replace")
            ino, pos = os.fstat(f.fileno()).st_ino, 0
            if first and follow:  # like tail -f: the last lines, then what comes
                lines = f.readlines()[-20:]
                out("".join(lines))
                pos = f.tell()
            first = False
        if f is not None:
            f.seek(pos)
            chunk = f.read()
            if chunk:
                out(chunk)
                pos = f.tell()
        first = False
        if not follow:
            if f is not None:
                f.close()
            return 0
        if stop is not None and stop():
            if f is not None:
                f.close()
            return 0
        time.sleep(poll)
        try:  # rotated or truncated: start over on the new file
            st = path.stat()
            if f is not None and (st.st_ino != ino or st.st_size < pos):
                f.close()
                f = None
        except FileNotFoundError:
            pass
