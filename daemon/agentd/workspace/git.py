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

from agentd.config.config import _xdg, read_env_file
from agentd.errors import WorkspaceError
from agentd.redact import LLM_KEYS, scrubbed_env


HARDENING = (
    ("core.hooksPath", "/dev/null"), ("core.fsmonitor", "false"), ("core.untrackedCache", "false"),
    ("core.pager", "cat"), ("core.editor", "false"), ("sequence.editor", "false"), ("core.sshCommand", "false"),
    ("ssh.variant", "simple"), ("core.askPass", ""), ("core.attributesFile", "/dev/null"), ("core.gitProxy", ""),
    ("diff.external", ""), ("credential.helper", ""), ("protocol.allow", "never"), ("protocol.ext.allow", "never"),
    ("protocol.fd.allow", "never"), ("commit.gpgSign", "false"), ("tag.gpgSign", "false"),
    ("tag.forceSignAnnotated", "false"), ("log.showSignature", "false"), ("gpg.program", "false"),
    ("gpg.openpgp.program", "false"), ("gpg.x509.program", "false"), ("gpg.ssh.program", "false"),
    ("gpg.ssh.defaultKeyCommand", "false"), ("submodule.recurse", "false"), ("fetch.recurseSubmodules", "false"),
    ("uploadpack.packObjectsHook", ""), ("core.alternateRefsCommand", ""), ("gc.auto", "0"),
    ("maintenance.auto", "false"), ("core.hooksPath", "/dev/null"),
)
ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_ATTR_NOSYSTEM": "1",
       "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "GIT_NO_REPLACE_OBJECTS": "1",
       "GIT_ALLOW_PROTOCOL": "", "GIT_NO_LAZY_FETCH": "1", "GIT_PROTOCOL_FROM_USER": "0",
       "GIT_PAGER": "cat", "PAGER": "cat", "GIT_EDITOR": "false"}
DROP = ("PAGER", "EDITOR", "VISUAL", "SSH_ASKPASS", "LESSOPEN", "LESSCLOSE")
NO_DRIVERS = ("--no-ext-diff", "--no-textconv")
# for each named kind a config can hold (``filter.<name>.clean``): the keys that run something, and the value
# that switches each off
NEUTRALISE = {"filter": {"clean": "", "smudge": "", "process": "", "required": "false"},
              "diff": {"command": "", "textconv": ""}, "merge": {"driver": ""},
              "protocol": {"allow": "never"}, "remote": {"vcs": "", "uploadpack": "", "receivepack": "", "proxy": ""},
              "credential": {"helper": ""}, "difftool": {"cmd": ""}, "mergetool": {"cmd": ""}}
_OFF = {kind: dict(keys) for kind, keys in NEUTRALISE.items()}  # what ``refuse_unneutralised`` checks, whatever
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


def scrubbed(env: dict) -> dict[str, str]:
    """``env`` without a key: the providers' key variables, every name in agentd's env file, every
    secret-looking name or value (``redact.scrubbed_env``, as ``sandbox.env_for`` does for the sandbox)."""
    in_file = read_env_file(_xdg(env, "XDG_CONFIG_HOME", ".config") / "agentd" / "env")
    names = {*LLM_KEYS, *in_file}
    return scrubbed_env(env, names, [*(env.get(k) for k in names), *in_file.values()])


def hardened_env(env: dict | None) -> dict[str, str]:
    """``env`` without a key and without git's, pagers' and editors' variables, plus git's own hardening."""
    base = scrubbed(dict(os.environ if env is None else env))
    out = {k: v for k, v in base.items() if not k.startswith("GIT_") and k not in DROP}
    out.update(ENV)
    return out


