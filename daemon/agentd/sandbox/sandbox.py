"""The OS sandbox around everything a model drives: bubblewrap (``bwrap``).

A ``Policy`` says what a sandboxed process may touch; ``wrap`` turns a command
into the bwrap command line that enforces it.  The default policy
(``policy_for``):

- the root file system read-only (``--ro-bind / /``); the workspace and a
  private ``/tmp`` (and ``/dev/shm``) writable; ``/run`` an empty tmpfs, so no
  control socket (systemd, D-Bus, docker) can be reached;
- hidden (an empty read-only tmpfs over a directory, ``/dev/null`` over a
  file): agentd's config dir (the env file), state dir, worklog dir, tasks
  dir and config cache, and the usual secret places (``~/.ssh``, ``~/.aws``,
  ``/etc/shadow``, ... see ``SECRET_PATHS``);
- a fresh ``/proc`` in its own PID namespace: agentd's process is not there,
  and everything started inside dies with the sandbox (``--die-with-parent``;
  the namespace's init is bwrap, whose exit kills the rest); a new session
  (no TIOCSTI into agentd's terminal); no capabilities (``--cap-drop ALL``);
  its own IPC and UTS namespaces;
- no network (``--unshare-net``: only its own loopback) unless granted;
- the GPU device nodes (``/dev/nvidia*``, ``/dev/dri``) only when granted.

The environment is not put on the command line (``--setenv`` would show it to
every user through ``ps``): the caller starts bwrap with ``env_for(policy,
env)``, an explicit environment without any key (by name or by value) or
session socket, and bwrap and everything inside see only that.

``unavailable(cfg)`` says, cheaply (one probe per process, ``bwrap.status``), why
agent tools can't run now: bwrap missing or unable to create namespaces (with the
fix), or a workspace that holds agentd's own files.  ``canary.canary(cfg)`` runs
probes inside the sandbox for ``agentd doctor``.

API for runners::

    policy = sandbox.policy_for(cfg, task_attrs, workspace, for_cli="claude-cli")
    argv = sandbox.wrap(["claude", "-p", ...], policy)      # raises Unavailable
    env = sandbox.env_for(policy, env)                  # never a key: a CLI's key is added outside
    manifest["sandbox"] = sandbox.describe(policy)
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
import sys
from pathlib import Path

from agentd.config.config import read_env_file
from agentd.config.provenance import sandbox_off_by
from agentd.recordtype import Record
from agentd.redact import LLM_KEYS, scrubbed_env
from agentd.sandbox import bwrap


MODES = ("bwrap", "off")

# Secret places under $HOME, hidden from every sandbox (those that exist).
SECRET_PATHS = (
    ".ssh", ".aws", ".gnupg", ".netrc", ".config/gh", ".config/hub", ".docker/config.json", ".git-credentials",
    ".config/git/credentials",  # git's credential store in its XDG place (the fleet's git uses the person's)
    ".pypirc", ".kube", ".config/gcloud", ".azure", ".codex/auth.json", ".claude/.credentials.json",
    ".config/agentd", ".npmrc", ".yarnrc", ".cargo/credentials", ".cargo/credentials.toml", ".gem/credentials",
    ".vault-token", ".terraform.d/credentials.tfrc.json", ".huggingface/token", ".cache/huggingface/token",
    ".cache/huggingface/stored_tokens", ".config/rclone", ".s3cfg", ".boto", ".pgpass", ".my.cnf",
    ".password-store", ".local/share/keyrings", ".config/op", ".bash_history", ".zsh_history",
    ".python_history", ".psql_history", ".mysql_history", ".lesshst", ".wget-hsts",
)
# System files with secrets.  A sandbox as root keeps uid 0: without capabilities it still
# reads files that root owns and may read (/etc/shadow is -rw-r----- root), so hide them.
SYSTEM_SECRETS = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers",
                  "/etc/security/opasswd", "/etc/ssl/private", "/root/.ssh", "/root/.aws", "/root/.gnupg",
                  "/root/.netrc", "/root/.config/gh", "/root/.docker/config.json", "/root/.git-credentials",
                  "/root/.bash_history")
SYSTEM_SECRET_GLOBS = ("/etc/ssh/ssh_host_*_key",)
# The CLI agents' login dirs under $HOME: hidden from every sandbox, never writable (a CLI run gets a
# fresh one of its own, clihome.RunHome; what is written there never reaches these).
CLI_OWN = {"claude-cli": (".claude", ".claude.json"), "codex-cli": (".codex",)}
# Variables that name where a CLI keeps its login (``clihome`` reads the real one outside): dropped, and
# the dirs they name hidden, like ``~/.claude`` and ``~/.codex``.
CLI_LOGIN_VARS = ("CLAUDE_CONFIG_DIR", "CODEX_HOME")
# Variables that lead out of the sandbox (session buses, agents), dropped from its environment.
SESSION_VARS = ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "SSH_AUTH_SOCK", "GPG_AGENT_INFO", "DISPLAY",
                "WAYLAND_DISPLAY", "XAUTHORITY", "DOCKER_HOST", "SYSTEMD_EXEC_PID", "INVOCATION_ID",
                "JOURNAL_STREAM", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "MANAGERPID", "TMPDIR")


class Unavailable(RuntimeError):
    """The sandbox can't be used; the message says why and how to fix it."""


