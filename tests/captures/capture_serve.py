#!/usr/bin/env python3
"""Regenerate tests/captures/transformers-serve-<version>/: a real ``transformers serve`` answering agentd.

No model can be downloaded here, so a tiny random one is built offline, the SmolLM2-135M way
(a Llama with a ChatML template), only much smaller: a byte-level BPE tokenizer trained on a few
lines (``tokenizers``), a ``LlamaConfig`` with hidden_size 64 and 2 layers, random weights from a
fixed seed, saved with ``save_pretrained``.  Two copies are served, one at a time:

- ``tiny-random-llama``: the random model.  It babbles, so with ``max_tokens: 8`` every reply is cut
  off (``finish_reason: "length"``) with no tool call: the shape issue 18 saw from SmolLM2-135M.
- ``tiny-random-llama-ends``: the same with its final norm zeroed, so every logit is 0, greedy
  decoding picks token 0, and token 0 is the end-of-turn token: a reply that ends (``"stop"``).

Each is served with ``transformers serve <model> --device cpu`` (``HF_HUB_OFFLINE=1``), and a real
``agentd wake --now`` runs one agent task against it through a recording proxy on loopback, which
writes what went by, in order::

    <scenario>/NN.request.json   the request body agentd sent (temporary paths as $TMP)
    <scenario>/NN.response       the server's reply: status line, headers, blank line, body (as read,
                                 a chunked body de-chunked; the proxy adds no header of its own)
    <scenario>/wake.json         the wake's exit code and the run as ``agentd runs --json`` lists it

agentd does not stream Chat Completions (the ``openai`` provider asks for whole replies), so no
stream is captured.  Run it from the repository root (it needs ``transformers[serving]``)::

    HF_HUB_OFFLINE=1 .venv/bin/python tests/captures/capture_serve.py
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))  # tests/: the fakes' loopback server
from fake_llm import loopback_server  # noqa: E402

PY = sys.executable
MAX_TOKENS = 8
TASK = "DIRECTIVE: Check the disk usage of the workspace and report it. {id: disk}\n"
# scenario: (model directory, what each reply must end with)
SCENARIOS = {"length": ("tiny-random-llama", "length"), "stop": ("tiny-random-llama-ends", "stop")}
CHAT_TEMPLATE = (
    "{%- macro text(c) -%}{%- if c is string -%}{{ c }}{%- elif c -%}"
    "{%- for p in c -%}{{ p.text if p.text is defined else '' }}{%- endfor -%}{%- endif -%}{%- endmacro -%}"
    "{%- for m in messages -%}<|im_start|>{{ m.role }}\n{{ text(m.content) }}"
    "{%- if m.tool_calls %}\n{{ m.tool_calls | tojson }}{% endif -%}"
    "{%- if loop.first and tools %}\nTools: {{ tools | tojson }}{% endif %}<|im_end|>\n{% endfor -%}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif -%}")
CORPUS = ["You are agentd's agent. Use the tools: shell, read_file, write_file, finish.",
          "Check the disk usage of the workspace and report it.", "The workspace uses 4.0K. STATUS: done",
          '{"type": "function", "function": {"name": "shell", "parameters": {"type": "object"}}}']


def build_models(root: Path) -> None:
    """The two tiny models, under ``root``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(CORPUS * 4, trainers.BpeTrainer(
        vocab_size=512, special_tokens=["<|im_end|>", "<|im_start|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", bos_token="<|im_start|>",
                                  pad_token="<|im_end|>")
    tok.chat_template = CHAT_TEMPLATE
    assert tok.convert_tokens_to_ids("<|im_end|>") == 0
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16384,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(18)
    for name, ends in (("tiny-random-llama", False), ("tiny-random-llama-ends", True)):
        model = LlamaForCausalLM(config)
        if ends:
            with torch.no_grad():
                model.model.norm.weight.zero_()
        model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=0, pad_token_id=0, do_sample=False)
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(root: Path, model: str, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [str(Path(PY).parent / "transformers"), "serve", model, "--device", "cpu", "--host", "127.0.0.1",
           "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=root, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"transformers serve exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"transformers serve did not answer /health:\n{log.read_text()[-3000:]}")


class Recorder:
    """A loopback proxy to ``upstream`` that keeps every exchange (request body, raw reply) in order."""

    def __init__(self, upstream: int):
        self.exchanges: list[tuple[bytes, bytes]] = []
        self.upstream = upstream
        self.server = loopback_server(self._forward)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _forward(self, h) -> None:
        body = h.rfile.read(int(h.headers.get("content-length") or 0))
        skip = {"host", "content-length", "connection", "accept-encoding"}
        headers = {k: v for k, v in h.headers.items() if k.lower() not in skip}
        up = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=600)
        up.request("POST", h.path, body=body, headers={**headers, "Accept-Encoding": "identity"})
        r = up.getresponse()
        data = r.read()
        head = f"HTTP/1.1 {r.status} {r.reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in r.getheaders())
        self.exchanges.append((body, head.encode() + b"\r\n" + data))
        h.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "content-length", "connection", "date", "server"):
                h.send_header(k, v)
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def wake(tmp: Path, url: str, model: str) -> dict:
    """One real ``agentd wake --now`` of one agent task, pointed at ``url``; its exit code and run."""
    home = tmp / "home"
    (home / ".config" / "agentd").mkdir(parents=True)
    (tmp / "wl").mkdir()
    (tmp / "wl" / "capturehost_worklog.txt").write_text(TASK)
    cfg = home / ".config" / "agentd" / "config.yaml"
    cfg.write_text(json.dumps({"provider": "openai", "base_url": url + "/v1", "model": model,
                               "max_tokens": MAX_TOKENS, "call_timeout": "600s",
                               "prices": {model: {"input": 0, "output": 0, "context": 16384}}}))
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_STATE_HOME": str(home / ".local" / "state"), "XDG_DATA_HOME": str(home / ".local" / "share"),
           "AGENTD_CONFIG": str(cfg), "AGENTD_HOST": "capturehost", "AGENTD_WORKLOG_DIR": str(tmp / "wl"),
           "OPENAI_API_KEY": "not-needed", "PYTHONPATH": str(REPO / "daemon"), "TZ": "UTC"}
    r = subprocess.run([PY, "-m", "agentd", "wake", "--now"], env=env, capture_output=True, text=True, timeout=1800)
    runs = subprocess.run([PY, "-m", "agentd", "runs", "--json"], env=env, capture_output=True, text=True)
    run = json.loads(runs.stdout)[0] if runs.returncode == 0 and runs.stdout.strip() else None
    keep = ("provider", "status", "reason", "summary", "input_tokens", "output_tokens")
    return {"wake_rc": r.returncode, "run": {k: v for k, v in (run or {}).items() if k in keep},
            "stderr_tail": r.stderr[-2000:] if r.returncode else ""}


