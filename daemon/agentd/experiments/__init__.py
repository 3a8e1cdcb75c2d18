"""Built-in experiments a worklog can ask for: ``EXPERIMENT: <name> {attrs}``.

Each one measures something on this host and returns a ``Result``; ``run``
also writes it to ``<run_dir>/result.json``.  torch and transformers are
imported only inside the experiments; when they are missing the result is
``blocked`` and its summary names the pip command that fixes it.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Callable

from agentd.errors import MissingDependency
from agentd.experiments.result import GPU_EXTRA, TORCH_NOTE, Progress, Result

NAMES = ("health", "cuda-probe", "model-bench")


def _impl(name: str) -> Callable[[dict, Path, dict, Progress], Result]:
    if name == "health":
        from agentd.experiments.health import run as impl
    elif name == "cuda-probe":
        from agentd.experiments.cuda_probe import run as impl
    else:
        from agentd.experiments.model_bench import run as impl
    return impl


def run(name: str, attrs: dict | None, run_dir: Path, snap: dict | None, progress: Progress | None = None) -> Result:
    """Run experiment ``name``; never raises for expected problems."""
    attrs = dict(attrs or {})
    if progress is None:
        progress = lambda phase: None  # noqa: E731
    run_dir = Path(run_dir)
    if name not in NAMES:
        result = Result("failed", f"unknown experiment {name!r}; known: {', '.join(NAMES)}")
    else:
        try:
            result = _impl(name)(attrs, run_dir, snap or {}, progress)
        except MissingDependency as e:
            result = Result(
                "blocked",
                f"{name}: {e.what} is not installed; fix: {GPU_EXTRA}",
                lines=[f"fix: {e.fix}"],
                data={"missing": e.what},
                next_step=f"run `{GPU_EXTRA}` in agentd's environment ({TORCH_NOTE})",
            )
        except Exception as e:  # an experiment crashing is a finding, not a daemon crash
            result = Result(
                "failed",
                f"{name} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": "),
                lines=traceback.format_exc().splitlines()[-6:],
                data={"error": f"{type(e).__name__}: {e}"},
            )
    write_result(run_dir, name, result)
    return result


def write_result(run_dir: Path, name: str, result: Result) -> Path:
    """``<run_dir>/result.json``: the Result with the experiment name."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "result.json"
    path.write_text(json.dumps({"experiment": name, **result.to_dict()}, indent=2, default=str, ensure_ascii=False) + "\n")
    return path