class Policy(Record):
    """What a sandboxed process may touch.  Paths are absolute and resolved.  (A Record, not a
    dataclass: ``sandbox.unavailable`` may be asked on the CLI's start-up path.)"""

    mode: str = "bwrap"  # bwrap | off
    workspace: Path = Path("/nonexistent")
    network: bool = False
    gpu: bool = False
    writable: tuple = ()  # extra writable paths (approved grants, a CLI's own dirs)
    hidden: tuple = ()  # directories and files replaced by nothing
    private_tmp: bool = True
    conflicts: tuple = ()  # reasons this policy can't be enforced (a workspace holding agentd's files)
    for_cli: str | None = None
    env_file_vars: tuple = ()  # names set in agentd's env file: agentd's, not the sandbox's
    programs: tuple = ()  # (source, seen as) PATH dirs a private /tmp or emptied /run hides: shown read-only


# -- paths ----------------------------------------------------------------------------
def _real(p) -> Path:
    return Path(os.path.realpath(os.path.expanduser(str(p))))


def _inside(p: Path, root: Path) -> bool:
    return p == root or root in p.parents


def _home(cfg) -> Path:
    return Path(cfg.env.get("HOME") or os.path.expanduser("~"))


def agentd_paths(cfg) -> dict[str, Path]:
    """agentd's own places: hidden from the sandbox, and never inside a writable path."""
    cache = cfg.env.get("XDG_CACHE_HOME")
    cache_dir = Path(cache) if cache and os.path.isabs(cache) else _home(cfg) / ".cache"
    out = {"config dir": cfg.config_dir, "state dir": cfg.state_dir, "worklog dir": cfg.worklog_dir,
           "tasks dir": cfg.tasks_dir, "config cache": cache_dir / "agentd"}
    if not _inside(_real(cfg.config_file), _real(cfg.config_dir)):
        out["config file"] = cfg.config_file
    return out


def _protected_only(cfg) -> dict[str, Path]:
    """Not hidden (read-only is enough), but a writable path must not hold them."""

    config_home = cfg.env.get("XDG_CONFIG_HOME")
    config_home = Path(config_home) if config_home and os.path.isabs(config_home) else _home(cfg) / ".config"
    return {"agentd's code": Path(__file__).parents[1], "agentd's Python": Path(sys.prefix),
            "systemd user units": config_home / "systemd" / "user"}


