"""A JSON-serialisable snapshot of this host's health: CPU, memory, disk, users, GPUs.

``psutil`` is imported inside ``snapshot`` (CLI start-up speed) and torch is
never imported unless asked (``use_torch=True``) or already imported.

User idle time is the one ``w`` shows: for each logged-in user's terminal,
``now - os.stat('/dev/<terminal>').st_atime`` (a tty's access time moves when
the user types); the smallest one wins.  X sessions (terminal ``:0``) are
asked through ``xprintidle`` when that is installed.  ``idle_s`` is None when
no terminal could be measured; ``idle_source`` says why ("no users logged in"
means nobody is there to disturb).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable


GIB = 1024**3
SMI_QUERY = "name,memory.used,memory.free,memory.total,utilization.gpu,driver_version"
SMI_TIMEOUT = 10.0


def snapshot(paths: Iterable[Path] = (), use_torch: bool = False) -> dict[str, Any]:
    """Measure this host now; ``paths`` get a free-disk entry each."""
    import psutil  # lazy: ~10 ms of start-up; only a wake's health snapshot and doctor measure the host

    cpus = psutil.cpu_count() or os.cpu_count() or 1
    try:
        load = list(os.getloadavg())
    except OSError:  # not on this platform
        load = [0.0, 0.0, 0.0]
    mem = psutil.virtual_memory()
    now = time.time()
    users = []
    for u in psutil.users():
        users.append(
            {
                "name": u.name,
                "terminal": u.terminal,
                "host": u.host,
                "started": _iso(u.started),
            }
        )
    idle_s, idle_source = user_idle(users, now)
    gpus, gpu_source, cuda = gpu_info(use_torch=use_torch)
    return {
        "time": _iso(now),
        "host": os.environ.get("AGENTD_HOST") or socket.gethostname().split(".")[0] or "localhost",
        "cpu_count": cpus,
        "load": {"1m": load[0], "5m": load[1], "15m": load[2]},
        "load_per_cpu": round(load[0] / cpus, 3),
        "memory": {"total": mem.total, "available": mem.available, "percent": mem.percent},
        "disk": [disk_entry(Path(p)) for p in paths],
        "uptime_s": round(now - psutil.boot_time(), 1),
        "users": users,
        "idle_s": idle_s,
        "idle_source": idle_source,
        "gpu": gpus,
        "gpu_source": gpu_source,
        "cuda_version": cuda,
    }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def disk_entry(path: Path) -> dict[str, Any]:
    """Free disk of the filesystem ``path`` is (or will be) on."""
    import psutil  # lazy: ~10 ms of start-up; only a wake's health snapshot and doctor measure the host

    probe = Path(os.path.abspath(os.path.expanduser(str(path))))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = psutil.disk_usage(str(probe))
    return {
        "path": str(path),
        "checked": str(probe),
        "total": usage.total,
        "free": usage.free,
        "percent": usage.percent,
    }


def user_idle(users: list[dict], now: float | None = None) -> tuple[float | None, str]:
    """Smallest idle time (s) over the users' terminals, and how it was found."""
    if not users:
        return None, "no users logged in"
    now = time.time() if now is None else now
    best: float | None = None
    sources = set()
    for u in users:
        term = u.get("terminal") or ""
        idle = None
        if term.startswith(":"):
            idle = _x_idle(term)
            src = "xprintidle"
        elif term:
            src = "tty atime"
            try:
                idle = max(0.0, now - os.stat(f"/dev/{term}").st_atime)
            except OSError:
                idle = None
        if idle is not None:
            sources.add(src)
            best = idle if best is None else min(best, idle)
    if best is None:
        return None, "unknown: no user terminal could be measured"
    return round(best, 1), "+".join(sorted(sources))


def _x_idle(display: str) -> float | None:
    exe = shutil.which("xprintidle")
    if not exe:
        return None
    try:
        out = subprocess.run(
            [exe], capture_output=True, text=True, timeout=2, env={**os.environ, "DISPLAY": display}
        )
        return int(out.stdout.strip()) / 1000 if out.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def _num(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None
    return int(value) if value.is_integer() else value


def parse_smi_csv(text: str) -> list[dict[str, Any]]:
    """Rows of ``nvidia-smi --query-gpu=SMI_QUERY --format=csv,noheader,nounits``."""
    gpus = []
    for index, line in enumerate(ln for ln in text.splitlines() if ln.strip()):
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 6:
            continue
        gpus.append(
            {
                "index": index,
                "name": cells[0],
                "memory_used_mib": _num(cells[1]),
                "memory_free_mib": _num(cells[2]),
                "memory_total_mib": _num(cells[3]),
                "utilization_pct": _num(cells[4]),
                "driver_version": cells[5],
            }
        )
    return gpus


def parse_smi_cuda(text: str) -> str | None:
    """'CUDA Version: 12.4' from the plain ``nvidia-smi`` header."""
    marker = "CUDA Version:"
    at = text.find(marker)
    if at < 0:
        return None
    rest = text[at + len(marker) :].split()
    return rest[0] if rest else None


def _smi(exe: str, args: list[str], deadline: float) -> subprocess.CompletedProcess:
    timeout = max(0.5, deadline - time.monotonic())
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)


