"""Every git command agentd runs itself, run one hardened way (``git``).

agentd runs git on repositories a person named (``{repo: PATH}`` tasks) and on the
worktrees an agent wrote in.  Whatever those hold, agentd's own git must not run
code from them: not a hook, ``core.fsmonitor``, a pager, an editor, a clean or
smudge filter, a textconv or external diff driver, a credential helper, an ssh
command or a GPG program, and not the user's or the system's git config.  So each
call gets:

- an environment with no ``GIT_*`` variable of agentd's own (``GIT_DIR``,
  ``GIT_SSH_COMMAND``, ``GIT_EXTERNAL_DIFF``, ...) and no pager or editor, then
  ``GIT_CONFIG_NOSYSTEM=1``, ``GIT_CONFIG_GLOBAL=/dev/null``, ``GIT_ATTR_NOSYSTEM=1``,
  ``GIT_TERMINAL_PROMPT=0``, ``GIT_OPTIONAL_LOCKS=0``, ``GIT_NO_REPLACE_OBJECTS=1``;
- ``--no-pager`` and ``-c`` overrides (``HARDENING``), which beat the repository's
  own config: hooks to /dev/null, fsmonitor off, no transport at all
  (``protocol.allow=never``), no signing, and every filter, diff and merge driver the
  repository's config names emptied (git has no switch that turns off all of them,
  so they are listed from the config first);
- where the call takes a work tree, the git dir, common dir and work tree given
  explicitly (``where``), never found from a ``.git`` file the agent could rewrite.

Diffs and logs also take ``--no-ext-diff --no-textconv`` (``NO_DRIVERS``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from agentd.errors import WorkspaceError

HARDENING = (
    "core.hooksPath=/dev/null", "core.fsmonitor=false", "core.untrackedCache=false", "core.pager=cat",
    "core.editor=false", "core.sshCommand=false", "core.askPass=", "core.attributesFile=/dev/null",
    "core.gitProxy=", "diff.external=", "credential.helper=", "protocol.allow=never", "commit.gpgSign=false",
    "tag.gpgSign=false", "gpg.program=false", "submodule.recurse=false", "sequence.editor=false",
    "uploadpack.packObjectsHook=", "core.alternateRefsCommand=",
)
ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_ATTR_NOSYSTEM": "1",
       "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "GIT_NO_REPLACE_OBJECTS": "1",
       "GIT_PAGER": "cat", "PAGER": "cat", "GIT_EDITOR": "false"}
DROP = ("PAGER", "EDITOR", "VISUAL", "SSH_ASKPASS", "LESSOPEN", "LESSCLOSE")
NO_DRIVERS = ("--no-ext-diff", "--no-textconv")
# what each kind of driver named in a config can run
DRIVER_KEYS = {"filter": ("clean", "smudge", "process"), "diff": ("command", "textconv"), "merge": ("driver",)}
TIMEOUT = 120.0


class Where:
    """Which repository a call works on: a git dir (and common dir, and work tree) given explicitly."""

    def __init__(self, git_dir, common_dir=None, work_tree=None):
        self.git_dir = Path(git_dir)
        self.common_dir = Path(common_dir) if common_dir else None
        self.work_tree = Path(work_tree) if work_tree else None

    def env(self) -> dict[str, str]:
        out = {"GIT_DIR": str(self.git_dir)}
        if self.common_dir:
            out["GIT_COMMON_DIR"] = str(self.common_dir)
        if self.work_tree:
            out["GIT_WORK_TREE"] = str(self.work_tree)
        return out


def hardened_env(env: dict | None) -> dict[str, str]:
    """``env`` without git's, pagers' and editors' variables, plus git's own hardening."""
    base = dict(os.environ if env is None else env)
    out = {k: v for k, v in base.items() if not k.startswith("GIT_") and k not in DROP}
    out.update(ENV)
    return out


def config_args(drivers: tuple = ()) -> list[str]:
    """``-c`` overrides: ``HARDENING``, and each named driver emptied."""
    out = ["--no-pager"]
    for item in HARDENING:
        out += ["-c", item]
    for kind, name in drivers:
        for key in DRIVER_KEYS[kind]:
            out += ["-c", f"{kind}.{name}.{key}="]
        if kind == "filter":
            out += ["-c", f"filter.{name}.required=false"]
    return out


def _drivers(where: Where | None, cwd, env: dict) -> tuple:
    """The filter, diff and merge drivers the repository's config (and its includes) names."""
    argv = ["git", *config_args(), "config", "--name-only", "--get-regexp", r"^(filter|diff|merge)\..*\."]
    if where is None and cwd is None:
        return ()
    try:
        p = subprocess.run(argv, cwd=cwd, env={**env, **(where.env() if where else {})}, capture_output=True,
                           timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    out = []
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        kind, _, rest = line.partition(".")
        name = rest.rpartition(".")[0]
        if kind in DRIVER_KEYS and name and (kind, name) not in out:
            out.append((kind, name))
    return tuple(out)


def git(*args: str, where: Where | None = None, cwd=None, env: dict | None = None, check: bool = True,
        timeout: float = TIMEOUT) -> str:
    """Run ``git args`` hardened; its stdout (text).  ``where`` names the repository; else ``cwd`` is in it.

    Raises ``WorkspaceError`` (with git's message) when it fails and ``check`` is set.
    """
    run_env = hardened_env(env)
    argv = ["git", *config_args(_drivers(where, cwd, run_env)), *args]
    try:
        p = subprocess.run(argv, cwd=cwd, env={**run_env, **(where.env() if where else {})}, capture_output=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise WorkspaceError("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise WorkspaceError(f"git {args[0]} took more than {timeout:g} s") from None
    if check and p.returncode != 0:
        err = p.stderr.decode("utf-8", "replace").strip().splitlines()
        raise WorkspaceError(f"git {args[0]} failed: {(err or ['exit %d' % p.returncode])[-1][:300]}")
    return p.stdout.decode("utf-8", "replace")