def policy_for(cfg, task_attrs: dict | None = None, workspace=None, for_cli: bool | str = False,
               writable=()) -> Policy:
    """The policy for one run: config ``sandbox`` and ``network``, the task's ``network``/``gpu`` attrs.

    ``for_cli``: a CLI agent (``claude-cli``, ``codex-cli``, or True for both); like every sandbox it gets
    the network only with ``{network: true}`` (a list of hosts is served by its proxy, not here), and every
    CLI's login dirs (``CLI_OWN``) are hidden.  ``writable``: extra approved paths (a CLI's run dir).
    """
    attrs = task_attrs or {}
    mode = cfg.values.get("sandbox") or "bwrap"
    ws = _real(workspace if workspace is not None else cfg.workspace)
    home = _home(cfg)
    cli = None if not for_cli else (for_cli if isinstance(for_cli, str) else "any")
    net = attrs.get("network") if attrs.get("network") is not None else cfg.values.get("network", False)
    network = net is True  # a list of hosts ({network: [pypi.org]}) is not the host's network
    own_cli = {r for rels in CLI_OWN.values() for r in rels}  # hidden below, whoever runs
    extra = [_real(p) for p in writable]
    hidden: list[Path] = []
    ours = agentd_paths(cfg)
    for p in ours.values():
        hidden.append(_real(p))
    for rel in (*SECRET_PATHS, *sorted(own_cli)):
        p = home / rel
        if os.path.lexists(p):
            hidden.append(_real(p))
    hidden += cli_login_dirs(cfg.env)

    for p in list(SYSTEM_SECRETS) + [g for pat in SYSTEM_SECRET_GLOBS for g in glob.glob(pat)]:
        if os.path.lexists(p):
            hidden.append(_real(p))
    hidden = [h for h in dict.fromkeys(hidden) if h not in extra]
    conflicts = []
    if mode == "bwrap":
        for w in [ws, *extra]:
            if w == Path("/"):
                conflicts.append(f"the writable path {w} is the root file system")
                continue
            for what, p in {**ours, **_protected_only(cfg)}.items():
                rp = _real(p)
                if _inside(rp, w):
                    which = "workspace" if w == ws else "writable path"
                    conflicts.append(f"the {which} {w} holds {what} {rp}: the agent could rename or replace it "
                                     "from inside; use a workspace that holds none of agentd's files (the default "
                                     "is <state_dir>/workspace)")

    return Policy(mode=mode, workspace=ws, network=network, gpu=bool(attrs.get("gpu")),
                  writable=tuple(dict.fromkeys(extra)), hidden=tuple(hidden), conflicts=tuple(conflicts),
                  for_cli=cli, env_file_vars=tuple(read_env_file(cfg.config_dir / "env")),
                  programs=tuple(programs_to_show(cfg.env.get("PATH") or os.defpath, hidden)))


def cli_login_dirs(env: dict) -> list[Path]:
    """The login dirs a person moved elsewhere (``CLAUDE_CONFIG_DIR``, ``CODEX_HOME``; with claude's
    ``.claude.json`` inside its dir): their credentials are read outside by agentd's proxy, so they are
    hidden like ``~/.claude`` and ``~/.codex``."""
    out = []
    for var in CLI_LOGIN_VARS:
        d = env.get(var)
        if d and os.path.isabs(d) and os.path.lexists(d) and _real(d) != Path("/"):
            out.append(_real(d))
    return out


MASKED = (Path("/tmp"), Path("/run"), Path("/dev/shm"), Path("/var/run"))  # replaced in the sandbox


def programs_to_show(path: str, hidden) -> list[tuple[Path, Path]]:
    """(source, where it is seen) for each PATH dir a private /tmp or the emptied /run would hide
    (a checkout or a CLI installed under /tmp, fnm's multishell bin under /run/user): bound one by
    one, read-only, at the name PATH gives it.  Never a parent that could lead out: a PATH dir named
    ``bin`` or ``.bin`` brings its own install dir (its parent: ``lib/``, ``node_modules/``) only when
    that is not a masked root, not a runtime dir (``/run/user``, ``/run/user/<uid>``) or above one,
    and holds no socket (the session bus); else the PATH dir comes alone, under the same rule.  A dir
    seen under another name must hold nothing hidden (the hiding is at the real path), and a PATH
    dir inside a hidden one is not shown."""
    hidden = [_real(h) for h in hidden]
    out: list[tuple[Path, Path]] = []
    for d in path.split(":"):
        if not d or not os.path.isabs(d):
            continue
        seen, rd = _unmasked_name(Path(os.path.normpath(d))), _real(d)
        if not _masked_root(seen):
            seen = rd  # a link from outside into /tmp: the link is there, its target is shown
        if not _masked_root(rd) and seen == rd or not rd.is_dir():
            continue
        if any(_inside(rd, h) for h in hidden):
            continue
        pairs = [(rd.parent, seen.parent), (rd, seen)] if rd.name in ("bin", ".bin") else [(rd, seen)]
        pair = next((p for p in pairs if _safe_to_show(*p, hidden)), None)
        if pair is not None:
            out.append(pair)
    return list(dict.fromkeys(out))


