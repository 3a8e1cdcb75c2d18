"""``health``: the host snapshot as a finding."""

from __future__ import annotations

from pathlib import Path

from agentd.experiments.result import Progress, Result
from agentd.platform.health import has_gpu, snapshot, summary_lines


def run(attrs: dict, run_dir: Path, snap: dict, progress: Progress) -> Result:
    """Report ``snap`` (or a fresh snapshot when it is empty)."""
    progress("snapshot")
    if not snap:
        snap = snapshot([run_dir], use_torch=bool(attrs.get("use_torch", False)))
    lines = summary_lines(snap)
    next_step = None
    busy = [g["name"] for g in snap.get("gpu", []) if (g.get("utilization_pct") or 0) > 50]
    if has_gpu(snap) and busy:
        next_step = f"GPU busy (>50% utilization: {', '.join(busy)}): a benchmark now would measure contention"
    return Result("done", ", ".join(lines), lines=lines, data=snap, next_step=next_step)
