"""Attacks on the sandbox itself (issue 17, findings 2, 5 and 7 for the API agents), each tried for
real through the agent's sandboxed shell (``tools.Tools``, real bwrap), and each run once more with
its protection switched off in the test (monkeypatched), to show the test can fail.

- /proc/sys and the rest of the host's /proc a capability-less root could write: read-only.
- A PATH dir under /run/user (fnm's multishell bin) never brings /run/user, or its session bus, back.
- No key, by name or by value, in any environment visible inside (``/proc/*/environ``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from agentd.sandbox import bwrap, canary, sandbox
from agentd.cli import doctor
from agentd.providers import ToolCall
from agentd.agent.tools import Tools
from fake_llm import KEY, layout  # agentd's default layout, with a key in its environment

HAVE_BWRAP = bwrap.status().ok
needs_bwrap = pytest.mark.skipif(not HAVE_BWRAP, reason=f"bwrap unusable here: {bwrap.status().message()}")
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="the attack needs uid 0 (a sandbox as a user can't write sysctls)")
PROTECTION = pytest.mark.parametrize("protection", ["on", "off"])


@pytest.fixture(autouse=True)
def fresh_probe(fresh_bwrap_probe):
    yield


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


# -- finding 5: /run/user comes back ------------------------------------------------------------------
def _old_programs_to_show(path: str, hidden) -> list[tuple[Path, Path]]:
    """PROTECTION OFF, ON PURPOSE: the rule before the fix, the top dir under /tmp or /run shown again
    (all of /run/user for fnm's multishell bin)."""
    out = []
    for d in path.split(":"):
        rd = sandbox._real(d)
        root = sandbox._masked_root(rd)
        if root is not None and rd.is_dir():
            top = root / rd.relative_to(root).parts[0]
            out.append((top, top))
    return list(dict.fromkeys(out))


@pytest.fixture
def run_user(base):
    """A login session's runtime dir, /run/user/<uid> for a uid no one has, holding a listening
    session-bus socket, ``bus``; removed afterwards (with /run/user when the test made it)."""
    if not os.access("/run", os.W_OK):
        pytest.skip("needs a writable /run (root)")
    made_parent = not os.path.isdir("/run/user")
    os.makedirs("/run/user", mode=0o755, exist_ok=True)
    rt = Path(tempfile.mkdtemp(prefix="4", dir="/run/user"))
    bus = socket.socket(socket.AF_UNIX)
    bus.bind(str(rt / "bus"))
    bus.listen(4)
    try:
        yield rt
    finally:
        bus.close()
        shutil.rmtree(rt, ignore_errors=True)
        if made_parent:
            shutil.rmtree("/run/user", ignore_errors=True)


def fnm_bin(base: Path, rt: Path, linked: bool) -> Path:
    """fnm's layout: PATH holds <runtime dir>/fnm_multishells/<shell>/bin, the shell dir (a link to the
    install dir, or the install dir itself) holding bin/ and lib/ beside it."""
    shells = rt / "fnm_multishells"
    shells.mkdir()
    install = (base / "fnm" / "node-versions" / "v22" / "installation") if linked else shells / "1234_5678"
    (install / "bin").mkdir(parents=True)
    (install / "lib").mkdir()
    (install / "lib" / "cli.txt").write_text("beside the program\n")
    prog = install / "bin" / "claude-from-run"
    prog.write_text('#!/bin/sh\necho "runs: $(cat "$(dirname "$0")/../lib/cli.txt")"\n')
    prog.chmod(0o755)
    if linked:
        (shells / "1234_5678").symlink_to(install)
    return shells / "1234_5678" / "bin"


BUS_PROBE = ("{py} -I -S -c \"import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect(sys.argv[1]); "
             "print('BUS-CONNECTED')\nexcept OSError as e: print('bus:', e.strerror)\" {bus}; ls -a {rt} 2>&1")


@needs_bwrap
@pytest.mark.parametrize("linked", [False, True], ids=["install-dir-under-run-user", "fnm-link-to-install-dir"])
def test_a_path_dir_under_run_user_runs_its_program_and_leaves_the_session_bus_out_of_reach(base, run_user,
                                                                                            linked):
    bindir = fnm_bin(base, run_user, linked)
    cfg = layout(base, _env={"PATH": f"{bindir}:/usr/bin:/bin"})
    py = sandbox.python_inside(sandbox.policy_for(cfg))
    text = sh(cfg, "claude-from-run; " + BUS_PROBE.format(py=py, bus=run_user / "bus", rt=run_user))
    assert "runs: beside the program" in text, text
    assert "BUS-CONNECTED" not in text and "bus: No such file or directory" in text, text
    assert "fnm_multishells" in text  # the runtime dir inside holds only the way to the PATH dir


@needs_bwrap
def test_with_the_parent_shown_again_the_session_bus_is_reached__proof_the_test_can_fail(base, run_user,
                                                                                        monkeypatch):
    monkeypatch.setattr(sandbox, "programs_to_show", _old_programs_to_show)  # PROTECTION OFF, ON PURPOSE
    bindir = fnm_bin(base, run_user, linked=False)
    cfg = layout(base, _env={"PATH": f"{bindir}:/usr/bin:/bin"})
    py = sandbox.python_inside(sandbox.policy_for(cfg))
    text = sh(cfg, BUS_PROBE.format(py=py, bus=run_user / "bus", rt=run_user))
    assert "BUS-CONNECTED" in text, text


@pytest.mark.parametrize("path_dir, shown", [
    ("/run/user/{uid}/bin", ["/run/user/{uid}/bin"]),  # the runtime dir itself never comes with it
    ("/run/user/{uid}", []),  # a runtime dir on PATH is not shown at all
    ("/tmp/{t}/node_modules/.bin", ["/tmp/{t}/node_modules"]),
    ("/tmp/{t}/tool", ["/tmp/{t}/tool"]),  # not a bin dir: alone
    ("/tmp/{t}/bin", ["/tmp/{t}"]),
])
def test_path_dirs_are_shown_one_by_one_never_by_a_parent_that_leads_out(tmp_path, path_dir, shown, run_user):
    t = tempfile.mkdtemp(prefix="agentd-pathdir-", dir="/tmp")
    try:
        names = {"uid": run_user.name, "t": Path(t).name}
        d = Path(path_dir.format(**names))
        d.mkdir(parents=True, exist_ok=True)
        got = [str(seen) for _, seen in sandbox.programs_to_show(f"{d}:/usr/bin", [])]
        assert got == [s.format(**names) for s in shown]
    finally:
        shutil.rmtree(t, ignore_errors=True)


def test_a_bin_dirs_parent_holding_a_socket_is_not_shown(tmp_path):
    t = Path(tempfile.mkdtemp(prefix="agentd-pathdir-", dir="/tmp"))
    s = socket.socket(socket.AF_UNIX)
    try:
        (t / "bin").mkdir()
        s.bind(str(t / "agent.sock"))
        assert sandbox.programs_to_show(f"{t / 'bin'}", []) == [(t / "bin", t / "bin")]
    finally:
        s.close()
        shutil.rmtree(t, ignore_errors=True)


# -- finding 7 (the API agents): keys inside ------------------------------------------------------------
OPENAI_FALLBACK = "sk-proj-fallbackkey-0123456789abcdefghij"
ENV_FILE_SECRET = "q7Zt1x9vLm2wPa8e"  # under an innocent name in agentd's env file: no key shape
COPIED = "sk-ant-api03-copied-0123456789abcdef"  # a key's value under a name that says nothing


def keyed(base: Path):
    """agentd with a key in its environment, a fallback key, a copy of a key under another name, and
    an env file whose names say nothing of keys."""
    cfg0 = layout(base)
    (cfg0.config_dir / "env").write_text(f"ANTHROPIC_API_KEY={KEY}\nLLM_SERVICE={ENV_FILE_SECRET}\n")
    return layout(base, _env={"OPENAI_API_KEY": OPENAI_FALLBACK, "BACKUP_SETTING": COPIED,
                              "MIRROR": f"https://x:{ENV_FILE_SECRET}@mirror.example"})


def _keys_let_in(monkeypatch) -> None:
    """PROTECTION OFF, ON PURPOSE: the tool environment as agentd's own, keys and all."""
    from agentd.agent import tools

    monkeypatch.setattr(tools, "scrubbed_env", lambda env=None, *a: dict(env))
    monkeypatch.setattr(sandbox, "env_for", lambda policy, env: dict(env))


def test_every_providers_key_variable_is_one_the_sandbox_takes_out():
    from agentd.providers.choice import KEY_VARS
    from agentd.redact import LLM_KEYS

    assert set(KEY_VARS.values()) <= set(LLM_KEYS)
    env = sandbox.env_for(sandbox.Policy(), {name: "placeholder" for name in LLM_KEYS} | {"PATH": "/bin"})
    assert set(env) == {"PATH", "TMPDIR"}


@needs_bwrap
@PROTECTION
def test_no_byte_of_any_key_is_in_any_environment_inside_bwraps_own_included(base, monkeypatch, protection):
    if protection == "off":
        _keys_let_in(monkeypatch)
    cfg = keyed(base)
    assert cfg.env["LLM_SERVICE"] == ENV_FILE_SECRET  # the env file is agentd's environment too
    text = sh(cfg, "cat /proc/1/environ /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; echo; env")
    leaked = [k for k in (KEY, OPENAI_FALLBACK, ENV_FILE_SECRET, COPIED) if k in text]
    if protection == "on":
        assert leaked == [] and "LLM_SERVICE" not in text and "API_KEY" not in text, text
    else:
        assert leaked == [KEY, OPENAI_FALLBACK, ENV_FILE_SECRET, COPIED], text


@needs_bwrap
@PROTECTION
def test_the_canary_reads_every_environ_inside_and_doctor_shows_a_key_there(base, monkeypatch, protection):
    if protection == "off":
        _keys_let_in(monkeypatch)
    cfg = keyed(base)
    r = canary.canary(cfg)
    probe = next(p for p in r["probes"] if p["name"].startswith("keys in any visible environment"))
    checks = doctor.check_sandbox(cfg)
    assert r["error"] is None, r
    if protection == "on":
        assert not probe["reached"] and probe["detail"].startswith("none in "), probe
        assert checks[1].status == doctor.OK, checks[1].line()
    else:
        assert probe["reached"] and "ANTHROPIC_API_KEY (pid 1)" in probe["detail"], probe
        assert "the value of a key, as BACKUP_SETTING" in probe["detail"] and "MIRROR" in probe["detail"], probe
        assert KEY not in probe["detail"] and COPIED not in probe["detail"]
        assert checks[1].status != doctor.OK and "REACHED" in checks[1].what and "keys in any" in checks[1].what


@needs_bwrap
@needs_root
@PROTECTION
def test_the_canary_asks_whether_the_kernels_settings_are_writable_and_doctor_shows_it(base, monkeypatch,
                                                                                     protection):
    if protection == "off":  # PROTECTION OFF, ON PURPOSE
        monkeypatch.setattr(bwrap, "proc_args", lambda: ([], []))
    cfg = layout(base)
    r = canary.canary(cfg)
    probe = next(p for p in r["probes"] if p["name"].startswith("write: the kernel's settings"))
    assert r["error"] is None, r
    if protection == "on":
        assert not probe["reached"] and probe["detail"].startswith("none of"), probe
        assert r["ok"], r
    else:
        assert probe["reached"] and "/proc/sys/kernel/core_pattern" in probe["detail"], probe
        check = doctor.check_sandbox(cfg)[1]
        assert check.status != doctor.OK and "REACHED  write: the kernel's settings" in check.what, check.line()


# -- a CLI login moved elsewhere (CLAUDE_CONFIG_DIR, CODEX_HOME): agentd's proxy reads it outside ----------
OAUTH = "sk-ant-oat01-moved-login-0123456789abcdef"
CODEX_KEY = "sk-proj-moved-codex-login-0123456789abcdef"


@needs_bwrap
@PROTECTION
def test_a_cli_login_dir_named_by_claude_config_dir_or_codex_home_is_hidden_and_unnamed_inside(base, monkeypatch,
                                                                                              protection):
    """A person who keeps claude's login in $CLAUDE_CONFIG_DIR and codex's in $CODEX_HOME: an API agent's
    shell (and so any sandbox) neither finds the variables nor reads the files; with the dirs not hidden
    and the variables kept (PROTECTION OFF, ON PURPOSE) it reads both credentials."""
    claude_dir, codex_dir = base / "cfg" / "claude", base / "cfg" / "codex"
    claude_dir.mkdir(parents=True)
    codex_dir.mkdir(parents=True)
    (claude_dir / ".credentials.json").write_text(json.dumps({"claudeAiOauth": {"accessToken": OAUTH}}))
    (claude_dir / ".claude.json").write_text("{}")
    (codex_dir / "auth.json").write_text(json.dumps({"OPENAI_API_KEY": CODEX_KEY}))
    if protection == "off":
        monkeypatch.setattr(sandbox, "cli_login_dirs", lambda env: [])
        monkeypatch.setattr(sandbox, "CLI_LOGIN_VARS", ())
    cfg = layout(base, _env={"CLAUDE_CONFIG_DIR": str(claude_dir), "CODEX_HOME": str(codex_dir)})
    text = sh(cfg, f'env; cat "$CLAUDE_CONFIG_DIR/.credentials.json" "$CODEX_HOME/auth.json"; '
                   f'cat {claude_dir}/.credentials.json {codex_dir}/auth.json')
    if protection == "on":
        assert OAUTH not in text and CODEX_KEY not in text, text
        assert "CLAUDE_CONFIG_DIR=" not in text and "CODEX_HOME=" not in text, text
        assert "No such file or directory" in text, text
    else:
        assert OAUTH in text and CODEX_KEY in text, text


@needs_bwrap
@PROTECTION
def test_tokens_of_other_shapes_and_a_urls_password_never_reach_the_shell(base, monkeypatch, protection):
    """GitHub's fine-grained and GitLab's tokens, and a database URL's password, under names that say
    nothing of keys: the shell's environment has none of them; with the key shapes not known
    (PROTECTION OFF, ON PURPOSE: the shapes before this check) all three get in."""
    from agentd import redact

    if protection == "off":
        monkeypatch.setattr(redact, "_SHAPES", re.compile(r"sk-[A-Za-z0-9_\-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}"))
    secrets = {"GH_FINE": "github_pat_11ABCDEFG0123456789abcdefghij", "GL": "glpat-abcdefghij0123456789xy",
               "DATABASE_URL": "postgres://app:hunter2-db-pass@db.internal/app"}
    cfg = layout(base, _env=secrets)
    text = sh(cfg, "env")
    got = [v for v in secrets.values() if v in text]
    assert got == ([] if protection == "on" else list(secrets.values())), text