def _masked_root(p: Path) -> Path | None:
    return next((m for m in MASKED if _inside(p, m) and p != m), None)


def _unmasked_name(p: Path) -> Path:
    """``p`` with a masked root that is a link (``/var/run`` -> ``/run``) replaced by its target."""
    for m in MASKED:
        if _inside(p, m) and os.path.islink(m):
            return _real(m) / p.relative_to(m)
    return p


def _runtime_dir(p: Path) -> bool:
    """A login session's runtime dir (``/run/user/<uid>``), their parent, or a dir above them."""
    for user in (Path("/run/user"), Path("/var/run/user")):
        if _inside(user, p) or (p.parent == user):
            return True
    return False


def _safe_to_show(src: Path, seen: Path, hidden) -> bool:
    for p in (src, seen):
        if p in MASKED or any(_inside(m, p) for m in MASKED) or _runtime_dir(p):
            return False
    if src != seen and any(_inside(h, src) for h in hidden):
        return False
    try:
        with os.scandir(src) as it:
            return not any(stat.S_ISSOCK(e.stat(follow_symlinks=False).st_mode) for e in it)
    except OSError:
        return False


def python_inside(policy: Policy) -> str:
    """A Python the sandbox can see, for stdlib-only programs agentd runs inside (the canary, the relay):
    agentd's own may live in /tmp or a hidden dir."""

    covered = [*policy.hidden, *([Path("/tmp")] if policy.private_tmp else []), Path("/run")]
    # a venv's python run by its real path is the base interpreter: enough for stdlib-only probes
    for exe in (sys.executable, os.path.realpath(sys.executable), getattr(sys, "_base_executable", None),
                "/usr/bin/python3", shutil.which("python3")):
        if exe and os.access(exe, os.X_OK) and not any(_inside(_real(exe), c) or _inside(Path(os.path.abspath(exe)), c)
                                                       for c in covered):
            return exe
    return sys.executable


# -- the command line ---------------------------------------------------------------------
def _depth(p: Path) -> int:
    return len(p.parts)


def bwrap_args(policy: Policy) -> list[str]:
    """The bwrap options (without the program and the command) that enforce ``policy``."""
    covers, remount = bwrap.proc_args()
    args = [*bwrap.NAMESPACE_ARGS, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *covers]
    if not policy.network:
        args.append("--unshare-net")
    if policy.gpu:
        for dev in sorted(glob.glob("/dev/nvidia*")) + ["/dev/dri"]:
            if os.path.exists(dev):
                args += ["--dev-bind", dev, dev]
    # Mounts over the read-only root, outer before inner, so that a writable workspace inside a
    # hidden dir shows through and a hidden dir inside a writable one stays hidden.  At the same
    # depth the hiding comes last: hidden wins.
    private = ["/dev/shm", "/run"] + (["/tmp"] if policy.private_tmp else [])
    if os.path.isdir("/var/run") and not os.path.islink("/var/run"):
        private.append("/var/run")
    ops: list[tuple[int, int, list[str]]] = [(_depth(Path(d)), 0, ["--tmpfs", d]) for d in private]
    resolv = _real("/etc/resolv.conf")
    if policy.network and _inside(resolv, Path("/run")) and resolv.is_file():
        ops.append((_depth(resolv), 1, ["--ro-bind", str(resolv), str(resolv)]))  # systemd-resolved's stub
    for src, seen in policy.programs:
        if os.path.isdir(src):
            ops.append((_depth(seen), 1, ["--ro-bind", str(src), str(seen)]))
    for w in (policy.workspace, *policy.writable):
        ops.append((_depth(w), 1, ["--bind", str(w), str(w)]))
    for h in policy.hidden:
        if not os.path.lexists(h):
            continue
        if os.path.isdir(h):
            ops.append((_depth(h), 2, ["--tmpfs", str(h)]))
            remount += ["--remount-ro", str(h)]
        else:
            ops.append((_depth(h), 2, ["--ro-bind", "/dev/null", str(h)]))
    for _, _, op in sorted(ops, key=lambda o: (o[0], o[1])):
        args += op
    args += remount
    args += ["--chdir", str(policy.workspace)]
    return args