def gpu_info(use_torch: bool = False) -> tuple[list[dict], str, str | None]:
    """(gpus, source or why there are none, CUDA version)."""
    deadline = time.monotonic() + SMI_TIMEOUT
    exe = shutil.which("nvidia-smi")
    why = "nvidia-smi not found"
    if exe:
        try:
            out = _smi(exe, [f"--query-gpu={SMI_QUERY}", "--format=csv,noheader,nounits"], deadline)
            if out.returncode == 0:
                gpus = parse_smi_csv(out.stdout)
                cuda = None
                try:
                    cuda = parse_smi_cuda(_smi(exe, [], deadline).stdout)
                except (OSError, subprocess.TimeoutExpired):
                    pass
                if gpus:
                    return gpus, "nvidia-smi", cuda
                why = "nvidia-smi lists no GPU"
            else:
                first = (out.stderr or out.stdout).strip().splitlines()
                why = f"nvidia-smi failed (rc={out.returncode}): {first[0] if first else 'no output'}"
        except subprocess.TimeoutExpired:
            why = f"nvidia-smi timed out after {SMI_TIMEOUT:.0f} s"
        except OSError as e:
            why = f"nvidia-smi could not run: {e}"
    if use_torch or "torch" in sys.modules:
        return _torch_gpus(why)
    return [], why, None


def _torch_gpus(why: str) -> tuple[list[dict], str, str | None]:
    try:
        import torch
    except Exception as e:  # ImportError, or a broken CUDA install (OSError)
        return [], f"{why}; torch not importable ({type(e).__name__})", None
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
        return [], f"{why}; torch {torch.__version__} ({build}) sees no CUDA device", torch.version.cuda
    gpus = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        try:
            free, total = torch.cuda.mem_get_info(i)
        except Exception:
            free, total = None, props.total_memory
        mib = 1024**2
        gpus.append(
            {
                "index": i,
                "name": props.name,
                "memory_used_mib": None if free is None else (total - free) // mib,
                "memory_free_mib": None if free is None else free // mib,
                "memory_total_mib": total // mib,
                "utilization_pct": None,
                "driver_version": None,
            }
        )
    return gpus, "torch", torch.version.cuda


def has_gpu(snap: dict) -> bool:
    """True when the snapshot lists at least one GPU."""
    return bool(snap.get("gpu"))


def _gib(n: float) -> str:
    g = n / GIB
    return f"{g:.1f} GiB" if g < 100 else f"{g:.0f} GiB"


def _span(seconds: float) -> str:
    s = int(seconds)
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return f"{d} d {h} h"
    if h:
        return f"{h} h {m} min"
    if m:
        return f"{m} min"
    return f"{s} s"


def summary_lines(snap: dict) -> list[str]:
    """Short human lines; ``", ".join(...)`` makes them one line."""
    mem = snap["memory"]
    lines = [
        f"load {snap['load_per_cpu']:.2f}/CPU ({snap['cpu_count']} CPUs)",
        f"memory {_gib(mem['available'])} free of {_gib(mem['total'])}",
    ]
    for d in snap.get("disk", []):
        lines.append(f"disk {d['path']} {_gib(d['free'])} free")
    n = len(snap.get("users", []))
    who = f"{n} user" + ("" if n == 1 else "s")
    idle = snap.get("idle_s")
    if idle is not None:
        who += f", idle {_span(idle)}"
    elif n:
        who += ", idle unknown"
    lines.append(f"up {_span(snap.get('uptime_s', 0))}, {who}")
    gpus = snap.get("gpu") or []
    if not gpus:
        lines.append(f"GPU: none ({snap.get('gpu_source', 'unknown')})")
    for g in gpus:
        text = f"GPU {g['index']}: {g['name']}"
        free, total = g.get("memory_free_mib"), g.get("memory_total_mib")
        if free is not None and total is not None:
            text += f", {_gib(free * 1024**2)} free of {_gib(total * 1024**2)}"
        if g.get("utilization_pct") is not None:
            text += f", util {g['utilization_pct']}%"
        if snap.get("cuda_version"):
            text += f", CUDA {snap['cuda_version']}"
        lines.append(text)
    return lines
