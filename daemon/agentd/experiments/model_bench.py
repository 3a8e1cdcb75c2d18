"""``model-bench``: load causal LMs with transformers and time greedy generation.

Per model: load time (tokenizer + weights + move to device), time to first
token (prefill + one token), tokens/s over ``max_new_tokens`` greedy tokens
from a fixed prompt, peak memory (CUDA: max_memory_allocated; CPU: process
RSS sampled every 20 ms), parameter count.  One failing model gets an error row.
Attrs: ``model`` (id or path, or a list), ``max_new_tokens`` (32), ``prompt``,
``device`` (auto|cuda|cpu), ``dtype`` (auto|bf16|fp16|fp32), ``trust_remote_code``.
"""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import psutil
from agentd.experiments.result import Progress, Result, require
from agentd.platform.health import has_gpu

PROMPT = "Explain in two sentences why the sky is blue during the day and red at sunset."
MIB = 1024**2


class _RssPeak:
    """Highest RSS of this process seen by a 20 ms sampler thread."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> "_RssPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def _check(attrs: dict) -> tuple[list[str], int]:
    models = attrs.get("model")
    if isinstance(models, str):
        models = [models]
    if not models or not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise ValueError("model-bench needs attr model: an id or local path, or a list of them")
    n = attrs.get("max_new_tokens", 32)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 100_000:
        raise ValueError(f"max_new_tokens must be an integer 1..100000, got {n!r}")
    if attrs.get("device", "auto") not in ("auto", "cuda", "cpu"):
        raise ValueError(f"device must be auto, cuda or cpu, got {attrs['device']!r}")
    if attrs.get("dtype", "auto") not in ("auto", "bf16", "fp16", "fp32"):
        raise ValueError(f"dtype must be auto, bf16, fp16 or fp32, got {attrs['dtype']!r}")
    return models, n


def _dtype_kw(transformers, torch_dtype) -> dict:
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": torch_dtype} if (major, minor) >= (4, 56) else {"torch_dtype": torch_dtype}


def run(attrs: dict, run_dir: Path, snap: dict, progress: Progress) -> Result:
    models, max_new = _check(attrs)
    progress("import torch")
    torch = require("torch")
    progress("import transformers")
    transformers = require("transformers")
    want = attrs.get("device", "auto")
    if want == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: cuda was asked for, but torch {torch.__version__} sees no CUDA device")
    device = "cuda" if (want == "auto" and torch.cuda.is_available()) else ("cpu" if want == "auto" else want)
    dname = attrs.get("dtype", "auto")
    if dname == "auto":
        cuda_bf16 = device == "cuda" and torch.cuda.get_device_capability() >= (8, 0)
        dname = "fp32" if device == "cpu" else ("bf16" if cuda_bf16 else "fp16")
    tdt = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dname]
    prompt = str(attrs.get("prompt") or PROMPT)
    rows = []
    for model_id in models:
        try:
            row = _bench(torch, transformers, model_id, device, tdt, prompt, max_new, attrs, progress)
        except Exception as e:  # one bad model must not stop the others
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            row = {"model": model_id, "error": f"{type(e).__name__}: {msg}"[:300]}
        rows.append(row)
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    ok = [r for r in rows if "error" not in r]
    bad = [r for r in rows if "error" in r]
    data = {
        "device": device, "dtype": dname, "max_new_tokens": max_new, "prompt": prompt,
        "torch_version": torch.__version__, "transformers_version": transformers.__version__, "models": rows,
    }
    lines = table(rows, device)
    if not ok:
        return Result(
            "failed", f"model-bench: all {len(rows)} model(s) failed; first: {bad[0]['error']}",
            lines=lines, data=data, next_step="check the model ids/paths (HF_HUB_OFFLINE=1 allows only cached models)",
        )
    best = max(ok, key=lambda r: r["tok_per_s"])
    summary = (
        f"model-bench on {device} ({dname}): {len(ok)}/{len(rows)} model(s) ran; "
        f"fastest {best['model']} {best['tok_per_s']:.1f} tok/s, first token {best['first_token_s']:.3f} s"
    )
    next_step = None
    if bad:
        next_step = "fix or drop the failed model(s): " + ", ".join(r["model"] for r in bad)
    elif device == "cpu" and has_gpu(snap):
        next_step = "this host has a GPU but the bench ran on the CPU: install a CUDA build of torch"
    return Result("done", summary, lines=lines, data=data, next_step=next_step)


def _bench(torch, transformers, model_id, device, tdt, prompt, max_new, attrs, progress) -> dict:
    trust = bool(attrs.get("trust_remote_code", False))
    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    if model_id.startswith(("/", "./", "../", "~")) and not Path(model_id).expanduser().is_dir():
        raise FileNotFoundError(f"no such model directory: {model_id}")
    with _RssPeak() as rss:
        progress(f"load model {model_id}")
        t0 = time.perf_counter()
        tok = transformers.AutoTokenizer.from_pretrained(model_id, trust_remote_code=trust)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            model_id, trust_remote_code=trust, **_dtype_kw(transformers, tdt)
        )
        model.to(device).eval()
        sync()
        load_s = time.perf_counter() - t0
        params = sum(p.numel() for p in model.parameters())
        enc = tok(prompt, return_tensors="pt")
        inputs = {k: enc[k].to(device) for k in ("input_ids", "attention_mask") if k in enc}
        pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        gen = dict(do_sample=False, pad_token_id=pad)

        def generate(n: int):
            with torch.inference_mode():
                t = time.perf_counter()
                out = model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, **gen)
                sync()
                return out, time.perf_counter() - t

        progress(f"warm up {model_id}")
        generate(2)
        progress(f"first token {model_id}")
        _, first_s = generate(1)
        progress(f"measure {model_id}")
        out, gen_s = generate(max_new)
    new = int(out.shape[-1] - inputs["input_ids"].shape[-1])
    peak = torch.cuda.max_memory_allocated() if cuda else rss.peak
    text = tok.decode(out[0, inputs["input_ids"].shape[-1]:], skip_special_tokens=True)
    del model
    return {
        "model": model_id,
        "params": params,
        "load_s": round(load_s, 3),
        "first_token_s": round(first_s, 4),
        "new_tokens": new,
        "generate_s": round(gen_s, 4),
        "tok_per_s": round(new / gen_s, 2) if gen_s > 0 else None,
        "peak_mem_mib": round(peak / MIB, 1),
        "peak_mem_kind": "cuda max_memory_allocated" if cuda else "process RSS",
        "prompt_tokens": int(inputs["input_ids"].shape[-1]),
        "sample": text[:200],
    }


def _params(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def table(rows: list[dict], device: str) -> list[str]:
    """Markdown comparison table, one row per model (error rows included)."""
    mem = "peak GPU mem" if device == "cuda" else "peak RSS"
    lines = [f"| model | params | load s | first token s | tok/s | {mem} |", "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error'].replace('|', '/')} | | | | |")
        else:
            lines.append(
                f"| {r['model']} | {_params(r['params'])} | {r['load_s']:.2f} | {r['first_token_s']:.3f} "
                f"| {r['tok_per_s']:.1f} | {r['peak_mem_mib'] / 1024:.2f} GiB |"
            )
    return lines