def wrap(argv: list[str], policy: Policy, cfg=None, *, check: bool = True) -> list[str]:
    """``argv`` run inside the sandbox ``policy`` describes; unchanged when the policy is ``off``.

    Raises ``Unavailable`` when bwrap can't be used or the policy can't be enforced (fail closed).
    ``check=False`` skips the (cached) probe.  Start the result with ``env_for(policy, env)``.
    """
    if policy.mode == "off":
        return list(argv)
    if policy.conflicts:
        raise Unavailable(policy.conflicts[0])
    env = cfg.env if cfg is not None else None
    if check:
        st = bwrap.status(env)
        if not st.ok:
            raise Unavailable(st.message())
    exe = bwrap.bwrap_path(env)
    if exe is None:
        raise Unavailable(f"bwrap is not installed; fix: {bwrap.INSTALL_FIX}")
    Path(policy.workspace).mkdir(parents=True, exist_ok=True)  # bwrap binds it: it must exist
    return [exe, *bwrap_args(policy), "--", *argv]


def env_for(policy: Policy, env: dict) -> dict[str, str]:
    """The environment to start bwrap with, and so everything inside: no key, whatever runs there
    (an API agent's shell or a CLI agent, whose key a proxy outside adds), so ``/proc/*/environ``
    inside holds none.  Out go the providers' key variables (``redact.LLM_KEYS``), every name in agentd's env file, every
    secret-looking name, and every value that is or holds a key (``redact.scrubbed_env``); then the
    session sockets and agents that lead outside."""
    names = {*LLM_KEYS, *policy.env_file_vars}  # LLM_KEYS holds every provider's (providers.choice.KEY_VARS)
    out = scrubbed_env(env, names, [env.get(k) for k in names])
    if policy.mode == "off":
        return out
    for k in SESSION_VARS + CLI_LOGIN_VARS:
        out.pop(k, None)
    if policy.private_tmp:
        out["TMPDIR"] = "/tmp"
    return out


def describe(policy: Policy, cfg=None) -> dict:
    """The policy as the run manifest records it."""
    if policy.mode == "off":
        by = sandbox_off_by(cfg) if cfg is not None else None
        return {"sandbox": "off", "note": f"explicit sandbox: off ({by or 'the config'}): tools run unconfined"}
    st = bwrap.status(cfg.env if cfg is not None else None)
    return {"sandbox": "bwrap", "bwrap": st.bwrap, "version": st.version, "usable": st.ok,
            "read_only": "/", "writable": [str(policy.workspace), *map(str, policy.writable)]
            + (["/tmp (private tmpfs)", "/dev/shm (private tmpfs)"] if policy.private_tmp else []),
            "hidden": [str(h) for h in policy.hidden if os.path.lexists(h)] + ["/run"],
            "network": policy.network, "gpu": policy.gpu,
            "namespaces": ["mount", "pid", "ipc", "uts", "cgroup"] + ([] if policy.network else ["net"]),
            "die_with_parent": True, "new_session": True, "capabilities": "none",
            **({"for_cli": policy.for_cli} if policy.for_cli else {}),
            **({"conflicts": list(policy.conflicts)} if policy.conflicts else {})}


def unavailable(cfg) -> str | None:
    """Why agent tools can't run now (with the fix), or None.  Cheap: bwrap is probed once per
    process.  ``sandbox: off`` is never unavailable."""
    if (cfg.values.get("sandbox") or "bwrap") == "off":
        return None
    st = bwrap.status(cfg.env)
    if not st.ok:
        return f"sandbox unavailable: {st.message()}"
    conflicts = policy_for(cfg).conflicts
    if conflicts:
        return f"sandbox can't protect agentd: {conflicts[0]}"
    return None