def config_env(pairs) -> dict[str, str]:
    """``pairs`` as command-line config given through the environment (``GIT_CONFIG_COUNT``,
    ``GIT_CONFIG_KEY_<n>``, ``GIT_CONFIG_VALUE_<n>``): a key is never split at an ``=`` in it, as
    ``-c filter.a=b.clean=`` is (that sets ``filter.a``)."""
    out = {"GIT_CONFIG_COUNT": str(len(pairs))}
    for i, (key, value) in enumerate(pairs):
        out[f"GIT_CONFIG_KEY_{i}"], out[f"GIT_CONFIG_VALUE_{i}"] = key, value
    return out


def _named(key: str, table: dict) -> tuple[str, str, str] | None:
    """``(kind, name, var)`` of a ``kind.name.var`` key whose kind ``table`` lists, else None."""
    kind, _, rest = key.partition(".")
    name, _, var = rest.rpartition(".")
    return (kind.lower(), name, var.lower()) if kind.lower() in table and name else None


def _norm(key: str) -> str:
    """A key as git compares it: section and variable in lower case, the name between them as it is."""
    kind, _, rest = key.partition(".")
    name, dot, var = rest.rpartition(".")
    return f"{kind.lower()}.{name}.{var.lower()}" if dot else key.lower()


def overrides(found) -> list[tuple[str, str]]:
    """``HARDENING``, and each key of ``NEUTRALISE`` of each name the repository's config uses switched off."""
    out = list(HARDENING)
    for key, _ in found:
        if (named := _named(key, NEUTRALISE)) is not None:
            kind, name, _ = named
            out += [(f"{kind}.{name}.{var}", value) for var, value in NEUTRALISE[kind].items()]
    return list(dict.fromkeys(out))


def refuse_unneutralised(found, pairs) -> None:
    """Raise WorkspaceError when, in the config ``found`` with the overrides applied (git takes a key's last
    value), a key of ``HARDENING`` or a key that runs something (``NEUTRALISE``) is not switched off."""
    want = {_norm(k): v for k, v in HARDENING}
    last: dict[str, tuple[str, str]] = {}
    for key, value in found:
        last[_norm(key)] = (key, value)
    for norm, (key, value) in last.items():
        named = _named(key, _OFF)
        off = _OFF[named[0]].get(named[2]) if named else want.get(norm)
        if off is not None and value != off:
            raise WorkspaceError(f"the repository's config sets {key[:200]!r}, which agentd's git could not "
                                 "switch off: agentd runs no git in it; remove that from its config")


def _config(where: Where | None, cwd, env: dict) -> list[tuple[str, str]]:
    """Every ``(key, value)`` of the config a call there sees, in git's order (includes followed)."""
    try:
        p = subprocess.run(["git", "--no-pager", "config", "-z", "--list"], cwd=cwd,
                           env={**env, **(where.env() if where else {})}, capture_output=True, timeout=TIMEOUT,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        raise WorkspaceError("git config could not list the repository's config") from None
    out = []
    for item in p.stdout.decode("utf-8", "surrogateescape").split("\0"):
        if item:
            key, _, value = item.partition("\n")
            out.append((key, value))
    return out


def prepared(where: Where | None, cwd, env: dict) -> dict[str, str]:
    """The environment for a call there: ``env`` with every override as command-line config, after
    checking that with them applied nothing the config names still runs."""
    if where is None and cwd is None:
        return {**env, **config_env(list(HARDENING))}
    pairs = overrides(_config(where, cwd, {**env, **config_env(list(HARDENING))}))
    out = {**env, **config_env(pairs)}
    refuse_unneutralised(_config(where, cwd, out), pairs)
    return out


def git(*args: str, where: Where | None = None, cwd=None, env: dict | None = None, check: bool = True,
        timeout: float = TIMEOUT) -> str:
    """Run ``git args`` hardened; its stdout (text).  ``where`` names the repository; else ``cwd`` is in it.

    Raises ``WorkspaceError`` (with git's message) when it fails and ``check`` is set.
    """
    run_env = prepared(where, cwd, hardened_env(env))
    argv = ["git", "--no-pager", *args]
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
