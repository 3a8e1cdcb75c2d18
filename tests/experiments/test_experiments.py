"""agentd.experiments with real torch/transformers on tiny offline models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from agentd import experiments  # noqa: E402
from agentd.experiments.cuda_probe import peak_for  # noqa: E402
from agentd.platform.health import snapshot  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIX = "pip install 'agentd-host[gpu]'"
WORDS = "explain in two sentences why the sky is blue during day and red at sunset".split()


class Phases(list):
    def __call__(self, phase: str) -> None:
        self.append(phase)


def _saved(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def _tiny_model(path: Path, layers: int, hidden: int) -> str:
    """A random-weight Llama with a word-level tokenizer, saved offline."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[EOS]", *WORDS])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]")
    tok.save_pretrained(path)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=128, pad_token_id=0, eos_token_id=2, bos_token_id=None)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> list[str]:
    base = tmp_path_factory.mktemp("models")
    return [_tiny_model(base / "tiny-a", 1, 16), _tiny_model(base / "tiny-b", 2, 32)]


def test_names():
    assert experiments.NAMES == ("health", "cuda-probe", "model-bench")


def test_unknown_experiment_fails_listing_names(tmp_path):
    r = experiments.run("gpu-burn", {}, tmp_path / "run", {}, Phases())
    assert r.status == "failed"
    assert "gpu-burn" in r.summary and "health, cuda-probe, model-bench" in r.summary
    assert _saved(tmp_path / "run")["status"] == "failed"


def test_health_experiment(tmp_path):
    snap = snapshot([tmp_path])
    phases = Phases()
    r = experiments.run("health", {}, tmp_path / "run", snap, phases)
    assert r.status == "done" and phases == ["snapshot"]
    assert r.data == snap and r.lines[0].startswith("load ")
    assert r.summary == ", ".join(r.lines)
    assert _saved(tmp_path / "run")["data"]["cpu_count"] == snap["cpu_count"]


def test_cuda_probe_on_this_machine(tmp_path):
    import torch

    phases = Phases()
    r = experiments.run("cuda-probe", {"size": 256}, tmp_path / "run", snapshot([]), phases)
    assert r.status == "done", r.summary
    assert phases[-2:] == ["warm up", "measure"] and "import torch" in phases
    saved = _saved(tmp_path / "run")
    assert saved["experiment"] == "cuda-probe" and saved["summary"] == r.summary
    if torch.cuda.is_available():
        assert r.data["tflops"] > 0 and r.summary.startswith("CUDA: ")
    else:
        assert r.summary.startswith(f"CUDA: not available — torch {torch.__version__}")
        assert "measured the CPU instead" in r.summary and "GFLOP/s" in r.summary
        assert r.data["cuda_available"] is False and r.data["dtype"] == "fp32"
        assert r.data["gflops"] > 0 and saved["data"]["gflops"] == r.data["gflops"]
        assert r.lines[2].startswith("| cpu | fp32 | 256 |")


def test_cuda_probe_rejects_bad_attrs(tmp_path):
    r = experiments.run("cuda-probe", {"dtype": "int3"}, tmp_path, {}, Phases())
    assert r.status == "failed" and "dtype must be one of bf16, fp16, fp32" in r.summary


@pytest.mark.parametrize("name, label, peak", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 989),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756),
    ("NVIDIA H200", "H200 / GH200", 989),
    ("NVIDIA A100-SXM4-80GB", "A100", 312),
    ("NVIDIA GeForce RTX 4090", "RTX 4090", 165),
    ("Tesla T4", "T4 (fp16)", 65),
    ("Orin", "Jetson AGX Orin 64GB (~)", 42.5),
])
def test_peak_table(name, label, peak):
    assert peak_for(name) == (label, peak)


def test_peak_unknown_device():
    assert peak_for("Quadro K600") is None


def test_model_bench_compares_two_models(tiny_models, tmp_path):
    phases = Phases()
    r = experiments.run("model-bench", {"model": tiny_models, "max_new_tokens": 8},
                        tmp_path / "run", snapshot([]), phases)
    assert r.status == "done", r.summary
    assert r.lines[0] == "| model | params | load s | first token s | tok/s | peak RSS |"
    rows = r.lines[2:]
    assert len(rows) == 2 and rows[0].startswith(f"| {tiny_models[0]} |")
    a, b = r.data["models"]
    assert a["params"] < b["params"]
    for m in (a, b):
        assert m["new_tokens"] == 8 and m["tok_per_s"] > 0 and m["load_s"] > 0
        assert 0 < m["first_token_s"] and m["peak_mem_mib"] > 10
    assert f"load model {tiny_models[1]}" in phases and f"measure {tiny_models[1]}" in phases
    assert _saved(tmp_path / "run")["data"]["models"][1]["params"] == b["params"]


def test_model_bench_bad_path_gets_error_row(tiny_models, tmp_path):
    bad = str(tmp_path / "no-such-model")
    r = experiments.run("model-bench", {"model": [bad, tiny_models[0]], "max_new_tokens": 4},
                        tmp_path / "run", {}, Phases())
    assert r.status == "done" and "1/2 model(s) ran" in r.summary
    assert r.lines[2].startswith(f"| {bad} | error: FileNotFoundError: no such model directory")
    assert "error" in r.data["models"][0] and r.data["models"][1]["new_tokens"] == 4
    assert bad in r.next_step


def test_model_bench_all_failed(tmp_path):
    r = experiments.run("model-bench", {"model": str(tmp_path / "nothing")}, tmp_path / "run", {}, Phases())
    assert r.status == "failed" and "all 1 model(s) failed" in r.summary


def test_model_bench_needs_a_model(tmp_path):
    r = experiments.run("model-bench", {}, tmp_path, {}, Phases())
    assert r.status == "blocked" and r.summary == "model-bench needs {model: <hf id or path>}"


BLOCKER = """
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers'):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
from pathlib import Path
from agentd import experiments
out = {}
for n in ('cuda-probe', 'model-bench'):
    r = experiments.run(n, {'model': 'x'}, Path(sys.argv[1]) / n, {}, print)
    out[n] = r.to_dict()
print(json.dumps(out))
"""


def test_missing_torch_blocks_with_the_fix(tmp_path):
    out = subprocess.run([sys.executable, "-c", BLOCKER, str(tmp_path)], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT / "daemon")})
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout.splitlines()[-1])
    for name, r in results.items():
        assert r["status"] == "blocked", r
        assert FIX in r["summary"] and "torch" in r["summary"]
        assert "download.pytorch.org" in r["lines"][0]  # the torch build choice
        assert json.loads((tmp_path / name / "result.json").read_text())["status"] == "blocked"
