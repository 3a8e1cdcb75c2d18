"""Child processes, the one way agentd runs them.

Each child starts in its own session (so its whole process group can be
stopped), its output is read through pipes with a byte cap, and a wall-clock
limit and an idle-output limit stop it: SIGTERM to the group, SIGKILL 5 s
later.  Used by command tasks, the agent's shell tool, the CLI agents and the
notify command.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time


def kill_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def pump(proc: subprocess.Popen, sinks: dict, *, wall: float, idle: float | None = None, max_bytes: int,
         start: float | None = None) -> str | None:
    """Copy each pipe of ``proc`` into its sink until the child exits or a limit stops it.

    ``sinks`` maps a pipe to a writable binary file.  Bytes past ``max_bytes`` (all pipes
    together) are dropped and the child is stopped.  Returns why it was stopped, or None.
    """
    import selectors

    start = time.monotonic() if start is None else start
    sel = selectors.DefaultSelector()
    for pipe in sinks:
        sel.register(pipe, selectors.EVENT_READ)
    written, last_output, stopped = 0, start, None
    try:
        while sel.get_map() or proc.poll() is None:
            if not sel.get_map():  # it closed its output but runs on: keep watching the clock
                time.sleep(0.2)
            for key, _ in sel.select(timeout=0.2) if sel.get_map() else ():
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                last_output = time.monotonic()
                sinks[key.fileobj].write(chunk[:max(max_bytes - written, 0)])
                written += len(chunk)
                if written > max_bytes:
                    stopped = f"printed more than {max_bytes / 2**20:g} MiB"
            now = time.monotonic()
            if stopped is None and now - start > wall:
                stopped = f"timed out after {wall:g} s (wall-clock limit)"
            elif stopped is None and idle is not None and now - last_output > idle:
                stopped = f"printed nothing for {idle:g} s (idle-output watchdog)"
            if stopped:
                kill_group(proc)
                break
        proc.wait()
    finally:
        sel.close()
        for pipe in sinks:
            pipe.close()
    return stopped


def run(argv: list[str], *, cwd=None, env=None, input: bytes | None = None, timeout: float,
        max_bytes: int = 16 * 2**20, merge_stderr: bool = False) -> tuple[int | None, bytes, bytes, str | None]:
    """Run to the end (or a limit): (exit code or None if stopped, stdout, stderr, why stopped)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                            start_new_session=True)
    if input is not None:
        try:
            proc.stdin.write(input)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    out, err = io.BytesIO(), io.BytesIO()
    sinks = {proc.stdout: out} if merge_stderr else {proc.stdout: out, proc.stderr: err}
    stopped = pump(proc, sinks, wall=timeout, max_bytes=max_bytes)
    return (None if stopped else proc.returncode), out.getvalue(), err.getvalue(), stopped
