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
env)``, an explicit environment without API keys or session sockets, and
bwrap and everything inside see only that.

``unavailable(cfg)`` says, cheaply (one probe per process), why agent tools
can't run now: bwrap missing or unable to create namespaces (with the fix), or
a workspace that holds agentd's own files.  ``canary(cfg)`` runs probes inside
the sandbox for ``agentd doctor``.

API for runners::

    policy = sandbox.policy_for(cfg, task_attrs, workspace, for_cli="claude-cli")
    argv = sandbox.wrap(["claude", "-p", ...], policy)      # raises Unavailable
    env = sandbox.env_for(policy, env, keep_keys=True)
    manifest["sandbox"] = sandbox.describe(policy)
"""

from __future__ import annotations

import os
from pathlib import Path

from agentd.recordtype import Factory, Record

MODES = ("bwrap", "off")

# Secret places under $HOME, hidden from every sandbox (those that exist).
SECRET_PATHS = (
    ".ssh", ".aws", ".gnupg", ".netrc", ".config/gh", ".config/hub", ".docker/config.json", ".git-credentials",
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
# What each CLI agent needs of its own, writable (its login and session files).
CLI_OWN = {"claude-cli": (".claude", ".claude.json", ".claude/.credentials.json"),
           "codex-cli": (".codex", ".codex/auth.json")}
# Variables that lead out of the sandbox (session buses, agents), dropped from its environment.
SESSION_VARS = ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "SSH_AUTH_SOCK", "GPG_AGENT_INFO", "DISPLAY",
                "WAYLAND_DISPLAY", "XAUTHORITY", "DOCKER_HOST", "SYSTEMD_EXEC_PID", "INVOCATION_ID",
                "JOURNAL_STREAM", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "MANAGERPID", "TMPDIR")
PROBE_TIMEOUT = 10.0

INSTALL_FIX = ("install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap; Fedora: sudo dnf install "
               "bubblewrap; Arch: sudo pacman -S bubblewrap), or set `sandbox: off` in the config to run agent "
               "tools unconfined (not recommended: see docs/security.md)")


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
    programs: tuple = ()  # PATH dirs under a dir the sandbox replaces (/tmp, /run): shown again, read-only


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
    import sys

    config_home = cfg.env.get("XDG_CONFIG_HOME")
    config_home = Path(config_home) if config_home and os.path.isabs(config_home) else _home(cfg) / ".config"
    return {"agentd's code": Path(__file__).parent, "agentd's Python": Path(sys.prefix),
            "systemd user units": config_home / "systemd" / "user"}


def policy_for(cfg, task_attrs: dict | None = None, workspace=None, for_cli: bool | str = False,
               writable=()) -> Policy:
    """The policy for one run: config ``sandbox`` and ``network``, the task's ``network``/``gpu`` attrs.

    ``for_cli``: a CLI agent (``claude-cli``, ``codex-cli``, or True for both) gets the network
    (it calls its own API) and its own login dirs writable.  ``writable``: extra approved paths.
    """
    attrs = task_attrs or {}
    mode = cfg.values.get("sandbox") or "bwrap"
    ws = _real(workspace if workspace is not None else cfg.workspace)
    home = _home(cfg)
    cli = None if not for_cli else (for_cli if isinstance(for_cli, str) else "any")
    if cli:
        network = True
    elif attrs.get("network") is not None:
        network = bool(attrs["network"])
    else:
        network = bool(cfg.values.get("network", False))
    own_cli: set[str] = set()
    for name, rels in CLI_OWN.items():
        if cli in (name, "any"):
            own_cli.update(rels)
    extra = [_real(p) for p in writable]
    extra += [_real(home / r) for r in sorted(own_cli) if (home / r).is_dir() or (home / r).is_file()]
    hidden: list[Path] = []
    ours = agentd_paths(cfg)
    for p in ours.values():
        hidden.append(_real(p))
    for rel in SECRET_PATHS:
        if rel in own_cli:
            continue
        p = home / rel
        if os.path.lexists(p):
            hidden.append(_real(p))
    import glob

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
    from agentd.config import read_env_file

    return Policy(mode=mode, workspace=ws, network=network, gpu=bool(attrs.get("gpu")),
                  writable=tuple(dict.fromkeys(extra)), hidden=tuple(hidden), conflicts=tuple(conflicts),
                  for_cli=cli, env_file_vars=tuple(read_env_file(cfg.config_dir / "env")),
                  programs=tuple(programs_to_show(cfg.env.get("PATH") or os.defpath, hidden)))


MASKED = (Path("/tmp"), Path("/run"), Path("/dev/shm"), Path("/var/run"))  # replaced in the sandbox


def programs_to_show(path: str, hidden) -> list[Path]:
    """The dirs that hold PATH dirs a private /tmp (or the emptied /run) would hide, such as a checkout
    or a CLI installed under /tmp: the top dir under /tmp is shown again, read-only, so its programs
    run with the files they read beside them.  Hidden dirs inside it stay hidden (deeper mounts come
    later), and a PATH dir inside a hidden one is not shown."""
    out: list[Path] = []
    for d in path.split(":"):
        if not d or not os.path.isabs(d):
            continue
        rd = _real(d)
        root = next((m for m in MASKED if _inside(rd, m) and rd != m), None)
        if root is None or not rd.is_dir() or any(_inside(rd, _real(h)) for h in hidden):
            continue
        out.append(root / rd.relative_to(root).parts[0])
    return list(dict.fromkeys(out))


# -- the command line ---------------------------------------------------------------------
def bwrap_path(env: dict | None = None) -> str | None:
    import shutil

    env = os.environ if env is None else env
    return shutil.which("bwrap", path=env.get("PATH") or os.defpath) or (
        "/usr/bin/bwrap" if os.access("/usr/bin/bwrap", os.X_OK) else None)


def _depth(p: Path) -> int:
    return len(p.parts)


NAMESPACE_ARGS = ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent",
                  "--new-session", "--cap-drop", "ALL")


def bwrap_args(policy: Policy) -> list[str]:
    """The bwrap options (without the program and the command) that enforce ``policy``."""
    args = [*NAMESPACE_ARGS, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    if not policy.network:
        args.append("--unshare-net")
    if policy.gpu:
        import glob

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
    remount = []
    for p in policy.programs:
        if os.path.isdir(p):
            ops.append((_depth(p), 1, ["--ro-bind", str(p), str(p)]))
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
        st = status(env)
        if not st.ok:
            raise Unavailable(st.message())
    exe = bwrap_path(env)
    if exe is None:
        raise Unavailable(f"bwrap is not installed; fix: {INSTALL_FIX}")
    Path(policy.workspace).mkdir(parents=True, exist_ok=True)  # bwrap binds it: it must exist
    return [exe, *bwrap_args(policy), "--", *argv]


def env_for(policy: Policy, env: dict, *, keep_keys: bool = False) -> dict[str, str]:
    """The environment to start a sandboxed process with: no API keys and nothing else from agentd's
    env file (unless ``keep_keys``, for a CLI agent's own login), and no session sockets or agents
    that lead outside."""
    from agentd.redact import scrubbed_env

    out = dict(env) if keep_keys else scrubbed_env(env)
    if not keep_keys:
        for k in policy.env_file_vars:
            out.pop(k, None)
    if policy.mode == "off":
        return out
    for k in SESSION_VARS:
        out.pop(k, None)
    if policy.private_tmp:
        out["TMPDIR"] = "/tmp"
    return out


def describe(policy: Policy, cfg=None) -> dict:
    """The policy as the run manifest records it."""
    if policy.mode == "off":
        return {"sandbox": "off", "note": "explicit `sandbox: off` in the config: tools run unconfined"}
    st = status(cfg.env if cfg is not None else None)
    return {"sandbox": "bwrap", "bwrap": st.bwrap, "version": st.version, "usable": st.ok,
            "read_only": "/", "writable": [str(policy.workspace), *map(str, policy.writable)]
            + (["/tmp (private tmpfs)", "/dev/shm (private tmpfs)"] if policy.private_tmp else []),
            "hidden": [str(h) for h in policy.hidden if os.path.lexists(h)] + ["/run"],
            "network": policy.network, "gpu": policy.gpu,
            "namespaces": ["mount", "pid", "ipc", "uts", "cgroup"] + ([] if policy.network else ["net"]),
            "die_with_parent": True, "new_session": True, "capabilities": "none",
            **({"for_cli": policy.for_cli} if policy.for_cli else {}),
            **({"conflicts": list(policy.conflicts)} if policy.conflicts else {})}


# -- can it run here? -------------------------------------------------------------------
class Status(Record):
    ok: bool
    bwrap: str | None = None
    version: str | None = None
    reason: str | None = None
    fix: str | None = None
    details: dict = Factory(dict)

    def message(self) -> str:
        if self.ok:
            return f"bwrap {self.version or ''} at {self.bwrap} works".replace("  ", " ")
        return f"{self.reason}; fix: {self.fix}" if self.fix else str(self.reason)


_STATUS: dict[tuple, Status] = {}


def reset_cache() -> None:
    _STATUS.clear()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def in_container() -> str | None:
    """A word for the container this runs in, or None."""
    if os.path.exists("/.dockerenv"):
        return "docker"
    if os.path.exists("/run/.containerenv"):
        return "podman"
    cg = _read("/proc/1/cgroup") or ""
    for word in ("kubepods", "docker", "containerd", "lxc", "libpod"):
        if word in cg:
            return word
    return None


def diagnose(stderr: str, sysctl_root: str = "/proc/sys") -> tuple[str, str]:
    """(reason, fix) for a bwrap that could not set up its namespaces."""
    err = " ".join(stderr.strip().splitlines()[-3:])[:300] or "no message"
    reason = f"bwrap cannot create its namespaces ({err})"
    if _read(f"{sysctl_root}/kernel/apparmor_restrict_unprivileged_userns") == "1":
        return reason, ("this is Ubuntu's AppArmor restriction on unprivileged user namespaces "
                        "(kernel.apparmor_restrict_unprivileged_userns=1): allow bwrap with an AppArmor profile "
                        "(Ubuntu 24.04+: sudo cp /usr/share/apparmor/extra-profiles/bwrap-userns-restrict "
                        "/etc/apparmor.d/ && sudo apparmor_parser -r /etc/apparmor.d/bwrap-userns-restrict), "
                        "or lift the restriction: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 "
                        "(and put it in /etc/sysctl.d/ to keep it after a reboot)")
    if _read(f"{sysctl_root}/kernel/unprivileged_userns_clone") == "0":
        return reason, ("unprivileged user namespaces are off: sudo sysctl -w kernel.unprivileged_userns_clone=1 "
                        "(and put it in /etc/sysctl.d/)")
    if _read(f"{sysctl_root}/user/max_user_namespaces") == "0":
        return reason, "user namespaces are off: sudo sysctl -w user.max_user_namespaces=15000"
    box = in_container()
    if box:
        return f"{reason}; agentd runs in a container ({box})", (
            "the container's seccomp profile or missing capabilities forbid namespaces: start it with "
            "--security-opt seccomp=unconfined --security-opt apparmor=unconfined (docker/podman), or "
            "--cap-add SYS_ADMIN; or, if the container itself is the sandbox you want, set `sandbox: off`")
    return reason, ("check that user namespaces are allowed (sysctl user.max_user_namespaces) and that no "
                    f"security module blocks bwrap; or set `sandbox: off` (see docs/security.md)")


def status(env: dict | None = None) -> Status:
    """Whether bwrap is installed and can create the namespaces; probed once per process."""
    exe = bwrap_path(env)
    key = (exe,)
    if key in _STATUS:
        return _STATUS[key]
    _STATUS[key] = st = _probe(exe)
    return st


def _probe(exe: str | None) -> Status:
    import subprocess

    if exe is None:
        return Status(False, None, None, "bwrap (bubblewrap) is not installed", INSTALL_FIX)
    version = None
    try:
        v = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=PROBE_TIMEOUT,
                           stdin=subprocess.DEVNULL)
        version = (v.stdout.strip().split() or [None])[-1]
    except (OSError, subprocess.TimeoutExpired):
        pass
    # the namespaces and mounts of a real run, over nothing but a private /tmp
    argv = [exe, *NAMESPACE_ARGS, "--unshare-net", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp", "--remount-ro", "/tmp", "--chdir", "/", "--", "/bin/sh", "-c", "exit 0"]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT, stdin=subprocess.DEVNULL,
                           env={"PATH": os.defpath})
    except subprocess.TimeoutExpired:
        return Status(False, exe, version, f"bwrap at {exe} did not finish a test run in {PROBE_TIMEOUT:g} s",
                      "check the host's load and bwrap install; or set `sandbox: off`")
    except OSError as e:
        return Status(False, exe, version, f"bwrap at {exe} cannot be run: {e.strerror or e}", INSTALL_FIX)
    if p.returncode != 0:
        reason, fix = diagnose(p.stderr)
        return Status(False, exe, version, f"{reason} [{exe}]", fix, {"stderr": p.stderr[-2000:]})
    return Status(True, exe, version)


def unavailable(cfg) -> str | None:
    """Why agent tools can't run now (with the fix), or None.  Cheap: bwrap is probed once per
    process.  ``sandbox: off`` is never unavailable."""
    if (cfg.values.get("sandbox") or "bwrap") == "off":
        return None
    st = status(cfg.env)
    if not st.ok:
        return f"sandbox unavailable: {st.message()}"
    conflicts = policy_for(cfg).conflicts
    if conflicts:
        return f"sandbox can't protect agentd: {conflicts[0]}"
    return None


# -- the canary -------------------------------------------------------------------------
# Run inside the sandbox by ``canary``: each probe tries to reach something it must not, without
# changing anything (writes are asked of access(2), which answers EROFS on a read-only mount),
# and prints one JSON line per probe: {"name", "reached", "detail"}.
_CANARY = r'''
import json, os, socket, sys
a = json.loads(sys.argv[1])
def out(name, reached, detail):
    print(json.dumps({"name": name, "reached": bool(reached), "detail": detail}), flush=True)
def err(e):
    return e.strerror or type(e).__name__
def read(path):
    try:
        if os.path.isdir(path):
            names = [n for n in os.listdir(path) if n not in a["mounts"].get(path, [])]
            return bool(names), f"{path}: can list {len(names)} entries" if names else f"{path}: empty"
        with open(path, "rb") as f:
            f.read(1)
        return True, f"{path}: readable"
    except OSError as e:
        return False, f"{path}: {err(e)}"
for name, path in a["read"]:
    out(name, *read(path))
for name, path, ident in a["write"]:
    try:
        st = os.stat(path)
        same = [st.st_dev, st.st_ino] == ident  # not a private copy (a mount point in the sandbox's /tmp)
    except OSError as e:
        out(name, False, f"{path}: {err(e)}")
        continue
    ok = same and os.access(path, os.W_OK)
    out(name, ok, f"{path}: writable" if ok else f"{path}: not writable" if same else f"{path}: not there")
if a["secrets"]:
    got = [p for p in a["secrets"] if read(p)[0]]
    out("secret files (~/.ssh, /etc/shadow, ...)", got, f"readable: {', '.join(got)}" if got else
        f"none of {len(a['secrets'])} readable")
try:
    s = socket.create_connection(("127.0.0.1", a["port"]), timeout=2)
    s.close()
    out("network (a loopback server outside)", True, f"connected to 127.0.0.1:{a['port']}")
except OSError as e:
    out("network (a loopback server outside)", False, f"127.0.0.1:{a['port']}: {err(e)}")
socks = []
for p in a["sockets"]:
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        s.connect(p)
        s.close()
        socks.append(p)
    except OSError:
        pass
out("control sockets (systemd, D-Bus, docker)", socks,
    f"connected: {', '.join(socks)}" if socks else f"none of {len(a['sockets'])} reachable")
try:
    with open(f"/proc/{a['pid']}/cmdline", "rb") as f:
        same = f.read() == a["cmdline"].encode("utf-8", "surrogateescape")
except OSError as e:
    same = False
out("agentd's process in /proc", same, f"/proc/{a['pid']} is agentd" if same else
    f"pid {a['pid']} is not agentd here (own PID namespace)" )
found = [k for k in a["keys"] if k in os.environ]
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        found += [f"{k} (pid {d})" for k in a["keys"] if any(e.startswith(k + "=") for e in env)]
out("API keys in any visible environment", found, ", ".join(sorted(set(found))) or "none")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        fd = os.open(os.devnull, os.O_RDWR)
        for i in (0, 1, 2):
            os.dup2(fd, i)
        os.execvp("sleep", ["sleep", a["survivor"]])
    os._exit(0)
os.wait()
'''


def _survivors(token: str) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if f.read() == b"sleep\0" + token.encode() + b"\0":
                        out.append(int(d))
            except OSError:
                pass
    return out


def _python(policy: Policy) -> str:
    """A Python the sandbox can see (agentd's own may live in /tmp or a hidden dir)."""
    import sys

    import shutil

    covered = [*policy.hidden, *([Path("/tmp")] if policy.private_tmp else []), Path("/run")]
    # a venv's python run by its real path is the base interpreter: enough for stdlib-only probes
    for exe in (sys.executable, os.path.realpath(sys.executable), getattr(sys, "_base_executable", None),
                "/usr/bin/python3", shutil.which("python3")):
        if exe and os.access(exe, os.X_OK) and not any(_inside(_real(exe), c) or _inside(Path(os.path.abspath(exe)), c)
                                                       for c in covered):
            return exe
    return sys.executable


def canary(cfg, timeout: float = 30) -> dict:
    """Probe, from inside the sandbox this config gives the agent's shell, what it can reach.

    Returns {"mode", "ok" (nothing reached), "probes": [{"name", "reached", "detail"}], "error"}.
    With ``sandbox: off`` the same probes run unconfined, to show what an agent could reach.
    """
    import json
    import secrets
    import signal
    import socket
    import subprocess
    import sys
    import tempfile
    import threading
    import time

    from agentd.redact import LLM_KEYS

    mode = cfg.values.get("sandbox") or "bwrap"
    result: dict = {"mode": mode, "ok": False, "probes": [], "error": None}
    with tempfile.TemporaryDirectory(prefix="agentd-canary-") as ws:
        policy = policy_for(cfg, workspace=ws)
        ours = {k: _real(v) for k, v in agentd_paths(cfg).items()}
        mounts: dict[str, list[str]] = {}  # mount points bwrap makes inside a hidden dir: not its content
        for w in (policy.workspace, *policy.writable):
            for h in policy.hidden:
                if h in w.parents:
                    mounts.setdefault(str(h), []).append(w.relative_to(h).parts[0])
        env_file = _real(cfg.config_dir / "env")
        reads = [("agentd's env file (API keys)" if env_file.exists() else "agentd's config dir",
                  str(env_file if env_file.exists() else ours["config dir"])),
                 ("agentd's state (store)", str(_real(cfg.store_path) if cfg.store_path.exists()
                                               else ours["state dir"])),
                 ("the worklog", str(_real(cfg.worklog_path) if cfg.worklog_path.exists()
                                     else ours["worklog dir"]))]
        writes = [("write: the worklog", str(_real(cfg.worklog_path) if cfg.worklog_path.exists()
                                              else ours["worklog dir"])),
                  ("write: agentd's state dir", str(ours["state dir"])),
                  ("write: agentd's config dir", str(ours["config dir"])),
                  ("write: outside the workspace (home)", str(_real(_home(cfg)))),
                  ("write: outside the workspace (next to it)", str(_real(cfg.workspace).parent)),
                  ("write: outside the workspace (/var/tmp)", "/var/tmp"),
                  ("write: system dirs (/etc)", "/etc")]
        reads = [r for r in reads if os.path.lexists(r[1])]
        writes = [[name, path, [os.stat(path).st_dev, os.stat(path).st_ino]] for name, path in writes
                  if os.path.exists(path)]
        secret_paths = [str(h) for h in policy.hidden if os.path.lexists(h) and h not in ours.values()]
        uid = os.getuid()
        sockets = [p for p in (f"/run/user/{uid}/bus", f"/run/user/{uid}/systemd/private",
                               "/run/dbus/system_bus_socket", "/run/systemd/private", "/var/run/docker.sock",
                               "/run/docker.sock", "/run/containerd/containerd.sock", "/run/podman/podman.sock")
                   if os.path.exists(p)]
        with open(f"/proc/{os.getpid()}/cmdline", "rb") as f:
            cmdline = f.read().decode("utf-8", "surrogateescape")
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.settimeout(0.2)
        hits: list = []
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                    hits.append(1)
                    conn.close()
                except OSError:
                    pass

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        survivor = f"{29 + secrets.randbelow(1000) / 1000:.3f}{secrets.randbelow(10**6):06d}"
        args = {"read": reads, "write": writes, "secrets": secret_paths, "port": server.getsockname()[1],
                "sockets": sockets, "pid": os.getpid(), "cmdline": cmdline, "keys": list(LLM_KEYS),
                "survivor": survivor, "mounts": mounts}
        argv = [_python(policy), "-I", "-S", "-c", _CANARY, json.dumps(args)]
        try:
            argv = wrap(argv, policy, cfg)
        except Unavailable as e:
            stop.set()
            server.close()
            result["error"] = str(e)
            return result
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ws,
                               env=env_for(policy, cfg.env), stdin=subprocess.DEVNULL, start_new_session=True)
            out, err = p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            out, err = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), "timed out"
        finally:
            stop.set()
            t.join(1)
            server.close()
        for line in out.splitlines():
            try:
                result["probes"].append(json.loads(line))
            except ValueError:
                pass
        if hits and not any(pr["name"].startswith("network") and pr["reached"] for pr in result["probes"]):
            result["probes"].append({"name": "network (a loopback server outside)", "reached": True,
                                     "detail": "the server outside was reached"})
        left: list[int] = []
        for _ in range(20):  # the PID namespace's end kills the survivor; give the kernel a moment
            left = _survivors(survivor)
            if not left:
                break
            time.sleep(0.1)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        result["probes"].append({"name": "a process that outlives the run", "reached": bool(left),
                                 "detail": f"pid {left[0]} survived (killed now)" if left else "none survived"})
        if len(result["probes"]) < 5:
            result["error"] = f"the canary did not run: {(err or out).strip()[-500:] or 'no output'}"
    result["ok"] = result["error"] is None and not any(pr["reached"] for pr in result["probes"])
    return result
