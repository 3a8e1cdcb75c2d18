"""How the fleet's git is run: the person's own way to the remote, and nothing of the repository's
(docs/security.md#the-fleet).  ``fleet/repo.py``'s module text says what each setting here is for.
"""

from __future__ import annotations

import re
from pathlib import Path

from agentd.errors import FleetError
from agentd.sandbox import procs
from agentd.workspace.git import DROP, config_env, scrubbed

LOCAL_TIMEOUT = 120.0  # a git call that does not talk to the remote
MAX_OUT = 16 * 2**20

# The person's environment the fleet's git keeps: how they reach a remote.  Every other GIT_* goes.
KEEP_ENV = ("GIT_SSH_COMMAND", "GIT_SSH", "GIT_SSH_VARIANT", "GIT_ASKPASS", "SSH_AUTH_SOCK", "SSH_AGENT_PID")
ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_NO_REPLACE_OBJECTS": "1", "GIT_ATTR_NOSYSTEM": "1", "GIT_NO_LAZY_FETCH": "1",
       "GIT_PAGER": "cat", "PAGER": "cat", "GIT_EDITOR": "false", "GIT_MERGE_AUTOEDIT": "no", "LC_ALL": "C"}
HARDENING = (
    ("core.hooksPath", "/dev/null"), ("core.fsmonitor", "false"), ("core.untrackedCache", "false"),
    ("core.pager", "cat"), ("core.editor", "false"), ("sequence.editor", "false"), ("core.attributesFile", "/dev/null"),
    ("diff.external", ""), ("protocol.ext.allow", "never"), ("protocol.fd.allow", "never"),
    ("commit.gpgSign", "false"), ("tag.gpgSign", "false"), ("log.showSignature", "false"), ("gpg.program", "false"),
    ("submodule.recurse", "false"), ("fetch.recurseSubmodules", "false"), ("push.recurseSubmodules", "no"),
    ("uploadpack.packObjectsHook", ""), ("core.alternateRefsCommand", ""), ("gc.auto", "0"),
    ("maintenance.auto", "false"), ("core.symlinks", "false"), ("core.autocrlf", "false"),
    ("transfer.fsckObjects", "true"), ("merge.renames", "false"), ("pull.rebase", "false"),
    ("advice.detachedHead", "false"), ("init.templateDir", ""),
)
DRIVERS = {"filter": ("clean", "smudge", "process"), "diff": ("command", "textconv"), "merge": ("driver",),
           "difftool": ("cmd",), "mergetool": ("cmd",)}
# What the clone's own config may hold (lower-cased key, with a remote's or branch's name as ``*``).
LOCAL_KEYS = re.compile(r"core\.(repositoryformatversion|filemode|bare|logallrefupdates|ignorecase|precomposeunicode"
                        r"|symlinks)|remote\.[^\n]*\.(url|pushurl|fetch|tagopt|prune)|branch\.[^\n]*\.(remote|merge)"
                        r"|user\.(name|email)|extensions\.objectformat|gc\.auto|maintenance\.auto|init\.defaultbranch")


def person_env(env: dict) -> dict[str, str]:
    """The person's environment without a key, with how they reach a remote, plus git's hardening."""
    base = scrubbed(dict(env))
    out = {k: v for k, v in base.items() if not k.startswith("GIT_") and k not in DROP}
    out.update({k: env[k] for k in KEEP_ENV if env.get(k)})
    out.update(ENV)
    return out


def fleet_env(cfg, dir: Path) -> dict[str, str]:
    """The environment of every git call on the clone in ``dir``: the person's transport, agentd's identity
    and hardening, the drivers every config names emptied.  Raises FleetError when the clone's own config
    holds more than a clone writes."""
    if cfg.host.lower() == "fleet":  # (any case: fleet_worklog.txt on a case-insensitive disk)
        raise FleetError(f"a host named {cfg.host[:64]!r} can't be in a fleet: its worklog, fleet_worklog.txt, is the "
                         "one every host shares; give this host another name (AGENTD_HOST; the hostname "
                         "otherwise)")
    base = {**person_env(cfg.env), **config_env(list(HARDENING))}
    if (dir / ".git").is_dir():
        for key, _ in config_list(dir, base, "--local", "--no-includes"):
            if not LOCAL_KEYS.fullmatch(key.lower()):
                raise FleetError(
                    f"{dir / '.git' / 'config'}: the fleet repository's own config sets {key[:200]!r}; "
                    "agentd's fleet git takes credentials and transport settings only from your own git "
                    "config (~/.gitconfig): remove it there (`git config --local --unset`)")
    pairs = list(HARDENING)
    for key, _ in config_list(dir, base):
        kind, _, rest = key.partition(".")
        name, dot, _ = rest.rpartition(".")
        if dot and kind.lower() in DRIVERS:
            pairs += [(f"{kind.lower()}.{name}.{var}", "") for var in DRIVERS[kind.lower()]]
    host = re.sub(r"[^A-Za-z0-9._-]", "-", cfg.host)[:64] or "host"
    pairs += [("user.name", f"agentd on {host}"), ("user.email", f"agentd@{host}")]
    return {**base, **config_env(list(dict.fromkeys(pairs)))}


def where(dir: Path) -> dict[str, str]:
    """The git dir and work tree given explicitly, once there is one (never found by a search upwards)."""
    if (dir / ".git").is_dir():
        return {"GIT_DIR": str(dir / ".git"), "GIT_WORK_TREE": str(dir)}
    return {"GIT_CEILING_DIRECTORIES": str(dir.parent)}


def config_list(dir: Path, env: dict, *scope: str) -> list[tuple[str, str]]:
    """(key, value) of each setting ``git config --list`` gives in ``scope`` ([] when git can't say)."""
    rc, out, _, _ = procs.run(["git", "--no-pager", "config", "-z", *scope, "--list"], cwd=dir,
                              env={**env, **where(dir)},
                              timeout=LOCAL_TIMEOUT, max_bytes=MAX_OUT)
    if rc not in (0, 1):
        return []
    pairs = []
    for item in out.decode("utf-8", "surrogateescape").split("\0"):
        if item:
            key, _, value = item.partition("\n")
            pairs.append((key, value))
    return pairs
