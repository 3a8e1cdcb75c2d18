"""The sandbox canary, for `agentd doctor`: probes run inside the sandbox a config gives the agent's
shell, each trying to reach something it must not (secrets, agentd's files, the network, the host's
processes), without changing anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import threading
import time

from agentd.providers.choice import KEY_VARS
from agentd.redact import _SECRET_NAME, _SHAPES, LLM_KEYS, could_be_secret
from agentd.sandbox import sandbox
from agentd.sandbox.sandbox import Policy, Unavailable, _home, _real, agentd_paths, policy_for, python_inside, wrap


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
got = [p for p in a["kernel"] if os.access(p, os.W_OK)]  # the host's own settings, whichever /proc shows them
out("write: the kernel's settings (/proc/sys, sysrq-trigger)", got, f"writable: {', '.join(got)}" if got else
    f"none of {len(a['kernel'])} writable")
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
import hashlib, re
secret_name, key_shape = re.compile(a["secret_name"], re.I), re.compile(a["key_shape"])
def key_in(value):  # a window of a key's length whose hash is a key's: the key itself is never passed in
    for n, hashes in a["key_hashes"].items():
        n = int(n)
        for i in range(len(value) - n + 1):
            if hashlib.sha256(value[i:i + n]).hexdigest() in hashes:
                return True
    return False
found, pids = [], 0
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        pids += 1
        for e in env:
            name, _, value = e.partition(b"=")
            name = name.decode("utf-8", "replace")
            if name in a["keys"] or (secret_name.search(name) and value):
                found.append(f"{name} (pid {d})")
            elif key_in(value) or key_shape.search(value.decode("utf-8", "replace")):
                found.append(f"the value of a key, as {name} (pid {d})")
out("keys in any visible environment (/proc/*/environ)", found, ", ".join(sorted(set(found))) or
    f"none in {pids} processes' environments")
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


# Files of the host's kernel a sandboxed root must not write (access(2) only: nothing is written).
KERNEL_SETTINGS = ["/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/proc/sys/vm/drop_caches",
                   "/proc/sysrq-trigger"]


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


def key_probe(cfg, policy: Policy) -> dict:
    """What the canary looks for in every environment inside: key names (the providers', agentd's
    env file's, any secret-looking one), key shapes (sk-..., ghp_...) and agentd's key values, as a
    SHA-256 per length (never the key itself)."""
    names = sorted({*KEY_VARS.values(), *LLM_KEYS, *policy.env_file_vars})
    values = {v for k, v in cfg.env.items() if (k in names or _SECRET_NAME.search(k)) and could_be_secret(v)}
    hashes: dict[str, list[str]] = {}
    for v in values:
        raw = v.encode("utf-8", "surrogateescape")
        hashes.setdefault(str(len(raw)), []).append(hashlib.sha256(raw).hexdigest())
    return {"keys": names, "secret_name": _SECRET_NAME.pattern, "key_shape": _SHAPES.pattern, "key_hashes": hashes}


def canary(cfg, timeout: float = 30) -> dict:
    """Probe, from inside the sandbox this config gives the agent's shell, what it can reach.

    Returns {"mode", "ok" (nothing reached), "probes": [{"name", "reached", "detail"}], "error"}.
    With ``sandbox: off`` the same probes run unconfined, to show what an agent could reach.
    """

    mode = cfg.values.get("sandbox") or "bwrap"
    result: dict = {"mode": mode, "ok": False, "probes": [], "error": None}
    with tempfile.TemporaryDirectory(prefix="agentd-canary-") as ws:
        policy = policy_for(cfg, workspace=ws)
        ours = {k: _real(v) for k, v in agentd_paths(cfg).items()}
        mounts: dict[str, list[str]] = {}  # mount points bwrap makes inside a hidden dir: not its content
        for w in (policy.workspace, *policy.writable, *policy.hidden):  # (the tasks dir in the worklog dir)
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
                "sockets": sockets, "pid": os.getpid(), "cmdline": cmdline, **key_probe(cfg, policy),
                "survivor": survivor, "mounts": mounts, "kernel": KERNEL_SETTINGS}
        argv = [python_inside(policy), "-I", "-S", "-c", _CANARY, json.dumps(args)]
        try:
            argv = wrap(argv, policy, cfg)
        except Unavailable as e:
            stop.set()
            server.close()
            result["error"] = str(e)
            return result
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ws,
                               env=sandbox.env_for(policy, cfg.env), stdin=subprocess.DEVNULL, start_new_session=True)
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
