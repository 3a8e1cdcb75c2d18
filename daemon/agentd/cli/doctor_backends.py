"""``agentd doctor``'s checks of what runs the tasks: the providers' CLIs on PATH, their API keys (never
printed: only where each is set), and torch for gpu tasks."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from agentd.cli.doctor_check import FAIL, OK, WARN, Check
from agentd.config.config import read_env_file
from agentd.platform import systemd
from agentd.providers import public_url


CLI_BACKENDS = {"claude-cli": "claude", "codex-cli": "codex"}
KEY_OF = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
TORCH_PROBE = ("import json, torch\n"
               "cuda = torch.cuda.is_available()\n"
               "print(json.dumps({'version': torch.__version__, 'cuda': cuda,\n"
               "  'device': torch.cuda.get_device_name(0) if cuda else None}))\n")


def _providers(cfg: Any) -> list[str]:
    v = cfg.values
    out = [v.get("provider"), v.get("fallback_provider"), (v.get("review") or {}).get("provider")
           if (v.get("review") or {}).get("enabled") else None]
    return [p for i, p in enumerate(out) if p and p not in out[:i]]


def check_backends(cfg: Any) -> list[Check]:
    checks = []
    for provider in _providers(cfg):
        exe = CLI_BACKENDS.get(provider)
        if not exe:
            continue
        found = shutil.which(exe, path=cfg.env.get("PATH", os.defpath))
        if found:
            checks.append(Check(OK, f"provider {provider}: {exe} is {found}"))
        else:
            checks.append(Check(FAIL, f"provider {provider}: `{exe}` is not on PATH",
                                f"install {exe}, or put its directory on PATH and run `agentd install` again "
                                "(the service keeps the PATH of the install)"))
    return checks


def check_api_keys(cfg: Any) -> list[Check]:
    env_path = systemd.env_file(cfg)
    in_file = read_env_file(env_path)
    checks = []
    if env_path.exists():
        mode = stat.S_IMODE(env_path.stat().st_mode)
        if mode & 0o077:
            checks.append(Check(WARN, f"env file {env_path} is mode {mode:04o}: others can read the API keys",
                                f"chmod 600 {env_path}"))

    def where(key: str) -> str | None:
        # config.load merged the env file into cfg.env (the real environment wins)
        if in_file.get(key) and cfg.env.get(key) == in_file[key]:
            return str(env_path)
        return "the environment" if cfg.env.get(key) else None

    providers = _providers(cfg)
    for provider in providers:
        if provider == "auto":
            found = [k for k in KEY_OF.values() if where(k)]
            if found:
                checks.append(Check(OK, f"provider auto: {', '.join(f'{k} set in {where(k)}' for k in found)}"))
            else:
                checks.append(Check(WARN, "provider auto: neither ANTHROPIC_API_KEY nor OPENAI_API_KEY is set, "
                                    "so agent tasks have no model", f"add one to {env_path}"))
        elif provider in KEY_OF:
            key = KEY_OF[provider]
            if where(key):
                checks.append(Check(OK, f"provider {provider}: {key} set in {where(key)}"))
            elif provider == "openai" and cfg.values.get("base_url"):
                checks.append(Check(OK, f"provider openai at {public_url(cfg.values['base_url'])}: no OPENAI_API_KEY "
                                    "(fine for a local server)"))
            else:
                checks.append(Check(FAIL, f"provider {provider}: {key} is not set",
                                    f"add {key}=... to {env_path} (mode 0600)"))
    return checks


def check_torch(python: str = sys.executable, timeout: float = 120) -> Check:
    try:
        p = subprocess.run([python, "-c", TORCH_PROBE], capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Check(WARN, f"importing torch took over {timeout:g}s", "check the torch install")
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        return Check(WARN, f"torch is not importable ({last}): gpu tasks cannot run",
                     "pip install 'agentd-host[gpu]' (or make install)")
    info = json.loads(p.stdout.strip().splitlines()[-1])
    if info["cuda"]:
        return Check(OK, f"torch {info['version']} with CUDA ({info['device']})")
    gpu_here = Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi") is not None
    if gpu_here:
        return Check(WARN, f"torch {info['version']} has no CUDA but this host has an NVIDIA GPU",
                     "install a CUDA build of torch (see pytorch.org), e.g. make install TORCH=torch")
    return Check(OK, f"torch {info['version']} (CPU only; no NVIDIA GPU here)")
