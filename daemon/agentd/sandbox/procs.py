"""Child processes, the one way agentd runs them.

Each child starts in its own session (so its whole process group can be
stopped), its output is read through pipes with a byte cap, and a wall-clock
limit and an idle-output limit stop it: SIGTERM to the group, SIGKILL 5 s
later.  Used by command tasks, experiments, the agent's shell tool, the CLI agents
and the notify command.  ``kill_orphan`` stops what a killed wake left running.
"""

from __future__ import annotations

import io
import os
import selectors
import signal
import subprocess
import time
from pathlib import Path


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
    start = time.monotonic() if start is None else start
    sel = selectors.DefaultSelector()
    for pipe in sinks:
        sel.register(pipe, selectors.EVENT_READ)
    written, last_output, stopped = 0, start, None
    try:
        while sel.get_map() or proc.poll() is None:
            if not sel.get_map():  # it closed its output but runs on: keep watching the clock
                try:
                    proc.wait(timeout=0.2)  # (returns as soon as it exits: no 0.2 s per short child)
                except subprocess.TimeoutExpired:
                    pass
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


class Stopped(Exception):
    """agentd got SIGTERM (systemd stopping the service) while a watched child ran; the child was killed."""

    def __init__(self, returncode: int | None = None):
        super().__init__("stopped")
        self.returncode = returncode


class LineTap:
    """A sink that also hands each whole line it sees to ``on_line`` (an experiment's ``PHASE`` lines)."""

    def __init__(self, out, on_line):
        self.out, self.on_line, self.buf = out, on_line, b""

    def write(self, chunk: bytes) -> None:
        self.out.write(chunk)
        self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        self.buf = self.buf[-4096:]  # a line without an end is not kept whole
        for line in lines:
            self.on_line(line.decode("utf-8", "replace"))


def start(argv: list[str], *, cwd, env, input: bytes | None = None, merge_stderr: bool = False) -> subprocess.Popen:
    """Start a child in its own session with piped output; ``input`` is written to its stdin, else stdin is
    /dev/null."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                            start_new_session=True)
    if input is not None:
        try:
            proc.stdin.write(input)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    return proc


def watch(argv: list[str], *, cwd, env, out_path, err_path, wall: float, idle: float | None, max_bytes: int,
          input: bytes | None = None, on_stdout_line=None) -> tuple[int | None, str | None]:
    """Run a child to the end with its stdout and stderr going to files: (exit code, why it was stopped).

    The limits are ``pump``'s; SIGTERM to agentd meanwhile kills the child's group and raises ``Stopped``.
    """
    def on_term(signum, frame):
        raise Stopped()

    old = signal.signal(signal.SIGTERM, on_term)
    proc = None
    t0 = time.monotonic()
    try:
        proc = start(argv, cwd=cwd, env=env, input=input)
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            sink = LineTap(out, on_stdout_line) if on_stdout_line else out
            stopped = pump(proc, {proc.stdout: sink, proc.stderr: err}, wall=wall, idle=idle, max_bytes=max_bytes,
                           start=t0)
    except (Stopped, KeyboardInterrupt):
        if proc is not None:
            kill_group(proc)
        raise Stopped(proc.returncode if proc is not None else None) from None
    finally:
        signal.signal(signal.SIGTERM, old)
    return proc.returncode, stopped


def run(argv: list[str], *, cwd=None, env=None, input: bytes | None = None, timeout: float,
        max_bytes: int = 16 * 2**20, merge_stderr: bool = False) -> tuple[int | None, bytes, bytes, str | None]:
    """Run to the end (or a limit): (exit code or None if stopped, stdout, stderr, why stopped)."""
    proc = start(argv, cwd=cwd, env=env, input=input, merge_stderr=merge_stderr)
    out, err = io.BytesIO(), io.BytesIO()
    sinks = {proc.stdout: out} if merge_stderr else {proc.stdout: out, proc.stderr: err}
    stopped = pump(proc, sinks, wall=timeout, max_bytes=max_bytes)
    return (None if stopped else proc.returncode), out.getvalue(), err.getvalue(), stopped


def kill_orphan(run_id: str) -> str | None:
    """Stop what a killed wake left running for this run: commands, agent tools, CLI agents.

    Every process a run starts carries AGENTD_RUN_ID=<run_id> in its environment; the
    process groups of those still alive (other than ours) are stopped, SIGTERM then SIGKILL.
    """
    marker = f"AGENTD_RUN_ID={run_id}".encode()
    groups = set()

    for proc in Path("/proc").glob("[0-9]*"):
        try:
            pid = int(proc.name)
            if pid != os.getpid() and marker in (proc / "environ").read_bytes().split(b"\0"):
                groups.add(os.getpgid(pid))
        except (OSError, ValueError):
            continue
    groups.discard(os.getpgrp())
    if not groups:
        return None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for g in groups:
            try:
                os.killpg(g, sig)
            except ProcessLookupError:
                pass
        for _ in range(50):
            alive = []
            for g in groups:
                try:
                    os.killpg(g, 0)
                    alive.append(g)
                except ProcessLookupError:
                    pass
            if not alive:
                break
            time.sleep(0.1)
    return f"its processes were still running (process groups {', '.join(map(str, sorted(groups)))}); stopped them"
