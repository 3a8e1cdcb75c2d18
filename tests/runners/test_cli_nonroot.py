"""The real claude and codex CLIs run by ``agentd wake`` as a normal (non-root) user.

tests/runners/test_cli_contract.py runs them as whoever runs the tests (root on CI and GPU pods).  Here a
root test process drops to ``nobody`` (``setpriv --reuid --regid --clear-groups``) and runs the
real ``agentd wake --now`` with ``AGENTD_PROVIDER=claude-cli`` / ``codex-cli`` against the loopback
fake model server (tests/fake_llm.py, served from the test process): the CLI runs inside agentd's
bwrap sandbox, which then needs unprivileged user namespaces.

Everything the user touches lives in a throwaway directory it owns (HOME, worklog dir, state,
workspace, CODEX_HOME); the checkout, the venv's site-packages and tests/agent_clis/node_modules must be
readable by it.  What can't be had here is a skip that says why: not root (can't switch users), no
setpriv, a checkout or CLI the user can't read, no Python the user can run, or a sandbox that
doesn't start unprivileged.

The venv's own interpreter may not be runnable by other users (a pyenv Python under a 0700
/root, as on this project's dev box): then the system Python of the same version runs agentd
with the venv's site-packages on PYTHONPATH (the compiled wheels there are built for that
version).  Whether the user can run a path is probed through ``sh -c 'exec ...'`` as the user:
``setpriv <path>`` itself got past the 0700 /root here (the exec happens before its capabilities
are gone), and ran a pyenv binary with Debian's libpython and stdlib.

The whole contract suite also passes run as a user (not part of ``make test``)::

    setpriv --reuid=65534 --regid=65534 --clear-groups env -i PATH=/usr/bin:/bin HOME=/tmp \
        PYTHONPATH=daemon:tests:<venv site-packages> /usr/bin/python3.11 -m pytest tests/runners/test_cli_contract.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest

import real_cli as rc
from fake_llm import FakeLLM, error, reply

REPO = Path(__file__).resolve().parents[2]
UID = GID = 65534  # nobody / nogroup
PROMPT_DONE = "The workspace is empty.\nSTATUS: done"


def _setpriv() -> list[str]:
    return ["setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups"]


def _as_user(argv: list[str], env: dict, cwd: str = "/", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*_setpriv(), *argv], env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def _sh(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``script`` run by /bin/sh as the user, ``args`` as $0, $1, ... (its execs are the user's own)."""
    return _as_user(["/bin/sh", "-c", script, *args], env or {"PATH": "/usr/bin:/bin"})


def _pythonpath() -> str:
    return os.pathsep.join([str(REPO / "daemon"), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])


@lru_cache(maxsize=None)
def _user_python() -> tuple[str | None, str]:
    """(an interpreter the user can run agentd with, what was tried)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, os.path.realpath(sys.executable)]
    candidates += [p for d in ("/usr/local/bin", "/usr/bin") if os.path.exists(p := f"{d}/{version}")]
    tried = []
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": _pythonpath(), "HOME": "/"}
    probe = ("import sys, agentd, yaml, psutil, filelock; "
             f"assert sys.version_info[:2] == {tuple(sys.version_info[:2])}, sys.version")
    for py in dict.fromkeys(candidates):
        p = _sh('exec "$0" -c "$1"', py, probe, env=env)
        if p.returncode == 0:
            return py, ""
        tried.append(f"{py}: {(p.stderr.strip().splitlines() or ['rc %d' % p.returncode])[-1]}")
    return None, "; ".join(tried)


@lru_cache(maxsize=None)
def why_not() -> str | None:
    """Why agentd can't be run as uid 65534 here, or None."""
    if not rc.is_root():
        return "needs root to switch to an unprivileged user (setpriv --reuid); run as root to cover non-root"
    if not shutil.which("setpriv"):
        return "setpriv (util-linux) is not installed: can't drop to an unprivileged user"
    p = _sh("test -r \"$0\" && test -x \"$1\"", str(REPO / "daemon" / "agentd" / "wake.py"), str(REPO / "tests"))
    if p.returncode != 0:
        return f"the checkout {REPO} is not readable by uid {UID}: the tests would need it to be (not chmod-ed here)"
    py, tried = _user_python()
    if py is None:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        return f"no Python {version} that uid {UID} can run agentd with ({tried})"
    return None


