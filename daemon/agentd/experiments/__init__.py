"""Built-in experiments a worklog can ask for: ``EXPERIMENT: <name> {attrs}``.

Each one measures something on this host and returns a ``Result``; ``run``
also writes it to ``<run_dir>/result.json``.  torch and transformers are
imported only inside the experiments; when they are missing the result is
``blocked`` and its summary names the pip command that fixes it.

``problem`` says, without running anything, why an ``EXPERIMENT:`` line can never run (an
unknown name, a required attr missing): the queue holds such a line back and `agentd check`
lists it.  This module stays light (the queue imports it); ``result`` is imported in ``run``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agentd.errors import MissingDependency

NAMES = ("health", "cuda-probe", "model-bench")
# name -> the attrs it can't run without, as the line would give them
REQUIRED = {"model-bench": {"model": "{model: <hf id or path>}"}}


def problem(name: str, attrs: dict | None) -> str | None:
    """Why ``EXPERIMENT: name {attrs}`` can never run as written, or None."""
    if name not in NAMES:
        import difflib  # lazy: only an unknown experiment's name needs it

        near = difflib.get_close_matches(name, NAMES, 1, 0.6)
        meant = f"; did you mean {near[0]}?" if near else ""
        return f"unknown experiment {name!r}{meant} (known: {', '.join(NAMES)})"
    for key, example in REQUIRED.get(name, {}).items():
        value = (attrs or {}).get(key)
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v.strip() for v in values):
            return f"{name} needs {example}"
    return None


def _impl(name: str):
    if name == "health":
        from agentd.experiments.health import run as impl  # lazy: each experiment loaded only when it runs
    elif name == "cuda-probe":
        # lazy: each experiment loaded only when it runs
        from agentd.experiments.cuda_probe import run as impl
    else:
        # lazy: each experiment loaded only when it runs
        from agentd.experiments.model_bench import run as impl
    return impl


def run(name: str, attrs: dict | None, run_dir: Path, snap: dict | None, progress: Progress | None = None) -> Result:
    """Run experiment ``name``; never raises for expected problems.  An experiment that can never
    run as written is ``blocked`` (a retry would fail the same way) with a one-line summary; one
    that crashes is ``failed`` with a one-line error, its traceback on stderr (the run's stderr.txt)
    and never in the result, which the worklog entry and later prompts quote."""
    # lazy: only a crashed experiment needs it; queue and status import this package for its names
    import traceback

    # lazy: only running one needs it; queue and status import this package for its names
    from agentd.experiments.result import GPU_EXTRA, TORCH_NOTE, Result

    attrs = dict(attrs or {})
    if progress is None:
        progress = lambda phase: None  # noqa: E731
    run_dir = Path(run_dir)
    why = problem(name, attrs)
    if name not in NAMES:
        result = Result("failed", why)
    elif why is not None:
        result = Result("blocked", why, next_step=f"fix the EXPERIMENT: {name} line, then it runs as a new task")
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
            traceback.print_exc(file=sys.stderr)
            first = str(e).splitlines()[0][:300] if str(e).strip() else ""
            result = Result(
                "failed",
                f"{name} failed: {type(e).__name__}: {first}".rstrip(": "),
                lines=[f"error: {type(e).__name__}: {first}".rstrip(": "), "traceback: the run's stderr.txt"],
                data={"error": f"{type(e).__name__}: {first}"},
            )
    write_result(run_dir, name, result)
    return result


def write_result(run_dir: Path, name: str, result) -> Path:
    """``<run_dir>/result.json``: the Result with the experiment name."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "result.json"
    path.write_text(json.dumps({"experiment": name, **result.to_dict()}, indent=2, default=str, ensure_ascii=False) + "\n")
    return path
