"""Notifications: a one-line summary to the command of config key ``notify``.

The command is a shell command line (run with ``/bin/sh -c``).  It gets the
summary twice, use whichever suits: on stdin (one line) and in the
environment variable ``AGENTD_SUMMARY``.  Examples::

    notify: notify-send agentd "$AGENTD_SUMMARY"
    notify: curl -s -d "$AGENTD_SUMMARY" ntfy.sh/my-agentd-topic
    notify: mail -s "agentd $(hostname)" me@example.com

It has 30 seconds; then its whole process group is killed.  A failing or
hanging command is logged, never raised: a notification must not break a wake.

``agentd-notify@.service`` (started by ``OnFailure=`` of agentd.service) runs
``agentd notify --unit agentd.service``, i.e. ``notify_from_unit``.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from agentd.escapes import safe
from agentd.platform.logs import format_summary
from agentd.redact import without_llm_keys
from agentd.sandbox import procs
from agentd.store.store import Store


NOTIFY_TIMEOUT = 30.0


def _warn(event: str, **fields: Any) -> None:
    import structlog

    if not structlog.is_configured():  # `agentd notify` on its own: one line on stderr, never on stdout
        print(f"agentd: {event}: " + ", ".join(f"{k}={v}" for k, v in fields.items()), file=sys.stderr)
        return
    structlog.get_logger("agentd.platform.notify").warning(event, **fields)


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, made visible (``escapes.safe``: a model's text can't drive the terminal or
    the desktop that shows it), cut to ``limit``."""
    return safe(" ".join(str(text).split()), limit)


def notify(cfg: Any, line: str, timeout: float = NOTIFY_TIMEOUT, limit: int = 300) -> bool:
    """Run the ``notify`` command with ``line`` (cut to ``limit``; 0: never, for an approval request,
    whose ``what`` is bounded and shown whole); True when it ran and exited 0.

    False (and nothing run) when no command is configured; False with a
    warning logged when it fails or times out.
    """
    command = cfg.values.get("notify")
    if not command:
        return False
    line = one_line(line, limit)

    env = {**without_llm_keys(cfg.env), "AGENTD_SUMMARY": line}

    try:
        rc, out, _, stopped = procs.run(["/bin/sh", "-c", command], env=env, input=(line + "\n").encode(),
                                        timeout=timeout, max_bytes=64 * 1024, merge_stderr=True)
    except OSError as e:
        _warn("notify command could not start", command=command, error=str(e))
        return False
    output = out.decode("utf-8", "replace")
    if stopped:
        _warn("notify command timed out" if "timed out" in stopped else "notify command stopped",
              command=command, timeout_s=timeout, why=stopped)
        return False
    if rc != 0:
        _warn("notify command failed", command=command, exit_code=rc,
              output=one_line(output or "", 500))
        return False
    return True


def summary_of_last_run(cfg: Any, unit: str) -> str:
    """'agentd@host: agentd.service failed; last run ab12 (started ...): task T3 failed in 1m02s, ... — reason'."""
    head = f"agentd@{cfg.host}: {unit} failed" if unit else f"agentd@{cfg.host}"
    run = None
    if cfg.store_path.exists():
        try:
            store = Store(cfg.store_path)
            try:
                runs = store.runs(limit=1, host=cfg.host)
            finally:
                store.close()
            run = runs[0] if runs else None
        except Exception as e:  # a broken store must not stop the notification
            return one_line(f"{head}; the run store could not be read ({e}); see `agentd logs`")
    if run is None:
        return one_line(f"{head} before any run was recorded; see `agentd logs`")
    tokens = (run.get("input_tokens") or 0) + (run.get("output_tokens") or 0)
    what = format_summary(task=run.get("task_id"), status=run.get("status"), duration_s=run.get("duration_s"),
                          tokens=tokens, cost_usd=run.get("cost_usd"))
    why = run.get("reason") or run.get("summary")
    line = f"{head}; last run {run.get('run_id')} (started {run.get('started_at')}): {what}"
    return one_line(line + (f" — {why}" if why else ""))


def notify_from_unit(cfg: Any, unit: str, out: Callable[[str], None] | None = None) -> int:
    """``agentd notify [--unit NAME]``: summarise the last run and send it to the notify command.
    1 if the command failed.

    Under systemd (``$INVOCATION_ID`` set: the agentd-notify@ unit) the summary is printed to stdout,
    which is the journal.  Run by hand, everything it says goes to stderr (stdout stays for results):
    the summary and where it went, or that no notify command is configured and how to set one."""
    by_hand = not cfg.env.get("INVOCATION_ID")
    line = summary_of_last_run(cfg, unit)
    say = out or (print if not by_hand else lambda s: print(s, file=sys.stderr))
    say(line)
    command = cfg.values.get("notify")
    if not command:
        if by_hand:
            print("agentd: no `notify` command is configured, so it went to this terminal only; set one in "
                  f"{cfg.config_file}, e.g. `notify: notify-send agentd \"$AGENTD_SUMMARY\"` "
                  "(docs/operations.md, Notifications)", file=sys.stderr)
        else:
            print("agentd: no `notify` command in the config; the summary went to the journal only", file=sys.stderr)
        return 0
    if notify(cfg, line):
        if by_hand:
            print(f"agentd: sent to the notify command ({command})", file=sys.stderr)
        return 0
    if by_hand:
        print(f"agentd: the notify command failed ({command}): the warning above says how", file=sys.stderr)
    return 1