def cli_missing(name: str) -> str | None:
    if why := rc.missing(name):
        return why
    binary = rc.BIN / name
    p = _sh('test -x "$0" && test -r "$(readlink -f "$0")"', str(binary))
    if p.returncode != 0:
        return f"{binary} is not readable and executable by uid {UID} (check the modes of tests/agent_clis/node_modules)"
    return None


@lru_cache(maxsize=None)
def sandbox_unusable() -> str | None:
    """agentd's own sandbox probe, run as the user: bwrap needs unprivileged user namespaces there."""
    code = ("import os, json; from agentd.sandbox import bwrap; s = bwrap.status(dict(os.environ)); "
            "print(json.dumps([s.ok, s.message()]))")
    p = _as_user([_user_python()[0], "-c", code], {"PATH": "/usr/bin:/bin", "PYTHONPATH": _pythonpath(), "HOME": "/"})
    if p.returncode != 0:
        return f"agentd's sandbox probe failed as uid {UID}: {p.stderr.strip()[-300:]}"
    ok, message = json.loads(p.stdout)
    if not ok:
        raw = _as_user(["bwrap", "--unshare-user", "--ro-bind", "/", "/", "true"], {"PATH": "/usr/bin:/bin"})
        return (f"bwrap can't start as uid {UID} (unprivileged user namespaces off?): {message}; `setpriv ... "
                f"bwrap --unshare-user --ro-bind / / true` -> rc {raw.returncode} {raw.stderr.strip()[:200]}")
    return None


def _skip_reason(cli: str) -> str | None:
    return why_not() or cli_missing(cli) or sandbox_unusable()


@pytest.fixture
def claude_ok():
    """Skips (saying why) unless the real claude can be run by agentd as uid 65534 here; probed when used."""
    if why := _skip_reason("claude"):
        pytest.skip(why)


@pytest.fixture
def codex_ok():
    if why := _skip_reason("codex"):
        pytest.skip(why)


