"""``cuda-probe``: does torch see CUDA, and how fast is one big matmul?

On a GPU: a bf16 (fp16 before compute capability 8.0) n x n matmul, timed with
CUDA events, as TFLOP/s and as a share of the device's dense peak.  Without
CUDA: the same on the CPU in float32, as GFLOP/s.
Attrs: ``size`` (default 4096 on GPU, 1024 on CPU), ``dtype`` (bf16|fp16|fp32).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from agentd.experiments.result import Progress, Result, require
from agentd.platform.health import has_gpu

DTYPES = ("bf16", "fp16", "fp32")

# Dense (no sparsity) bf16 tensor-core TFLOP/s with fp32 accumulate, from vendor
# datasheets; first match wins.  "~" marks figures derived from sparse or
# low-precision headline numbers.  Jetson figures are for the top power mode.
PEAKS: list[tuple[str, str, float]] = [
    (r"h200.*nvl", "H200 NVL", 835),
    (r"h200", "H200 / GH200", 989),
    (r"h100.*pcie", "H100 PCIe", 756),
    (r"h100.*nvl", "H100 NVL", 835),
    (r"h100", "H100 SXM", 989),
    (r"a100", "A100", 312),
    (r"l40s", "L40S", 362),
    (r"a10g", "A10G (~)", 70),
    (r"4090", "RTX 4090", 165),
    (r"3090", "RTX 3090", 71),
    (r"\bt4\b", "T4 (fp16)", 65),
    (r"thor", "Jetson Thor (~)", 259),
    (r"orin", "Jetson AGX Orin 64GB (~)", 42.5),
]


def peak_for(name: str) -> tuple[str, float] | None:
    """(label, dense bf16 TFLOP/s) for a device name, or None when unknown."""
    low = name.lower()
    for pattern, label, peak in PEAKS:
        if re.search(pattern, low):
            return label, peak
    return None


def _attrs(attrs: dict, cuda: bool) -> tuple[int, str | None]:
    size = attrs.get("size", 4096 if cuda else 1024)
    if not isinstance(size, int) or isinstance(size, bool) or not 16 <= size <= 65536:
        raise ValueError(f"size must be an integer 16..65536, got {size!r}")
    dtype = attrs.get("dtype")
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return size, dtype


def _time(torch, a, b, c, sync, clock, target_s: float = 0.3) -> tuple[float, int]:
    """Best seconds per matmul over 3 windows of about ``target_s`` each."""
    start = clock()
    torch.matmul(a, b, out=c)
    sync()
    one = max(clock() - start, 1e-6)
    iters = max(3, min(2000, int(target_s / one)))
    best = float("inf")
    for _ in range(3):
        t0 = clock()
        for _ in range(iters):
            torch.matmul(a, b, out=c)
        sync()
        best = min(best, (clock() - t0) / iters)
    return best, iters


def run(attrs: dict, run_dir: Path, snap: dict, progress: Progress) -> Result:
    progress("import torch")
    torch = require("torch")
    cuda = bool(torch.cuda.is_available())
    size, dtype = _attrs(attrs, cuda)
    progress("query device")
    data: dict = {
        "torch_version": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": cuda,
        "size": size,
    }
    return _gpu(torch, size, dtype, data, progress) if cuda else _cpu(torch, size, dtype, data, snap, progress)


def _gpu(torch, size: int, dtype: str | None, data: dict, progress: Progress) -> Result:
    dev = torch.device("cuda", 0)
    name = torch.cuda.get_device_name(dev)
    cap = torch.cuda.get_device_capability(dev)
    notes = []
    want = dtype or "bf16"
    if want == "bf16" and cap < (8, 0):
        want = "fp16"
        notes.append(f"bf16 is not native before sm_80 (this is sm_{cap[0]}{cap[1]}): used fp16")
    tdt = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[want]
    data.update(
        device=name,
        devices=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        compute_capability=f"{cap[0]}.{cap[1]}",
        dtype=want,
    )
    progress("warm up")
    a = torch.randn(size, size, device=dev, dtype=tdt)
    b = torch.randn(size, size, device=dev, dtype=tdt)
    c = torch.empty(size, size, device=dev, dtype=tdt)
    for _ in range(3):
        torch.matmul(a, b, out=c)
    torch.cuda.synchronize()

    def clock() -> float:  # seconds on a CUDA event timeline
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        ev.synchronize()
        return ev_base.elapsed_time(ev) / 1000

    ev_base = torch.cuda.Event(enable_timing=True)
    ev_base.record()
    progress("measure")
    sec, iters = _time(torch, a, b, c, torch.cuda.synchronize, clock)
    tflops = 2 * size**3 / sec / 1e12
    known = peak_for(name)
    peak = known[1] if known and want != "fp32" else None
    ratio = round(tflops / peak, 3) if peak else None
    if not known:
        notes.append(f"peak unknown: {name!r} is not in agentd's table, so no ratio")
    elif want == "fp32":
        notes.append("the peak table is for bf16/fp16 tensor cores: no ratio for fp32")
    data.update(
        seconds_per_matmul=sec, iterations=iters, tflops=round(tflops, 2),
        peak_label=known[0] if known else None, peak_tflops=peak, ratio=ratio, notes=notes,
    )
    tail = f" = {ratio:.0%} of {peak:g} peak ({known[0]})" if ratio is not None else " (no peak to compare)"
    summary = (
        f"CUDA: {name} (sm_{cap[0]}{cap[1]}, torch {torch.__version__}, CUDA {torch.version.cuda}): "
        f"{size}x{size} {want} matmul {tflops:.1f} TFLOP/s{tail}"
    )
    lines = [
        "| device | cc | dtype | size | TFLOP/s | peak | ratio |",
        "|---|---|---|---|---|---|---|",
        f"| {name} | {cap[0]}.{cap[1]} | {want} | {size} | {tflops:.1f} | "
        f"{peak if peak else '?'} | {f'{ratio:.0%}' if ratio is not None else '?'} |",
        *notes,
    ]
    next_step = None
    if ratio is not None and ratio < 0.4:
        next_step = (
            f"only {ratio:.0%} of peak: check clocks and power limit (nvidia-smi -q -d CLOCK,POWER), "
            "other GPU processes, or try a larger size"
        )
    return Result("done", summary, lines=lines, data=data, next_step=next_step)


def _cpu(torch, size: int, dtype: str | None, data: dict, snap: dict, progress: Progress) -> Result:
    build = f"CUDA {torch.version.cuda} build, but no CUDA device is visible" if torch.version.cuda else "CPU build"
    want = dtype or "fp32"
    tdt = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[want]
    threads = torch.get_num_threads()
    data.update(device="cpu", dtype=want, threads=threads)
    progress("warm up")
    a, b = torch.randn(size, size, dtype=tdt), torch.randn(size, size, dtype=tdt)
    c = torch.empty(size, size, dtype=tdt)
    torch.matmul(a, b, out=c)
    progress("measure")
    sec, iters = _time(torch, a, b, c, lambda: None, time.perf_counter)
    gflops = 2 * size**3 / sec / 1e9
    data.update(seconds_per_matmul=sec, iterations=iters, gflops=round(gflops, 2))
    summary = (
        f"CUDA: not available — torch {torch.__version__} {build}; measured the CPU instead: "
        f"{size}x{size} {want} matmul {gflops:.1f} GFLOP/s ({threads} threads)"
    )
    lines = [
        "| device | dtype | size | threads | GFLOP/s |",
        "|---|---|---|---|---|",
        f"| cpu | {want} | {size} | {threads} | {gflops:.1f} |",
    ]
    next_step = None
    if has_gpu(snap) and not torch.version.cuda:
        next_step = (
            "nvidia-smi sees a GPU but torch is a CPU build: install a CUDA build, e.g. "
            "pip install torch --index-url https://download.pytorch.org/whl/cu124 (Jetson: NVIDIA's wheel)"
        )
    elif torch.version.cuda:
        next_step = "torch is a CUDA build but sees no device: check the driver with nvidia-smi and CUDA_VISIBLE_DEVICES"
    return Result("done", summary, lines=lines, data=data, next_step=next_step)