def capture(name: str, root: Path, out: Path) -> dict:
    model, want = SCENARIOS[name]
    proc, port = serve(root, model, root / f"serve-{name}.log")
    rec = Recorder(port)
    try:
        result = wake(root / f"wake-{name}", rec.url, model)
    finally:
        rec.close()
        os.killpg(proc.pid, 15)
        proc.wait(30)
    d = out / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    finishes = []
    for i, (req, resp) in enumerate(rec.exchanges, 1):
        (d / f"{i:02d}.request.json").write_bytes(req.replace(str(root).encode(), b"$TMP"))
        (d / f"{i:02d}.response").write_bytes(resp)
        finishes.append(json.loads(resp.partition(b"\r\n\r\n")[2])["choices"][0]["finish_reason"])
    result = {"scenario": name, "model": model, "max_tokens": MAX_TOKENS, "finish_reasons": finishes, **result}
    text = json.dumps(result, indent=2).replace(str(root), "$TMP")
    (d / "wake.json").write_text(text + "\n")
    if not finishes or set(finishes) != {want}:
        raise SystemExit(f"{name}: wanted every reply to end {want!r}, got {finishes}")
    return result


def main(argv: list[str]) -> int:
    import transformers

    out = HERE / f"transformers-serve-{transformers.__version__}"
    names = argv or list(SCENARIOS)
    with tempfile.TemporaryDirectory(prefix="capture-serve-") as t:
        root = Path(t)
        build_models(root)
        for n in names:
            capture(n, root, out)
    readme = out / "README.md"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    lines = [f"# transformers serve {transformers.__version__}: replies to agentd's Chat Completions requests", "",
             f"Made by `HF_HUB_OFFLINE=1 .venv/bin/python tests/captures/capture_serve.py` on {when}, "
             f"{os.uname().sysname} {os.uname().machine}: transformers {transformers.__version__} "
             f"(`transformers serve <model> --device cpu`, torch {_version('torch')}, "
             f"fastapi {_version('fastapi')}, uvicorn {_version('uvicorn')}), a real `agentd wake --now` "
             f"with `provider: openai`, `max_tokens: {MAX_TOKENS}`, through a recording proxy.  "
             "The models are tiny random Llamas built offline by the script (see its docstring).  "
             "The serving extras came from PyPI: `pip install 'transformers[serving]==5.25.0'`.", "",
             "Per scenario: `NN.request.json` (agentd's request body), `NN.response` (the raw reply), "
             "`wake.json` (the wake's exit code and run).  agentd does not stream, so nothing streamed is "
             "captured.  Replayed by tests/providers/test_stop_reasons_captured.py (`fake_llm.replay`).", "",
             "| scenario | model | finish_reason of each reply | wake's run |", "|---|---|---|---|"]
    for r in (json.loads(w.read_text()) for w in sorted(out.glob("*/wake.json"))):
        run = r["run"]
        lines.append(f"| {r['scenario']} | {r['model']} | {', '.join(r['finish_reasons'])} | "
                     f"{run.get('status')}: {run.get('reason') or 'summary ' + json.dumps(run.get('summary'))} |")
    readme.write_text("\n".join(lines) + "\n")
    print(readme.read_text())
    return 0


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
