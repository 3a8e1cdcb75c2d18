"""Attacks on the sandbox itself (issue 17, findings 2, 5 and 7 for the API agents), each tried for
real through the agent's sandboxed shell (``tools.Tools``, real bwrap), and each run once more with
its protection switched off in the test (monkeypatched), to show the test can fail.

- /proc/sys and the rest of the host's /proc a capability-less root could write: read-only.
- A PATH dir under /run/user (fnm's multishell bin) never brings /run/user, or its session bus, back.
- No key, by name or by value, in any environment visible inside (``/proc/*/environ``).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from agentd import bwrap, canary, doctor, sandbox
from agentd.providers import ToolCall
from agentd.tools import Tools
from fake_llm import make_config

KEY = "sk-ant-api03-attacks-0123456789abcdefXYZ"
HAVE_BWRAP = bwrap.status().ok
needs_bwrap = pytest.mark.skipif(not HAVE_BWRAP, reason=f"bwrap unusable here: {bwrap.status().message()}")
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="the attack needs uid 0 (a sandbox as a user can't write sysctls)")
PROTECTION = pytest.mark.parametrize("protection", ["on", "off"])


@pytest.fixture(autouse=True)
def fresh_probe():
    bwrap.reset_cache()
    yield
    bwrap.reset_cache()


@pytest.fixture
def base():
    d = Path(tempfile.mkdtemp(prefix="agentd-atk-", dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def layout(base: Path, **values):
    home = base / "home"
    state = home / ".local" / "state" / "agentd"
    env = values.pop("_env", {})
    cfg = make_config(base, {"workspace": str(state / "workspace"), **values}, {"ANTHROPIC_API_KEY": KEY, **env})
    for d in (cfg.state_dir, cfg.workspace, cfg.worklog_dir, cfg.tasks_dir):
        d.mkdir(parents=True, exist_ok=True)
    return cfg


def sh(cfg, command: str, timeout: float = 60) -> str:
    r = Tools(cfg.workspace, cfg.env, cfg=cfg).run(ToolCall("c1", "shell", {"command": command}), timeout)
    return r.text


# -- finding 2: /proc/sys ---------------------------------------------------------------------------
@needs_bwrap
@needs_root
@PROTECTION
def test_a_sandboxed_root_cannot_write_kernel_core_pattern(base, monkeypatch, protection):
    """The attack writes back the value already there (never a change to the host): with the covers
    over /proc, the kernel refuses the write; without them (PROTECTION OFF, ON PURPOSE), it succeeds."""
    if protection == "off":
        monkeypatch.setattr(bwrap, "proc_args", lambda: ([], []))
    cfg = layout(base)
    before = Path("/proc/sys/kernel/core_pattern").read_text()
    text = sh(cfg, 'v=$(cat /proc/sys/kernel/core_pattern) && printf "%s\\n" "$v" > /proc/sys/kernel/core_pattern '
                   "&& echo WROTE-CORE-PATTERN")
    assert Path("/proc/sys/kernel/core_pattern").read_text() == before
    if protection == "on":
        assert "WROTE-CORE-PATTERN" not in text and "Read-only file system" in text, text
    else:
        assert "WROTE-CORE-PATTERN" in text, text


# Run inside: every rw mount, and every file under /proc (the host's, not a process's) that access(2)
# says is writable (a /dev/null over a masked file is not counted: writes to it go nowhere).
SURVEY = r"""
awk '{split($6, o, ","); if (o[1] == "rw") print "MOUNT " $5}' /proc/self/mountinfo
for f in /proc/*; do
  case "${f#/proc/}" in [0-9]*|self|thread-self) continue;; esac
  find "$f" -maxdepth 4 -writable ! -type c 2>/dev/null | sed 's/^/PROC /'
done
echo SURVEY-DONE
"""


@needs_bwrap
@needs_root
@PROTECTION
def test_nothing_outside_the_workspace_tmp_and_its_own_dev_is_writable_as_root(base, monkeypatch, protection):
    if protection == "off":  # PROTECTION OFF, ON PURPOSE
        monkeypatch.setattr(bwrap, "proc_args", lambda: ([], []))
    cfg = layout(base)
    text = sh(cfg, SURVEY)
    assert "SURVEY-DONE" in text, text
    ws = str(cfg.workspace.resolve())
    allowed = {ws, "/tmp", "/dev/shm", "/run", "/proc", "/dev", "/dev/pts", "/dev/null", "/dev/zero", "/dev/full",
               "/dev/random", "/dev/urandom", "/dev/tty"}
    mounts = {line[6:] for line in text.splitlines() if line.startswith("MOUNT ")}
    proc = [line[5:] for line in text.splitlines() if line.startswith("PROC ")]
    assert mounts - allowed == set(), mounts - allowed
    if protection == "on":
        assert proc == [], proc
    else:
        assert any(p.startswith("/proc/sys/") for p in proc), proc
