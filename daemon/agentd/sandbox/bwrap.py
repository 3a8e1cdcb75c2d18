"""bubblewrap, the program: where it is, the namespace arguments every sandbox starts with, the
covers over /proc that follow its ``--proc`` (``proc_args``), and whether it can run here
(``status``: probed once per process, with the fix when it can't).

``sandbox`` builds policies and command lines on it; ``canary`` probes a sandbox from inside.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from agentd.recordtype import Factory, Record


PROBE_TIMEOUT = 10.0
INSTALL_FIX = ("install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap; Fedora: sudo dnf install "
               "bubblewrap; Arch: sudo pacman -S bubblewrap), or set `sandbox: off` in the config to run agent "
               "tools unconfined (not recommended: see docs/security.md)")


def bwrap_path(env: dict | None = None) -> str | None:
    env = os.environ if env is None else env
    return shutil.which("bwrap", path=env.get("PATH") or os.defpath) or (
        "/usr/bin/bwrap" if os.access("/usr/bin/bwrap", os.X_OK) else None)


NAMESPACE_ARGS = ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent",
                  "--new-session", "--cap-drop", "ALL")

# /proc as docker leaves it to a container: uid 0 without capabilities still passes the owner check
# of sysctl and of /proc's root-owned files (kernel.core_pattern names a program the kernel runs as
# full root outside every namespace), so these are read-only ...
PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs", "driver", "pressure")
# ... and these, which show the kernel's memory, keys and timers or drive hardware, are hidden.
PROC_MASKED = ("kcore", "keys", "key-users", "timer_list", "sched_debug", "latency_stats", "acpi", "scsi",
               "asound", "kallsyms", "kmsg", "kpagecgroup", "kpagecount", "kpageflags", "mtrr")


def proc_args() -> tuple[list[str], list[str]]:
    """(mounts, read-only remounts) that follow ``--proc /proc``: the covers over what of the
    host's /proc a sandboxed root could write or should not read.  A bind's source is the host's
    /proc, whose sysctl tree is the same one (the net namespace's part follows the reader)."""
    args: list[str] = []
    remount: list[str] = []
    for name in PROC_READ_ONLY:
        if os.path.lexists(f"/proc/{name}"):
            args += ["--ro-bind", f"/proc/{name}", f"/proc/{name}"]
    for name in PROC_MASKED:
        path = f"/proc/{name}"
        if os.path.isdir(path):
            args += ["--tmpfs", f"/proc/{name}"]
            remount += ["--remount-ro", f"/proc/{name}"]
        elif os.path.lexists(path):
            args += ["--ro-bind", "/dev/null", f"/proc/{name}"]
    return args, remount


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
    covers, remount = proc_args()
    argv = [exe, *NAMESPACE_ARGS, "--unshare-net", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            *covers, "--tmpfs", "/tmp", *remount, "--remount-ro", "/tmp", "--chdir", "/", "--", "/bin/sh", "-c",
            "exit 0"]
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
