"""The built-in experiments' results as metrics with stable names (``Result.data``, as in result.json).

cuda-probe: ``tflops`` (GPU), ``peak_fraction`` where the device's peak is known, ``gflops`` (the CPU
fallback), ``seconds_per_matmul``; and the peak itself (``peaks``), what a gate's ``peak`` stands for.
model-bench, per model: ``tokens_per_s.<model>``, ``ttft_s.<model>``, ``load_s.<model>``,
``peak_mem_mib.<model>``, where ``<model>`` is the model's id with every character other than a letter,
digit or ``_`` written ``_`` (``Qwen/Qwen2.5-0.5B`` -> ``Qwen_Qwen2_5_0_5B``), cut to fit 64 characters
with a hash of the id.  A model that failed gives no metrics.
"""

from __future__ import annotations

import hashlib
import re

from agentd.metrics.extract import Extracted
from agentd.metrics.metric import MEASURED, Metric, value_problem

CUDA_PROBE = (("tflops", "tflops", "TFLOP/s"), ("ratio", "peak_fraction", ""), ("gflops", "gflops", "GFLOP/s"),
              ("seconds_per_matmul", "seconds_per_matmul", "s"))
MODEL_BENCH = (("tok_per_s", "tokens_per_s", "tok/s"), ("first_token_s", "ttft_s", "s"), ("load_s", "load_s", "s"),
               ("peak_mem_mib", "peak_mem_mib", "MiB"))


def model_key(model: str, base: str) -> str:
    """``<base>.<model>``: the metric name for one model's figure, at most 64 characters."""
    slug = re.sub(r"[^A-Za-z0-9_]", "_", model) or "_"
    room = 64 - len(base) - 1
    if len(slug) > room:
        slug = slug[: room - 9] + "_" + hashlib.sha1(model.encode("utf-8", "replace")).hexdigest()[:8]
    return f"{base}.{slug}"


def _add(out: Extracted, name: str, value, unit: str) -> None:
    if value is not None and not value_problem(value):
        out.add(Metric(name, float(value), unit, MEASURED))


def from_experiment(experiment: str, data: dict, into: Extracted | None = None) -> Extracted:
    """The metrics in an experiment's ``data``; an experiment without numbers (health) gives none."""
    out = into if into is not None else Extracted()
    if not isinstance(data, dict):
        return out.finish()
    if experiment == "cuda-probe":
        for key, name, unit in CUDA_PROBE:
            _add(out, name, data.get(key), unit)
    elif experiment == "model-bench":
        for row in data.get("models") or []:
            if not isinstance(row, dict) or "error" in row or not isinstance(row.get("model"), str):
                continue
            for key, base, unit in MODEL_BENCH:
                _add(out, model_key(row["model"], base), row.get(key), unit)
    return out.finish()


def peaks(experiment: str, data: dict) -> dict:
    """metric name -> the device's spec figure a gate's ``peak`` means for it, where agentd knows one."""
    if experiment == "cuda-probe" and isinstance(data, dict):
        peak = data.get("peak_tflops")
        if peak is not None and not value_problem(peak) and peak > 0:
            return {"tflops": float(peak)}
    return {}
