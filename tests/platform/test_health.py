"""agentd.platform.health against the real host (psutil, /proc, /dev), no mocks of agentd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from agentd.platform import health

ROOT = Path(__file__).resolve().parents[2]

FAKE_SMI = """#!/bin/sh
if [ "$1" = "--query-gpu=name,memory.used,memory.free,memory.total,utilization.gpu,driver_version" ]; then
  echo "NVIDIA H100 80GB HBM3, 1024, 80535, 81559, 37, 550.54.15"
  echo "Orin (nvgpu), [N/A], [N/A], [N/A], [Not Supported], 540.4.0"
  exit 0
fi
echo "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4     |"
"""


def _path_with(tmp_path: Path, script: str | None) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if script is not None:
        exe = bin_dir / "nvidia-smi"
        exe.write_text(script)
        exe.chmod(0o755)
    return str(bin_dir)


def test_snapshot_shape_and_values(tmp_path):
    future = tmp_path / "not" / "yet" / "there"
    snap = health.snapshot([tmp_path, future])
    json.dumps(snap)  # JSON-serialisable as is
    for key in ("time", "host", "cpu_count", "load", "load_per_cpu", "memory", "disk", "uptime_s",
                "users", "idle_s", "idle_source", "gpu", "gpu_source", "cuda_version"):
        assert key in snap, key
    assert datetime.fromisoformat(snap["time"]).utcoffset().total_seconds() == 0
    assert snap["cpu_count"] == os.cpu_count()
    assert set(snap["load"]) == {"1m", "5m", "15m"} and all(v >= 0 for v in snap["load"].values())
    assert snap["load_per_cpu"] == pytest.approx(snap["load"]["1m"] / snap["cpu_count"], abs=0.01)
    mem = snap["memory"]
    assert 0 < mem["available"] <= mem["total"] and 0 <= mem["percent"] <= 100
    assert snap["uptime_s"] > 0
    existing, missing = snap["disk"]
    assert existing["path"] == str(tmp_path) and existing["checked"] == str(tmp_path)
    assert missing["path"] == str(future) and missing["checked"] == str(tmp_path)
    assert not future.exists()  # measuring must not create it
    assert 0 < existing["free"] <= existing["total"]
    for u in snap["users"]:
        assert set(u) == {"name", "terminal", "host", "started"}
    assert isinstance(snap["gpu"], list)


def test_snapshot_imports_neither_torch_nor_psutil_at_import():
    code = (
        "import sys, agentd.platform.health as h\n"
        "before = 'psutil' in sys.modules\n"
        "h.snapshot([])\n"
        "print(before, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "daemon")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_no_nvidia_smi_means_no_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _path_with(tmp_path, None))
    snap = health.snapshot([])
    # when another test has already imported torch, the snapshot also asks torch (and says so)
    assert snap["gpu"] == [] and snap["gpu_source"].startswith("nvidia-smi not found")
    assert not health.has_gpu(snap)
    assert health.summary_lines(snap)[-1].startswith("GPU: none (nvidia-smi not found")


def test_nvidia_smi_output_is_parsed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _path_with(tmp_path, FAKE_SMI))
    snap = health.snapshot([tmp_path])
    assert snap["gpu_source"] == "nvidia-smi" and snap["cuda_version"] == "12.4"
    h100, orin = snap["gpu"]
    assert h100 == {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_used_mib": 1024,
                    "memory_free_mib": 80535, "memory_total_mib": 81559, "utilization_pct": 37,
                    "driver_version": "550.54.15"}
    assert orin["name"] == "Orin (nvgpu)" and orin["memory_total_mib"] is None and orin["utilization_pct"] is None
    assert health.has_gpu(snap)
    lines = health.summary_lines(snap)
    assert "GPU 0: NVIDIA H100 80GB HBM3, 78.6 GiB free of 79.6 GiB, util 37%, CUDA 12.4" in lines
    assert "GPU 1: Orin (nvgpu), CUDA 12.4" in lines


def test_failing_nvidia_smi_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _path_with(tmp_path, "#!/bin/sh\necho 'NVIDIA-SMI has failed: no driver' >&2\nexit 9\n"))
    snap = health.snapshot([])
    assert snap["gpu"] == []
    assert snap["gpu_source"].startswith("nvidia-smi failed (rc=9): NVIDIA-SMI has failed: no driver")


def test_user_idle_from_tty_atime():
    atime = os.stat("/dev/null").st_atime
    assert health.user_idle([{"terminal": "null"}], now=atime + 42) == (42.0, "tty atime")
    two = [{"terminal": "null"}, {"terminal": "no-such-tty-xyz"}]
    assert health.user_idle(two, now=atime + 600)[0] == 600.0
    assert health.user_idle([{"terminal": "no-such-tty-xyz"}]) == (None, "unknown: no user terminal could be measured")
    assert health.user_idle([]) == (None, "no users logged in")


def test_summary_lines_format():
    gib = 1024**3
    snap = {
        "cpu_count": 2, "load_per_cpu": 0.42,
        "memory": {"total": int(23.4 * gib), "available": int(21.3 * gib), "percent": 9.0},
        "disk": [{"path": "/home", "free": 53 * gib}],
        "uptime_s": 3 * 86400 + 4 * 3600 + 59, "users": [{"name": "me"}], "idle_s": 725.0,
        "gpu": [], "gpu_source": "nvidia-smi not found",
    }
    assert ", ".join(health.summary_lines(snap)) == (
        "load 0.42/CPU (2 CPUs), memory 21.3 GiB free of 23.4 GiB, disk /home 53.0 GiB free, "
        "up 3 d 4 h, 1 user, idle 12 min, GPU: none (nvidia-smi not found)"
    )
    snap.update(users=[], idle_s=None, uptime_s=59)
    assert "up 59 s, 0 users" in health.summary_lines(snap)
    snap.update(users=[{}, {}], idle_s=None)
    assert "up 59 s, 2 users, idle unknown" in health.summary_lines(snap)


def test_summary_lines_of_a_real_snapshot(tmp_path):
    snap = health.snapshot([tmp_path])
    lines = health.summary_lines(snap)
    assert lines[0] == f"load {snap['load_per_cpu']:.2f}/CPU ({snap['cpu_count']} CPUs)"
    assert lines[2].startswith(f"disk {tmp_path} ") and lines[2].endswith(" free")
    assert lines[3].startswith("up ")
    assert health.has_gpu(snap) == (not lines[-1].startswith("GPU: none"))