class UserWake:
    """A throwaway tree owned by uid 65534, and ``agentd`` run as that user over it."""

    def __init__(self, base: Path, fake: FakeLLM, provider: str, *, sandbox: bool = True, **extra):
        self.base, self.provider = base, provider
        self.home, self.ws, self.wl = base / "home", base / "ws", base / "wl"
        for d in (self.home, self.ws, self.wl):
            d.mkdir(parents=True, exist_ok=True)
        cli_env = (rc.claude_env(fake.url, base / "clihome", sandbox=False) if provider == "claude-cli"
                   else rc.codex_env(fake.url, base / "clihome"))
        self.env = {**cli_env, "HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / ".config"),
                    "XDG_STATE_HOME": str(self.home / ".local" / "state"),
                    "XDG_DATA_HOME": str(self.home / ".local" / "share"), "XDG_CACHE_HOME": str(self.home / ".cache"),
                    "PYTHONPATH": _pythonpath(), "AGENTD_HOST": "testhost", "AGENTD_WORKLOG_DIR": str(self.wl),
                    "AGENTD_WORKSPACE": str(self.ws), "AGENTD_PROVIDER": provider, "AGENTD_CALL_TIMEOUT": "60s",
                    **({} if sandbox else {"AGENTD_SANDBOX": "off"}), **{k: str(v) for k, v in extra.items()}}
        if provider == "codex-cli":  # codex reads its config from $CODEX_HOME; the user's own home here
            self.env["CODEX_HOME"] = str(base / "clihome" / ".codex")
        self.worklog = self.wl / "testhost_worklog.txt"

    def chown(self) -> None:
        for root, dirs, files in os.walk(self.base):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(root, name), UID, GID)
        os.chown(self.base, UID, GID)

    def agentd(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        self.chown()
        return _as_user([_user_python()[0], "-m", "agentd", *args], self.env, cwd=str(self.home), timeout=timeout)

    def wake(self, directive: str = "DIRECTIVE: look at the workspace and report {id: look}") -> dict:
        self.worklog.write_text(directive + "\n")
        r = self.agentd("wake", "--now")
        assert r.returncode == 0, r.stdout + r.stderr
        runs = self.agentd("runs", "--json")
        assert runs.returncode == 0, runs.stderr
        (run,) = json.loads(runs.stdout)
        return run

    def show(self, run_id: str) -> str:
        r = self.agentd("show", run_id)
        assert r.returncode == 0, r.stderr
        return r.stdout


@pytest.fixture
def user_tree():
    """A directory outside pytest's 0700 /tmp/pytest-of-root, removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="agentd-nonroot-"))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _owned_by_user(path: Path) -> bool:
    return path.stat().st_uid == UID


def _tool_result_text(request: dict) -> str:
    """The tool output the CLI sent back to the model (Messages API or Responses API)."""
    body = request["body"]
    texts = []
    for m in body.get("messages") or []:
        for b in m["content"] if isinstance(m.get("content"), list) else []:
            if b.get("type") == "tool_result":
                c = b.get("content")
                texts.append(c if isinstance(c, str) else json.dumps(c))
    for item in body.get("input") or []:
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            out = item.get("output")
            texts.append(out if isinstance(out, str) else json.dumps(out))
    return "\n".join(texts)


def bash(cmd):
    return ("Bash", {"command": cmd, "description": "Run a command"})


def exec_command(cmd):
    return ("exec_command", {"cmd": cmd})


# -- probes ------------------------------------------------------------------------------------

# The tool's shell as the user: its own env, then every environment it can see inside (bwrap's init's
# included: /proc/1 is bwrap in its PID namespace), so a key anywhere in the sandbox would show.
READ_ALL_ENVIRONS = ("id -u > out.txt; env; for f in /proc/[0-9]*/environ; do echo \"== $f\"; "
                     "tr '\\0' '\\n' < $f 2>&1; done; test -r /proc/1/environ && echo bwrap-init-seen")


def test_the_unprivileged_user_can_run_bwrap_or_the_reason_is_said():
    """bwrap as uid 65534, with the namespaces of agentd's sandbox; a skip here says why the CLI tests skip."""
    if why := why_not():
        pytest.skip(why)
    p = _as_user(["bwrap", "--unshare-user", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                  "--unshare-all", "--share-net", "sh", "-c", "id -u"], {"PATH": "/usr/bin:/bin"})
    if p.returncode != 0:
        pytest.skip(f"bwrap does not start as uid {UID}: {p.stderr.strip()[:300]} (unprivileged user namespaces "
                    "are off: kernel.unprivileged_userns_clone, user.max_user_namespaces, or an AppArmor "
                    "restriction; the non-root CLI tests skip too)")
    assert p.stdout.strip() == str(UID)


# -- claude-cli ----------------------------------------------------------------------------------

def test_nonroot_claude_raw_bypasses_permissions_without_is_sandbox(claude_ok, fake, user_tree):
    """As a normal user claude needs no IS_SANDBOX to run with bypassPermissions (as root it refuses)."""
    fake.script(reply(PROMPT_DONE))
    w = UserWake(user_tree, fake, "claude-cli")
    env = {k: v for k, v in w.env.items() if k != "IS_SANDBOX"}
    w.chown()
    p = _as_user(rc.claude_argv("Report. End with STATUS: done."), env, cwd=str(w.ws), timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(p.stdout)
    assert res["is_error"] is False and res["result"] == PROMPT_DONE


def test_nonroot_wake_claude_done(claude_ok, fake, user_tree):
    fake.script(reply(PROMPT_DONE))
    w = UserWake(user_tree, fake, "claude-cli")
    run = w.wake()
    assert run["provider"] == "claude-cli" and run["status"] == "done", run
    assert (run["input_tokens"], run["output_tokens"]) == (100, 20) and run["cost_usd"] > 0
    assert "status=done" in w.worklog.read_text() and _owned_by_user(w.worklog)
    assert len(fake.requests) == 1


def test_nonroot_wake_claude_tool_round_trip_runs_as_the_user_without_the_key(claude_ok, fake, user_tree):
    fake.script(reply(tools=[bash(READ_ALL_ENVIRONS)]), reply("Ran id and env.\nSTATUS: done"))
    w = UserWake(user_tree, fake, "claude-cli")
    run = w.wake()
    assert run["status"] == "done", run
    assert (run["input_tokens"], run["output_tokens"]) == (200, 40)
    out = w.ws / "look" / "out.txt"  # the task's own workspace
    assert out.read_text() == f"{UID}\n" and _owned_by_user(out)  # the tool ran as the user, in the workspace
    env_dump = _tool_result_text(fake.requests[1])
    assert f"HOME={w.home}" in env_dump, env_dump[:2000]  # it is the env of the tool's shell
    assert "/proc/1/environ" in env_dump and "bwrap-init-seen" in env_dump  # every process's environ was read
    assert rc.API_KEY not in env_dump and "ANTHROPIC_API_KEY=sk-ant-api03-agentd-proxy-" in env_dump  # a placeholder
    assert "IS_SANDBOX=1" in env_dump  # what agentd passes inside its sandbox (harmless as non-root)
    assert "(sandbox: bwrap" in w.show(run["run_id"])  # in agentd's sandbox, started by the user


def test_nonroot_wake_claude_with_sandbox_off_runs_without_is_sandbox(claude_ok, fake, user_tree):
    """`sandbox: off` is refused for claude only as root; as a user claude runs without IS_SANDBOX."""
    fake.script(reply(tools=[bash("env")]), reply("Ran env.\nSTATUS: done"))
    w = UserWake(user_tree, fake, "claude-cli", sandbox=False)
    run = w.wake()
    assert run["status"] == "done", run
    env_dump = _tool_result_text(fake.requests[1])
    assert f"HOME={w.home}" in env_dump and "IS_SANDBOX" not in env_dump
    assert rc.API_KEY not in env_dump


def test_nonroot_wake_claude_401_blocks_naming_auth(claude_ok, fake, user_tree):
    fake.default = error(401, "invalid x-api-key", type="authentication_error")
    w = UserWake(user_tree, fake, "claude-cli")
    run = w.wake()
    assert run["status"] == "blocked" and run["reason"].startswith("auth: claude"), run


# -- codex-cli -----------------------------------------------------------------------------------

@pytest.mark.parametrize("tmpdir_var", ["set", "unset"])
def test_nonroot_wake_codex_done(codex_ok, fake, user_tree, tmpdir_var):
    """With TMPDIR unset (as for a plain user) the per-run login dir (CODEX_HOME) lies in the shared /tmp."""
    fake.script(reply(PROMPT_DONE))
    w = UserWake(user_tree, fake, "codex-cli")
    if tmpdir_var == "unset":
        del w.env["TMPDIR"]
    run = w.wake()
    assert run["provider"] == "codex-cli" and run["status"] == "done", run
    assert (run["input_tokens"], run["output_tokens"]) == (100, 20)
    assert "status=done" in w.worklog.read_text()
    assert not list(Path(tempfile.gettempdir()).glob(f"agentd-cli-*-{run['run_id'][:24]}-*"))  # its CODEX_HOME removed


def test_nonroot_wake_codex_tool_round_trip_runs_as_the_user_without_the_key(codex_ok, fake, user_tree):
    fake.script(reply(tools=[exec_command(READ_ALL_ENVIRONS)]), reply("Ran id and env.\nSTATUS: done"))
    w = UserWake(user_tree, fake, "codex-cli")
    run = w.wake()
    assert run["status"] == "done", run
    out = w.ws / "look" / "out.txt"  # the task's own workspace
    assert out.read_text() == f"{UID}\n" and _owned_by_user(out)
    env_dump = _tool_result_text(fake.requests[1])
    assert f"HOME={w.home}" in env_dump, env_dump[:2000]
    assert "/proc/1/environ" in env_dump and "bwrap-init-seen" in env_dump  # every process's environ was read
    assert rc.OPENAI_KEY not in env_dump and "FAKE_OPENAI_API_KEY" not in env_dump
    leftovers = list(Path(w.env["TMPDIR"]).glob(f"agentd-cli-*-{run['run_id'][:24]}-*"))
    assert not leftovers, leftovers  # the per-run CODEX_HOME is gone
    assert "(sandbox: bwrap" in w.show(run["run_id"])


def test_nonroot_wake_codex_401_blocks_naming_auth(codex_ok, fake, user_tree):
    fake.default = error(401, "Incorrect API key provided", type="invalid_request_error", code="invalid_api_key")
    w = UserWake(user_tree, fake, "codex-cli")
    run = w.wake()
    assert run["status"] == "blocked" and run["reason"].startswith("auth: codex"), run
